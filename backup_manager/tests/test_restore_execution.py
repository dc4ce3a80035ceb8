"""Generated restore scripts, executed for real: new site, same site, and from the S3 server."""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import frappe
from cryptography.fernet import Fernet

from backup_manager import jobs
from backup_manager.core.manifest import MANIFEST_KEY_CONFIG
from backup_manager.tests.test_offsite_run import S3_ENDPOINT, make_destination, s3_client
from backup_manager.tests.utils import (
	FrappeTestCase,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	sites_path,
)

SECRET = "restore-test-secret-" + "x" * 8


def site_command(site: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
	return subprocess.run(
		[sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site, *args],
		cwd=sites_path(),
		capture_output=True,
		text=True,
		timeout=timeout,
		check=False,
	)


def site_execute(site: str, method: str, **kwargs):
	result = site_command(site, "execute", method, "--kwargs", json.dumps(kwargs))
	if result.returncode != 0:
		raise AssertionError(f"{method} on {site} failed:\n{result.stdout}\n{result.stderr}")
	return json.loads(result.stdout.strip().splitlines()[-1])


def drop_site(site: str):
	if os.path.isdir(os.path.join(sites_path(), site)):
		subprocess.run(
			[
				sys.executable,
				"-m",
				"frappe.utils.bench_helper",
				"frappe",
				"drop-site",
				site,
				"--force",
				"--no-backup",
			],
			cwd=sites_path(),
			capture_output=True,
			check=False,
		)


def run_plan(site: str, log_name: str, *plan_args: str, env: dict | None = None) -> str:
	"""Render the sh plan of a log with the CLI and run it with bash; return its output."""
	plan = site_command(site, "backup-manager", "restore-plan", log_name, "--format", "sh", *plan_args)
	if plan.returncode != 0:
		raise AssertionError(f"restore-plan failed:\n{plan.stdout}\n{plan.stderr}")
	with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as script:
		script.write(plan.stdout)
	try:
		result = subprocess.run(
			["bash", script.name],
			capture_output=True,
			text=True,
			timeout=1800,
			check=False,
			env={**os.environ, **(env or {})},
			stdin=subprocess.DEVNULL,
		)
	finally:
		os.remove(script.name)
	if result.returncode != 0:
		raise AssertionError(
			f"restore script failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
		)
	return result.stdout


class TestRestoreExecution(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		ensure_outgoing_email_account()
		cls.marker = "bm-restore-marker-" + frappe.generate_hash(length=8)
		for priority in ("Low", "Medium", "High"):
			frappe.get_doc(
				{"doctype": "ToDo", "description": f"{cls.marker} {priority}", "priority": priority}
			).insert(ignore_permissions=True)
		for folder in ("public", "private"):
			with open(frappe.get_site_path(folder, "files", f"{cls.marker}.txt"), "wb") as handle:
				handle.write(os.urandom(4096))
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		for name in frappe.get_all(
			"ToDo", filters={"description": ("like", f"%{cls.marker}%")}, pluck="name"
		):
			frappe.delete_doc("ToDo", name, force=True, ignore_permissions=True)
		for folder in ("public", "private"):
			path = frappe.get_site_path(folder, "files", f"{cls.marker}.txt")
			if os.path.exists(path):
				os.remove(path)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")

	def tearDown(self):
		frappe.db.rollback()
		delete_test_policies()
		for name in frappe.get_all(
			"Backup Destination", filters={"name": ("like", "_Test BM Dest %")}, pluck="name"
		):
			frappe.delete_doc("Backup Destination", name, force=True, ignore_permissions=True)
		frappe.db.commit()

	def original(self, destination: str) -> dict:
		from backup_manager.tests.restore_checks import describe_site

		described = describe_site(self.marker, destination)
		self.assertEqual(len(described["todos"]), 3)
		self.assertEqual(set(described["files"]), {"public", "private"})
		# The whole files tree is compared, so the tar step must put every file where Frappe's would.
		self.assertIn(f"public/files/{self.marker}.txt", described["tree"])
		self.assertIn(f"private/files/{self.marker}.txt", described["tree"])
		self.assertTrue(described["secret"])
		# As the JSON printed by bench execute will read.
		return json.loads(json.dumps(described, default=str))

	def make_secret_destination(self, name: str):
		"""A Password field value whose decryption on the restored site proves the key was carried."""
		if S3_ENDPOINT:
			bucket = "bm-restore-" + frappe.generate_hash(length=8).lower()
			s3_client().create_bucket(Bucket=bucket)
			destination = make_destination(name, bucket)
		else:
			destination = frappe.get_doc(
				{
					"doctype": "Backup Destination",
					"destination_name": "_Test BM Dest " + name,
					"provider": "MinIO",
					"endpoint_url": "http://127.0.0.1:1",
					"bucket": "unused",
					"access_key_id": "unused",
					"secret_access_key": SECRET,
				}
			).insert(ignore_permissions=True)
			frappe.db.commit()
		return destination

	def test_sh_plan_restores_into_a_new_site_and_same_site_restore_undoes_changes(self):
		destination = self.make_secret_destination("restore-local")
		secret = destination.get_password("secret_access_key")
		policy = make_policy("restore-local")
		log = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(log.status, "Success", log.error_message)
		expected = self.original(destination.name)
		self.assertEqual(expected["secret"], secret)

		new_site = "bm-restore-a.localhost"
		drop_site(new_site)
		self.addCleanup(drop_site, new_site)
		output = run_plan(frappe.local.site, log.name, "--new-site", new_site)
		self.assertIn(f"is restored into {new_site}", output)
		self.assertNotIn(secret, output)
		self.assertEqual(
			site_execute(
				new_site,
				"backup_manager.tests.restore_checks.describe_site",
				marker=self.marker,
				destination=destination.name,
			),
			expected,
		)

		# Same site: back up the new site, change it, restore its own backup: the change is gone.
		self.assertEqual(
			site_command(new_site, "backup-manager", "init", "--name", "Restore Test").returncode, 0
		)
		# A DocType the backed-up database holds as changed since its last migrate: only a migrate
		# of the restored database (in the restore step's own process) re-syncs it.
		checks = "backup_manager.tests.restore_checks"
		self.assertEqual(site_execute(new_site, f"{checks}.mark_doctype_stale", doctype="ToDo"), "stale")
		run = site_command(new_site, "backup-manager", "run", "--policy", "Restore Test")
		self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
		same_site_log = run.stdout.strip().splitlines()[-1].split("\t")[0]
		self.assertEqual(site_execute(new_site, f"{checks}.delete_markers", marker=self.marker), 3)
		# The site's key changed after the backup: the restore must carry the backup's back, or the
		# restored Password fields would not decrypt.
		config_path = os.path.join(sites_path(), new_site, "site_config.json")
		with open(config_path) as handle:
			site_config = json.load(handle)
		original_key = site_config["encryption_key"]
		site_config["encryption_key"] = Fernet.generate_key().decode()
		with open(config_path, "w") as handle:
			json.dump(site_config, handle)
		output = run_plan(new_site, same_site_log)
		self.assertIn("Set in sites/" + new_site + "/site_config.json: encryption_key", output)
		self.assertIn("Migrating " + new_site, output)
		self.assertNotIn(original_key, output)
		self.assertNotEqual(site_execute(new_site, f"{checks}.get_migration_hash", doctype="ToDo"), "stale")
		with open(config_path) as handle:
			self.assertEqual(json.load(handle)["encryption_key"], original_key)
		self.assertEqual(
			site_execute(
				new_site,
				"backup_manager.tests.restore_checks.describe_site",
				marker=self.marker,
				destination=destination.name,
			),
			expected,
		)
		# The restored database shows the backup's own run as Running: its dump was taken during it.
		describe_log = "backup_manager.tests.restore_checks.describe_backup_log"
		self.assertEqual(site_execute(new_site, describe_log, name=same_site_log)["status"], "Running")
		# The next run finds no process behind that log and its folder complete: the log becomes the
		# Success it was (no false failure alert), and the backup the site came from is kept.
		run = site_command(new_site, "backup-manager", "run", "--policy", "Restore Test")
		self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
		restored_log = site_execute(new_site, describe_log, name=same_site_log)
		self.assertEqual(
			(restored_log["status"], restored_log["folder_on_disk"]), ("Success", True), restored_log
		)

	def test_sh_plan_restores_a_new_site_from_the_s3_server(self):
		if not S3_ENDPOINT:
			self.skipTest("no S3 server: BM_TEST_S3_ENDPOINT is not set (scripts/run-tests.sh sets it)")
		destination = self.make_secret_destination("restore-s3")
		policy = make_policy("restore-s3", destinations=[{"destination": destination.name}])
		log = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(log.status, "Success", log.error_message)
		expected = self.original(destination.name)

		new_site = "bm-restore-b.localhost"
		drop_site(new_site)
		self.addCleanup(drop_site, new_site)
		# The plan downloads into <bench>/backup-restore/<backup id>; keep the bench clean.
		downloads = os.path.join(os.path.dirname(sites_path()), "backup-restore", log.backup_id)
		self.addCleanup(shutil.rmtree, downloads, True)
		credentials = {
			"AWS_ACCESS_KEY_ID": destination.access_key_id,
			"AWS_SECRET_ACCESS_KEY": destination.get_password("secret_access_key"),
		}
		manifest_key = frappe.conf.get(MANIFEST_KEY_CONFIG)
		# With a wrong manifest key the download refuses the bucket's manifest: no site is created.
		with self.assertRaises(AssertionError) as caught:
			run_plan(
				frappe.local.site,
				log.name,
				"--new-site",
				new_site,
				"--from-destination",
				destination.name,
				env={**credentials, "BACKUP_MANIFEST_KEY": "0" * 64},
			)
		self.assertIn(f"Refusing the manifest of backup {log.backup_id}", str(caught.exception))
		self.assertFalse(os.path.exists(os.path.join(sites_path(), new_site)))

		output = run_plan(
			frappe.local.site,
			log.name,
			"--new-site",
			new_site,
			"--from-destination",
			destination.name,
			env={**credentials, "BACKUP_MANIFEST_KEY": manifest_key},
		)
		self.assertIn("Download the backup", output)
		self.assertNotIn(destination.get_password("secret_access_key"), output)
		self.assertNotIn(manifest_key, output)
		# The new site carries the key: it can verify (and prune) the same offsite backups.
		with open(os.path.join(sites_path(), new_site, "site_config.json")) as handle:
			self.assertEqual(json.load(handle)[MANIFEST_KEY_CONFIG], manifest_key)
		self.assertEqual(stat.S_IMODE(os.stat(downloads).st_mode), 0o700)
		self.assertEqual(
			site_execute(
				new_site,
				"backup_manager.tests.restore_checks.describe_site",
				marker=self.marker,
				destination=destination.name,
			),
			expected,
		)
