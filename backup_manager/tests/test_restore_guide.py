"""The Restore Guide (Desk API and CLI) and its plan for an encrypted backup, run for real.

test_restore_execution.py runs the plans of plain backups (new site, same site, from S3) and
test_restore_guide_browser.py drives the page; this module covers what they leave out: an
encrypted backup restored with its key (and refused without it), Desk and CLI giving the same
plan, who may see it, that no secret reaches it, and what it says when the files are gone.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import frappe

from backup_manager import api, jobs
from backup_manager.core.manifest import DATABASE, PRIVATE_FILES, PUBLIC_FILES, SITE_CONFIG
from backup_manager.core.restore_plan import DEFAULT_WORK_FOLDER, PREPARED_FOLDER
from backup_manager.tests.utils import (
	FrappeTestCase,
	bench_command,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	make_user,
	sites_path,
)

DESTINATION_NAME = "_Test BM Restore Guide Destination"
NEW_SITE = "bm-restore-enc.localhost"
ADMIN_USER = "bm-restore-guide-admin@example.com"
PLAIN_USER = "bm-restore-guide-plain@example.com"
MIN_SEARCHABLE_SECRET = 12
# A restore drops and re-creates a database and runs migrate: minutes on a slow machine.
RESTORE_TIMEOUT_SECONDS = 1200


def site_command(site: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
	"""Run `bench --site SITE ...` in a subprocess, from the sites folder as bench does."""
	return subprocess.run(
		[sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site, *args],
		cwd=sites_path(),
		capture_output=True,
		text=True,
		timeout=timeout,
		check=False,
	)


def site_execute(site: str, method: str, **kwargs):
	"""Call a function on another site with `bench execute`; return what it printed, as JSON."""
	result = site_command(site, "execute", method, "--kwargs", json.dumps(kwargs))
	if result.returncode != 0:
		raise AssertionError(f"{method} on {site} failed:\n{result.stdout}\n{result.stderr}")
	return json.loads(result.stdout.strip().splitlines()[-1])


def drop_site(site: str):
	if os.path.isdir(os.path.join(sites_path(), site)):
		# The database root password comes from sites/common_site_config.json.
		result = subprocess.run(
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
			text=True,
			timeout=600,
			check=False,
		)
		if result.returncode != 0:
			raise AssertionError(f"bench drop-site {site} failed:\n{result.stdout}\n{result.stderr}")


def run_script(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
	"""Run a rendered sh plan with bash, as an operator would: no terminal, no input."""
	with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as handle:
		handle.write(script)
	try:
		return subprocess.run(
			["bash", handle.name],
			cwd=os.path.dirname(sites_path()),
			capture_output=True,
			text=True,
			timeout=RESTORE_TIMEOUT_SECONDS,
			check=False,
			env=env,
			stdin=subprocess.DEVNULL,
		)
	finally:
		os.remove(handle.name)


def read_json(path: str) -> dict:
	with open(path) as handle:
		return json.load(handle)


def environment_without(*names: str) -> dict[str, str]:
	return {name: value for name, value in os.environ.items() if name not in names}


def run_policy(policy_name: str):
	return jobs.execute_run(jobs.start_run(policy=policy_name, trigger="CLI", enqueue=False))


class encrypted_backups_in_this_process:
	"""Turn System Settings' encrypt_backup on for this process only.

	Other test modules run on the same site at the same time; setting it in the database would
	encrypt their backups too. frappe.get_system_settings reads the copy cached on frappe.local,
	which is the same place local_backup reads it from.
	"""

	def __enter__(self):
		settings = frappe.get_cached_doc("System Settings").as_dict()
		settings.encrypt_backup = 1
		frappe.local.system_settings = settings

	def __exit__(self, *exc_info):
		if hasattr(frappe.local, "system_settings"):
			del frappe.local.system_settings


class TestRestoreGuide(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		frappe.set_user("Administrator")
		ensure_outgoing_email_account()
		cls.marker = "bm-restore-guide-" + frappe.generate_hash(length=10)
		cls.secret = "bm-restore-guide-secret-" + frappe.generate_hash(length=16)
		for priority in ("Low", "Medium", "High"):
			frappe.get_doc(
				{"doctype": "ToDo", "description": f"{cls.marker} {priority}", "priority": priority}
			).insert(ignore_permissions=True)
		# Files made through the File doctype: the restored site needs the records and the files.
		for is_private in (0, 1):
			frappe.get_doc(
				{
					"doctype": "File",
					"file_name": f"{cls.marker}.txt",
					"is_private": is_private,
					"content": os.urandom(2048).hex(),
				}
			).insert(ignore_permissions=True)
		if frappe.db.exists("Backup Destination", DESTINATION_NAME):
			frappe.delete_doc("Backup Destination", DESTINATION_NAME, force=True, ignore_permissions=True)
		# A Password field: only the original site's encryption_key decrypts it after a restore.
		frappe.get_doc(
			{
				"doctype": "Backup Destination",
				"destination_name": DESTINATION_NAME,
				"provider": "MinIO",
				"endpoint_url": "http://127.0.0.1:1",
				"bucket": "unused",
				"access_key_id": "unused",
				"secret_access_key": cls.secret,
			}
		).insert(ignore_permissions=True)
		make_user(ADMIN_USER, ["System Manager"])
		make_user(PLAIN_USER, ["Blogger"])
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		frappe.db.rollback()
		for name in frappe.get_all(
			"ToDo", filters={"description": ("like", f"%{cls.marker}%")}, pluck="name"
		):
			frappe.delete_doc("ToDo", name, force=True, ignore_permissions=True)
		for name in frappe.get_all("File", filters={"file_name": ("like", f"{cls.marker}%")}, pluck="name"):
			frappe.delete_doc("File", name, force=True, ignore_permissions=True)
		if frappe.db.exists("Backup Destination", DESTINATION_NAME):
			frappe.delete_doc("Backup Destination", DESTINATION_NAME, force=True, ignore_permissions=True)
		for user in (ADMIN_USER, PLAIN_USER):
			if frappe.db.exists("User", user):
				frappe.delete_doc("User", user, force=True, ignore_permissions=True)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.rollback()
		delete_test_policies()

	def describe_original(self) -> dict:
		"""What the restored site must hold, read the way the restored site is read."""
		from backup_manager.tests.restore_checks import describe_file_records, describe_site

		described = {
			"site": describe_site(self.marker, DESTINATION_NAME),
			"file_records": describe_file_records(self.marker),
		}
		self.assertEqual(len(described["site"]["todos"]), 3)
		self.assertEqual(set(described["site"]["files"]), {"public", "private"})
		self.assertEqual(described["site"]["secret"], self.secret)
		self.assertEqual([row["is_private"] for row in described["file_records"]], [0, 1])
		return json.loads(json.dumps(described, default=str))

	def describe_restored(self, site: str) -> dict:
		return {
			"site": site_execute(
				site,
				"backup_manager.tests.restore_checks.describe_site",
				marker=self.marker,
				destination=DESTINATION_NAME,
			),
			"file_records": site_execute(
				site, "backup_manager.tests.restore_checks.describe_file_records", marker=self.marker
			),
		}

	def test_encrypted_backup_restores_into_a_new_site_only_with_its_key(self):
		with encrypted_backups_in_this_process():
			log = run_policy(make_policy("Restore encrypted").name)
		self.assertEqual(log.status, "Success", log.error_message)
		self.assertTrue(log.encrypted)
		self.assertEqual(
			{row.kind: bool(row.encrypted) for row in log.artifacts},
			{DATABASE: True, PUBLIC_FILES: True, PRIVATE_FILES: True, SITE_CONFIG: True},
		)
		backup_key = frappe.conf.backup_encryption_key
		self.assertTrue(backup_key)
		expected = self.describe_original()

		bench_path = os.path.dirname(sites_path())
		common_config_path = os.path.join(sites_path(), "common_site_config.json")
		with open(common_config_path, "rb") as handle:
			common_config_before = handle.read()
		work_dir = os.path.join(bench_path, DEFAULT_WORK_FOLDER, log.backup_id)
		drop_site(NEW_SITE)
		self.addCleanup(shutil.rmtree, work_dir, True)
		self.addCleanup(drop_site, NEW_SITE)

		plan = bench_command(
			"backup-manager", "restore-plan", log.name, "--new-site", NEW_SITE, "--format", "sh"
		)
		self.assertEqual(plan.returncode, 0, plan.stderr)
		script = plan.stdout
		self.assertNotIn(backup_key, script)
		self.assertIn("BACKUP_ENCRYPTION_KEY (required)", script)

		# Without the key the script stops before its first step; with a wrong one, at gpg.
		# Either way no site is created.
		without_key = run_script(script, environment_without("BACKUP_ENCRYPTION_KEY"))
		self.assertEqual(without_key.returncode, 1, without_key.stdout + without_key.stderr)
		self.assertIn("Set the environment variable BACKUP_ENCRYPTION_KEY", without_key.stderr)
		self.assertNotIn("==> Step 1/", without_key.stdout)
		wrong_key = run_script(
			script, {**environment_without("BACKUP_ENCRYPTION_KEY"), "BACKUP_ENCRYPTION_KEY": "not-the-key"}
		)
		self.assertNotEqual(wrong_key.returncode, 0, wrong_key.stdout + wrong_key.stderr)
		self.assertIn("Restore stopped at step", wrong_key.stderr)
		self.assertIn("Decrypt the backup files", wrong_key.stderr)
		self.assertFalse(os.path.exists(os.path.join(sites_path(), NEW_SITE)))

		restored = run_script(script, {**os.environ, "BACKUP_ENCRYPTION_KEY": backup_key})
		output = restored.stdout + restored.stderr
		self.assertEqual(restored.returncode, 0, output[-6000:])
		self.assertIn(f"is restored into {NEW_SITE}", restored.stdout)
		self.assertNotIn(backup_key, output)
		self.assertNotIn(self.secret, output)

		self.assertEqual(self.describe_restored(NEW_SITE), expected)
		new_site_config = read_json(os.path.join(sites_path(), NEW_SITE, "site_config.json"))
		self.assertEqual(new_site_config.get("encryption_key"), frappe.conf.encryption_key)
		# The copy's own encrypted backups use the same key, so one key opens both sites' backups.
		self.assertEqual(new_site_config.get("backup_encryption_key"), backup_key)
		self.assertNotEqual(new_site_config.get("db_name"), frappe.conf.db_name)
		# A copy must not send mail or run jobs: the scheduler stays off.
		self.assertIs(site_execute(NEW_SITE, "frappe.utils.scheduler.is_scheduler_disabled"), True)

		# Decrypted copies are deleted and common_site_config.json is back as it was.
		self.assertFalse(os.path.exists(os.path.join(work_dir, PREPARED_FOLDER)))
		with open(common_config_path, "rb") as handle:
			self.assertEqual(handle.read(), common_config_before)
		self.assertFalse(
			[name for name in os.listdir(sites_path()) if name.startswith(".common_site_config.json.")]
		)

	def test_desk_guide_gives_a_system_manager_the_plan_and_script_the_cli_prints(self):
		log = run_policy(make_policy("Restore guide").name)
		self.assertEqual(log.status, "Success", log.error_message)
		new_site = "bm-restore-guide-copy.localhost"

		frappe.set_user(ADMIN_USER)
		guide = api.get_restore_guide(log.name, new_site=new_site)
		same_site_guide = api.get_restore_guide(log.name)
		frappe.set_user("Administrator")

		script = bench_command(
			"backup-manager", "restore-plan", log.name, "--new-site", new_site, "--format", "sh"
		)
		self.assertEqual(script.returncode, 0, script.stderr)
		self.assertEqual(guide["script"], script.stdout)
		plan_json = bench_command(
			"backup-manager", "restore-plan", log.name, "--new-site", new_site, "--format", "json"
		)
		self.assertEqual(json.loads(plan_json.stdout), guide["plan"])

		backup = guide["backup"]
		self.assertEqual((backup["name"], backup["site"], backup["policy"]), (log.name, log.site, log.policy))
		self.assertTrue(backup["local_files"])
		self.assertFalse(backup["encrypted"])
		self.assertEqual(
			{row["kind"]: row["sha256"] for row in backup["artifacts"]},
			{row.kind: row.sha256 for row in log.artifacts},
		)
		self.assertEqual({row["app"] for row in backup["apps"]}, set(frappe.get_installed_apps()))
		self.assertEqual(guide["destinations"], [])

		plan = guide["plan"]
		self.assertEqual((plan["site"], plan["target_site"], plan["new_site"]), (log.site, new_site, True))
		keys = [step["key"] for step in plan["steps"]]
		# Nothing is created or replaced before the files are verified; the new site is created
		# from the dump (no blank install, no bench restore); the root password leaves the common
		# config right after, before anything else can fail; plain tar restores the files.
		self.assertLess(keys.index("verify"), keys.index("create_site"))
		self.assertNotIn("restore", keys)
		self.assertEqual(keys[keys.index("create_site") + 1], "restore_common_config")
		self.assertLess(keys.index("restore_common_config"), keys.index("restore_files"))
		self.assertIn("site_keys", keys)
		self.assertEqual(keys[-1], "migrate")
		create_step = plan["steps"][keys.index("create_site")]
		self.assertIn(f"bench new-site {new_site} --source-sql {log.backup_dir}", create_step["commands"][0])
		files_step = plan["steps"][keys.index("restore_files")]
		self.assertIn(f"{new_site} public {log.backup_dir}", files_step["commands"][0])
		self.assertIn(f" private {log.backup_dir}", files_step["commands"][0])

		same_site_keys = [step["key"] for step in same_site_guide["plan"]["steps"]]
		self.assertNotIn("create_site", same_site_keys)
		self.assertLess(same_site_keys.index("maintenance_on"), same_site_keys.index("restore"))
		self.assertEqual(same_site_keys[-1], "maintenance_off")
		self.assertEqual(same_site_guide["plan"]["target_site"], log.site)

	def test_restore_guide_is_refused_to_users_without_system_manager(self):
		log = run_policy(make_policy("Restore refused", with_files=0).name)
		self.assertEqual(log.status, "Success", log.error_message)
		frappe.set_user(PLAIN_USER)
		self.assertNotIn("System Manager", frappe.get_roles())
		with self.assertRaises(frappe.PermissionError):
			api.get_restore_guide(log.name)
		with self.assertRaises(frappe.PermissionError):
			api.get_restorable_backups()
		frappe.set_user(ADMIN_USER)
		self.assertIn(log.name, [row.name for row in api.get_restorable_backups()])

	def test_no_secret_reaches_the_guide_or_any_rendering_of_the_plan(self):
		log = run_policy(make_policy("Restore secrets").name)
		self.assertEqual(log.status, "Success", log.error_message)
		secrets = {
			"destination secret": self.secret,
			"site encryption_key": frappe.conf.encryption_key,
			"backup_encryption_key": frappe.conf.backup_encryption_key,
			"database password": frappe.conf.db_password,
			"database root password": frappe.conf.root_password,
		}
		self.assertTrue(all(secrets.values()), [name for name, value in secrets.items() if not value])
		# A short secret (a development root password such as "123") turns up in hashes and
		# paths by chance: those are checked by the flags that would carry them instead.
		secrets = {name: value for name, value in secrets.items() if len(value) >= MIN_SEARCHABLE_SECRET}
		self.assertIn("destination secret", secrets)

		frappe.set_user(ADMIN_USER)
		renderings = {
			"guide (same site)": json.dumps(api.get_restore_guide(log.name), default=str),
			"guide (new site)": json.dumps(
				api.get_restore_guide(log.name, new_site="bm-restore-guide-copy.localhost"), default=str
			),
		}
		frappe.set_user("Administrator")
		for output_format in ("text", "json", "sh"):
			result = bench_command(
				"backup-manager",
				"restore-plan",
				log.name,
				"--new-site",
				"x.localhost",
				"--format",
				output_format,
			)
			self.assertEqual(result.returncode, 0, result.stderr)
			renderings[f"CLI {output_format}"] = result.stdout + result.stderr
		for rendering, text in renderings.items():
			for secret_name, secret in secrets.items():
				self.assertNotIn(secret, text, f"the {secret_name} appears in the {rendering}")
			for flag in (
				"--db-root-password",
				"--mariadb-root-password",
				"--admin-password",
				"--encryption-key",
			):
				self.assertNotIn(flag, text, f"the {rendering} passes a secret as {flag}")

	def test_guide_for_a_backup_whose_files_are_gone_says_where_to_read_it_from(self):
		log = run_policy(make_policy("Restore files gone", with_files=0).name)
		self.assertEqual(log.status, "Success", log.error_message)
		shutil.rmtree(log.backup_dir)
		frappe.db.set_value("Backup Log", log.name, "local_files_deleted", 1)
		frappe.db.commit()

		with self.assertRaises(frappe.ValidationError) as refused:
			api.get_restore_guide(log.name)
		self.assertIn(log.name, str(refused.exception))
		self.assertIn("no complete offsite copy", str(refused.exception))
		result = bench_command("backup-manager", "restore-plan", log.name)
		self.assertEqual(result.returncode, 1, result.stdout)
		self.assertIn("--from-destination", result.stderr)
		self.assertNotIn("Traceback", result.stderr)

		# Named, the destination is where the plan downloads from, with its keys from the environment.
		frappe.set_user(ADMIN_USER)
		guide = api.get_restore_guide(log.name, destination=DESTINATION_NAME)
		self.assertFalse(guide["backup"]["local_files"])
		download = next(step for step in guide["plan"]["steps"] if step["key"] == "download")
		self.assertIn("--endpoint-url=http://127.0.0.1:1", download["commands"][1])
		self.assertIn("--bucket=unused", download["commands"][1])
		self.assertEqual(
			{env_var["name"] for env_var in guide["plan"]["env_vars"] if env_var["required"]},
			{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BACKUP_MANIFEST_KEY"},
		)
		with self.assertRaises(frappe.ValidationError):
			api.get_restore_guide(log.name, destination="No Such Destination")
		with self.assertRaises(frappe.DoesNotExistError):
			api.get_restore_guide("BL-NO-SUCH-LOG")
