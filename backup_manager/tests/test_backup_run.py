"""A policy run end to end, in a real bench: real new_backup, MariaDB, RQ workers and files."""

import dataclasses
import gzip
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from datetime import timedelta

import frappe
import pymysql
from frappe.utils import add_to_date, get_datetime, now_datetime

from backup_manager import jobs, locks, migrate, notifications, reaper
from backup_manager.core.checksums import sha256_file
from backup_manager.core.manifest import (
	DATABASE,
	MANIFEST_FILE_NAME,
	PRIVATE_FILES,
	PUBLIC_FILES,
	SITE_CONFIG,
	Artifact,
	Manifest,
)
from backup_manager.local_backup import PARTIAL_SUFFIX, file_tars_beside, get_backup_root, when_created
from backup_manager.manifest_key import sign
from backup_manager.retention import apply_local_retention
from backup_manager.run_log import insert_log, save_log
from backup_manager.tests.utils import (
	FrappeTestCase,
	backup_dirs_on_disk,
	bench_argv,
	bench_command,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	make_user,
	run_worker_burst,
	sites_path,
)
from backup_manager.verification import verify_local_backup


def run_now(policy_name: str, trigger: str = "CLI"):
	return jobs.execute_run(jobs.start_run(policy=policy_name, trigger=trigger, enqueue=False))


class BackupRunTestCase(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		ensure_outgoing_email_account()

	def setUp(self):
		frappe.set_user("Administrator")
		delete_test_policies()

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.rollback()
		delete_test_policies()


class TestPolicyRun(BackupRunTestCase):
	def test_run_produces_four_artifacts_whose_sha256_matches_the_log(self):
		marker = frappe.get_doc(
			{"doctype": "ToDo", "description": "backup-manager-marker-" + frappe.generate_hash()}
		)
		marker.insert(ignore_permissions=True)
		frappe.db.commit()
		self.addCleanup(lambda: (frappe.delete_doc("ToDo", marker.name, force=True), frappe.db.commit()))

		policy = make_policy("artifacts")
		log = run_now(policy.name)

		self.assertEqual(log.status, "Success", log.error_message)
		self.assertEqual(log.trigger, "CLI")
		self.assertEqual(
			sorted(row.kind for row in log.artifacts),
			sorted([DATABASE, PUBLIC_FILES, PRIVATE_FILES, SITE_CONFIG]),
		)
		self.assertEqual(os.path.dirname(log.backup_dir), get_backup_root())
		self.assertTrue(os.path.basename(log.backup_dir).endswith(log.name))
		for row in log.artifacts:
			self.assertEqual(os.path.getsize(row.local_path), row.size)
			self.assertEqual(sha256_file(row.local_path), row.sha256)
			self.assertTrue(row.size_human)
		self.assertEqual(log.total_size, sum(row.size for row in log.artifacts))
		self.assertGreater(log.duration, 0)

		database = next(row for row in log.artifacts if row.kind == DATABASE)
		with gzip.open(database.local_path, "rt") as dump:
			self.assertIn(marker.description, dump.read())

		apps = {row.app: row for row in log.apps}
		self.assertEqual(apps["frappe"].version, frappe.__version__)
		self.assertIn("backup_manager", apps)
		self.assertEqual(log.frappe_version, frappe.__version__)
		manifest = Manifest.from_json(log.manifest)
		self.assertEqual(manifest.backup_id, log.backup_id)
		self.assertEqual([app.name for app in manifest.apps][0], "frappe")

		policy.reload()
		self.assertEqual(policy.last_status, "Success")
		self.assertEqual(policy.last_backup_log, log.name)
		self.assertFalse(any(name.endswith(PARTIAL_SUFFIX) for name in backup_dirs_on_disk()))

	def test_manifest_is_signed_with_the_site_key_and_files_are_private(self):
		from backup_manager.core.manifest import MANIFEST_KEY_CONFIG, VERIFIED, authenticate_manifest_data

		policy = make_policy("signed")
		log = run_now(policy.name)
		self.assertEqual(log.status, "Success", log.error_message)
		key = frappe.conf.get(MANIFEST_KEY_CONFIG)
		self.assertTrue(key)
		self.assertEqual(authenticate_manifest_data(json.loads(log.manifest), key), VERIFIED)
		self.assertNotIn(key, json.dumps(log.as_dict(), default=str))
		self.assertEqual(stat.S_IMODE(os.stat(log.backup_dir).st_mode), 0o700)
		self.assertEqual(stat.S_IMODE(os.stat(get_backup_root()).st_mode), 0o700)
		for row in log.artifacts:
			self.assertEqual(stat.S_IMODE(os.stat(row.local_path).st_mode), 0o600, row.file_name)
		# The key never travels with the backup: the backed-up site config does not hold it.
		config = next(row for row in log.artifacts if row.kind == SITE_CONFIG)
		with open(config.local_path) as handle:
			self.assertNotIn(MANIFEST_KEY_CONFIG, json.load(handle))

	def test_manifest_key_is_created_on_install_and_lazily_for_existing_installs(self):
		from frappe.installer import update_site_config

		from backup_manager.core.manifest import MANIFEST_KEY_CONFIG, VERIFIED, authenticate_manifest_data
		from backup_manager.install import after_install

		original = frappe.conf.get(MANIFEST_KEY_CONFIG)
		if original:
			self.addCleanup(update_site_config, MANIFEST_KEY_CONFIG, original)

		def stored_key():
			with open(frappe.get_site_path("site_config.json")) as handle:
				return json.load(handle).get(MANIFEST_KEY_CONFIG)

		update_site_config(MANIFEST_KEY_CONFIG, "None")
		frappe.local.conf.pop(MANIFEST_KEY_CONFIG, None)
		self.assertIsNone(stored_key())
		after_install()
		installed = stored_key()
		self.assertRegex(installed, r"\A[0-9a-f]{64}\Z")
		after_install()
		self.assertEqual(stored_key(), installed, "a second install must not replace the key")

		# A site installed before manifests were signed gets its key at its first backup.
		update_site_config(MANIFEST_KEY_CONFIG, "None")
		frappe.local.conf.pop(MANIFEST_KEY_CONFIG, None)
		log = run_now(make_policy("lazy-key", with_files=0).name)
		self.assertEqual(log.status, "Success", log.error_message)
		lazy = stored_key()
		self.assertRegex(lazy, r"\A[0-9a-f]{64}\Z")
		self.assertNotEqual(lazy, installed)
		self.assertEqual(authenticate_manifest_data(json.loads(log.manifest), lazy), VERIFIED)

	def test_verify_detects_a_changed_artifact(self):
		log = run_now(make_policy("verify").name)
		self.assertTrue(all(check.ok for check in verify_local_backup(log)))
		tar_path = next(row.local_path for row in log.artifacts if row.kind == PUBLIC_FILES)
		with open(tar_path, "r+b") as handle:
			handle.seek(100)
			byte = handle.read(1)
			handle.seek(100)
			handle.write(bytes([byte[0] ^ 0xFF]))
		checks = {check.kind: check for check in verify_local_backup(log)}
		self.assertFalse(checks[PUBLIC_FILES].ok)
		self.assertIn("sha256", checks[PUBLIC_FILES].message)
		self.assertTrue(checks[DATABASE].ok)

		result = bench_command("backup-manager", "verify", log.name)
		self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
		self.assertIn("failed verification", result.stderr)

	def test_database_only_partial_backup(self):
		policy = make_policy(
			"partial", with_files=0, partial_backup=1, include_doctypes=[{"document_type": "ToDo"}]
		)
		log = run_now(policy.name)
		self.assertEqual(log.status, "Success", log.error_message)
		self.assertEqual(sorted(row.kind for row in log.artifacts), [DATABASE, SITE_CONFIG])
		self.assertTrue(log.partial)
		database = next(row for row in log.artifacts if row.kind == DATABASE)
		with gzip.open(database.local_path, "rt") as dump:
			text = dump.read()
		self.assertIn("`tabToDo`", text)
		self.assertNotIn("CREATE TABLE `tabUser`", text)

	def test_failed_run_is_recorded_leaves_no_files_and_emails_recipients(self):
		policy = make_policy("failure")
		before = backup_dirs_on_disk()
		real_password = frappe.conf.db_password
		frappe.conf.db_password = "wrong-password-for-test"
		try:
			log = run_now(policy.name)
		finally:
			frappe.conf.db_password = real_password

		self.assertEqual(log.status, "Failed")
		self.assertEqual(log.error_class, "CommandFailedError")
		self.assertIn("Access denied", log.error_message)
		self.assertNotIn("wrong-password-for-test", log.error_message + (log.traceback or ""))
		self.assertFalse(log.artifacts)
		self.assertEqual(backup_dirs_on_disk(), before)
		self.assertEqual(frappe.db.get_value("Backup Policy", policy.name, "last_status"), "Failed")
		self.assertTrue(
			frappe.db.exists("Email Queue", {"reference_doctype": "Backup Log", "reference_name": log.name}),
			"a failed run must email the policy's recipients",
		)
		self.assertTrue(
			frappe.db.exists("Error Log", {"reference_doctype": "Backup Log", "reference_name": log.name})
		)

	def test_a_failed_file_tar_fails_the_run_and_leaves_no_files(self):
		policy = make_policy("tar-failure")
		before = backup_dirs_on_disk()
		files_folder = frappe.get_site_path("private", "files")
		moved = files_folder + ".moved-by-test"
		# tar cannot read a missing folder: Frappe's backup_files raises while the dump runs beside it.
		os.rename(files_folder, moved)
		try:
			log = run_now(policy.name)
		finally:
			os.rename(moved, files_folder)

		self.assertEqual(log.status, "Failed")
		self.assertEqual(log.error_class, "CommandFailedError")
		self.assertFalse(log.artifacts)
		self.assertEqual(backup_dirs_on_disk(), before)
		self.assertFalse(any(name.endswith(PARTIAL_SUFFIX) for name in os.listdir(get_backup_root())))

	def record_dump_command_lines(self) -> str:
		"""Put a mariadb-dump first on PATH that writes its arguments and its shell's command line to
		a file, then runs the real one; return the file's path."""
		folder = tempfile.mkdtemp(prefix="bm-dump-recorder-")
		self.addCleanup(shutil.rmtree, folder, True)
		record = os.path.join(folder, "seen")
		real = shutil.which("mariadb-dump") or shutil.which("mysqldump")
		recorder = os.path.join(folder, os.path.basename(real))
		with open(recorder, "w") as handle:
			handle.write(
				"#!/bin/sh\n"
				f'printf "%s\\n" "$*" > {shlex.quote(record)}\n'
				f'tr "\\000" " " < /proc/$PPID/cmdline >> {shlex.quote(record)}\n'
				f'exec {shlex.quote(real)} "$@"\n'
			)
		os.chmod(recorder, 0o700)
		previous = os.environ["PATH"]
		os.environ["PATH"] = folder + os.pathsep + previous
		self.addCleanup(os.environ.__setitem__, "PATH", previous)
		return record

	def test_the_database_password_is_on_no_command_line_of_the_dump(self):
		policy = make_policy("dump-password", with_files=0)
		record = self.record_dump_command_lines()
		log = run_now(policy.name)
		self.assertEqual(log.status, "Success", log.error_message)
		with open(record) as handle:
			seen = handle.read()
		self.assertIn("--single-transaction", seen, "the recorder ran as Frappe's dump program")
		self.assertIn("set -o pipefail", seen, "the command line of Frappe's shell was read")
		self.assertNotIn(frappe.conf.db_password, seen)

	def test_an_option_file_password_still_lets_the_dump_connect(self):
		# mariadb-dump prefers ~/.my.cnf's password to MYSQL_PWD: Frappe's command line is kept then.
		policy = make_policy("dump-option-file", with_files=0)
		record = self.record_dump_command_lines()
		home = tempfile.mkdtemp(prefix="bm-home-")
		self.addCleanup(shutil.rmtree, home, True)
		with open(os.path.join(home, ".my.cnf"), "w") as handle:
			handle.write("[client]\npassword=not-the-site-password\n")
		previous = os.environ["HOME"]
		os.environ["HOME"] = home
		self.addCleanup(os.environ.__setitem__, "HOME", previous)
		log = run_now(policy.name)
		self.assertEqual(log.status, "Success", log.error_message)
		with open(record) as handle:
			self.assertIn(frappe.conf.db_password, handle.read(), "the fallback passes Frappe's own command")

	def test_cli_run_prints_the_log_and_exits_non_zero_on_failure(self):
		policy = make_policy("cli", with_files=0)
		ok = bench_command("backup-manager", "run", "--policy", policy.name)
		self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
		log_name = ok.stdout.split("\t")[0].strip()
		frappe.db.rollback()  # see the subprocess's commits
		self.assertEqual(
			frappe.db.get_value("Backup Log", log_name, ["status", "trigger"]), ("Success", "CLI")
		)

		missing = bench_command("backup-manager", "run", "--policy", "No Such Policy")
		self.assertEqual(missing.returncode, 1)
		self.assertIn("does not exist", missing.stderr)

		listing = bench_command("backup-manager", "list", "--policy", policy.name)
		self.assertIn(log_name, listing.stdout)


class TestSchedulingAndConcurrency(BackupRunTestCase):
	def test_due_policy_is_queued_on_tick_and_run_by_a_real_worker(self):
		policy = make_policy("scheduled", enabled=1, with_files=0)
		past = add_to_date(now_datetime(), minutes=-5)
		frappe.db.set_value("Backup Policy", policy.name, "next_run_at", past)
		frappe.db.commit()

		jobs.enqueue_due_policies(now_datetime())
		frappe.db.commit()  # enqueue_after_commit: the job reaches Redis now
		log_name = frappe.db.get_value("Backup Log", {"policy": policy.name}, "name")
		self.assertEqual(
			frappe.db.get_value("Backup Log", log_name, ["status", "trigger"]), ("Queued", "Scheduled")
		)
		self.assertGreater(
			get_datetime(frappe.db.get_value("Backup Policy", policy.name, "next_run_at")), now_datetime()
		)

		# Not due any more: a second tick starts nothing.
		jobs.enqueue_due_policies(now_datetime())
		self.assertEqual(frappe.db.count("Backup Log", {"policy": policy.name}), 1)

		run_worker_burst("long")
		frappe.db.rollback()
		self.assertEqual(frappe.db.get_value("Backup Log", log_name, "status"), "Success")

	def test_second_trigger_while_queued_is_recorded_as_skipped(self):
		policy = make_policy("concurrent", with_files=0)
		first = jobs.start_run(policy=policy.name, trigger="Manual")
		second = jobs.start_run(policy=policy.name, trigger="Manual")
		frappe.db.commit()
		self.assertEqual(first.status, "Queued")
		self.assertEqual(second.status, "Skipped")
		self.assertIn(first.name, second.skip_reason)
		run_worker_burst("long")
		frappe.db.rollback()
		statuses = frappe.get_all("Backup Log", filters={"policy": policy.name}, pluck="status")
		self.assertEqual(sorted(statuses), ["Skipped", "Success"])

	def test_run_is_skipped_while_another_connection_holds_the_policy_lock(self):
		policy = make_policy("locked", with_files=0)
		other = pymysql.connect(
			host=frappe.conf.db_host or "127.0.0.1",
			port=int(frappe.conf.db_port or 3306),
			user=frappe.conf.db_name,
			password=frappe.conf.db_password,
			database=frappe.conf.db_name,
		)
		self.addCleanup(other.close)
		with other.cursor() as cursor:
			cursor.execute("SELECT GET_LOCK(%s, 0)", (locks.policy_lock_name(policy.name),))
			self.assertEqual(cursor.fetchone()[0], 1)

		skipped = run_now(policy.name)
		self.assertEqual(skipped.status, "Skipped")
		# The other holder looks like a live run: the reaper must leave a Running log alone.
		frappe.db.set_value("Backup Log", skipped.name, "status", "Running")
		reaper.reap_dead_runs()
		self.assertEqual(frappe.db.get_value("Backup Log", skipped.name, "status"), "Running")

		with other.cursor() as cursor:
			cursor.execute("SELECT RELEASE_LOCK(%s)", (locks.policy_lock_name(policy.name),))
		reaper.reap_dead_runs()
		self.assertEqual(frappe.db.get_value("Backup Log", skipped.name, "status"), "Failed")

	def test_a_running_log_with_no_live_run_does_not_block_the_next_run(self):
		# What a same-site restore leaves: the dump was taken while this log was Running, and no
		# process holds the policy lock. Without a scheduler no tick would ever reap it.
		policy = make_policy("restored running log", with_files=0)
		stale = jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False)
		frappe.db.set_value("Backup Log", stale.name, "status", "Running")
		frappe.db.commit()

		log = run_now(policy.name)
		self.assertEqual(log.status, "Success", log.error_message)
		stale.reload()
		self.assertEqual(stale.status, "Failed")
		self.assertEqual(stale.error_class, "RunDied")

	def test_sizes_above_2_gib_are_stored(self):
		# Int columns stop at 2**31 - 1: a 2.7 GB backup once failed to save its log.
		log = run_now(make_policy("large sizes", with_files=0).name)
		self.assertEqual(log.status, "Success", log.error_message)
		log.total_size = 5 * 1024**3 + 1
		log.artifacts[0].size = 3 * 1024**3 + 7
		log.append(
			"uploads",
			{
				"kind": "database",
				"status": "Uploaded",
				"bytes": 4 * 1024**3,
				"represented_bytes": 6 * 1024**3,
			},
		)
		save_log(log)
		stored = frappe.get_doc("Backup Log", log.name)
		self.assertEqual(stored.total_size, 5 * 1024**3 + 1)
		self.assertEqual(stored.artifacts[0].size, 3 * 1024**3 + 7)
		self.assertEqual(
			(stored.uploads[0].bytes, stored.uploads[0].represented_bytes), (4 * 1024**3, 6 * 1024**3)
		)

	def test_killed_run_is_marked_failed_on_a_later_tick(self):
		# A large public file makes the run last long enough to kill it mid-way.
		big_file = frappe.get_site_path("public", "files", "bm-test-big.bin")
		with open(big_file, "wb") as handle:
			for _ in range(300):
				handle.write(os.urandom(1024 * 1024))
		self.addCleanup(os.remove, big_file)
		policy = make_policy("killed")

		process = subprocess.Popen(
			bench_argv("backup-manager", "run", "--policy", policy.name),
			cwd=sites_path(),
			stdout=subprocess.DEVNULL,
			stderr=subprocess.DEVNULL,
			start_new_session=True,
		)
		log_name = None
		deadline = time.monotonic() + 120
		while time.monotonic() < deadline:
			frappe.db.rollback()
			log_name = frappe.db.get_value("Backup Log", {"policy": policy.name, "status": "Running"}, "name")
			if log_name:
				break
			time.sleep(0.2)
		self.assertIsNotNone(log_name, "the run never reached Running")
		backup_id = frappe.db.get_value("Backup Log", log_name, "backup_id")
		os.killpg(process.pid, signal.SIGKILL)
		process.wait(timeout=30)

		time.sleep(1)  # let MariaDB notice the dropped connection and free its lock
		reaper.reap_dead_runs()
		log = frappe.get_doc("Backup Log", log_name)
		self.assertEqual(log.status, "Failed")
		self.assertEqual(log.error_class, "RunDied")
		self.assertIn("stopped without finishing", log.error_message)
		self.assertNotIn(backup_id + PARTIAL_SUFFIX, backup_dirs_on_disk())
		self.assertNotIn(backup_id, backup_dirs_on_disk())

	def test_a_finished_folder_its_dead_run_never_recorded_is_kept_and_recorded(self):
		# A run killed between finishing its folder and saving the log, or a database restored from
		# a dump taken while the run was going: the folder is a complete backup (the very one a
		# restore came from), so the reaper records it from its signed manifest.json.
		policy = make_policy("died before recording", with_files=0)

		def dead_run_with_folder(backup_id: str, describe, policy=policy) -> tuple:
			folder = os.path.join(get_backup_root(), backup_id)
			os.makedirs(folder)
			self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
			dump = os.path.join(folder, "site-database.sql.gz")
			with gzip.open(dump, "wb") as handle:
				handle.write(b"-- a finished dump\n")
			artifact = Artifact(DATABASE, "site-database.sql.gz", os.path.getsize(dump), sha256_file(dump))
			manifest = Manifest(
				backup_id=backup_id,
				site=frappe.local.site,
				created_at="2026-12-03T00:00:00Z",
				frappe_version=frappe.__version__,
				artifacts=[artifact],
			)
			written = describe(manifest)
			if written is not None:
				with open(os.path.join(folder, MANIFEST_FILE_NAME), "w") as handle:
					handle.write(written)
			log = frappe.new_doc("Backup Log")
			log.update(
				{
					"policy": policy.name,
					"trigger": "CLI",
					"site": frappe.local.site,
					"status": "Running",
					"queued_at": now_datetime(),
					"started_at": now_datetime(),
					"backup_id": backup_id,
				}
			)
			insert_log(log)
			reaper.reap_dead_runs(policy=policy.name)
			log.reload()
			return log, folder, artifact

		log, folder, artifact = dead_run_with_folder(
			"20261203T000000Z-died-before-recording", lambda manifest: sign(manifest).to_json()
		)
		# The policy has no destination: the run's work was done, so it is the Success it would
		# have been (no false alarm after a same-site restore), with the reason on the log.
		self.assertEqual(log.status, "Success")
		self.assertIn("before recording it on this log", log.error_message)
		self.assertIn(log.backup_id, backup_dirs_on_disk())
		self.assertEqual(log.backup_dir, folder)
		self.assertEqual([(row.kind, row.sha256) for row in log.artifacts], [(DATABASE, artifact.sha256)])
		self.assertEqual(frappe.db.get_value("Backup Policy", policy.name, "last_status"), "Success")

		# With a destination, the local part is done but the offsite copy is not: Failed, with the
		# upload retried by the next tick, as for a run that died while uploading. (The destination
		# is never contacted here.)
		destination = frappe.get_doc(
			{
				"doctype": "Backup Destination",
				"destination_name": "_Test BM Dest died before uploading",
				"provider": "MinIO",
				"endpoint_url": "http://127.0.0.1:1",
				"bucket": "unused",
				"access_key_id": "unused",
				"secret_access_key": "unused-secret",
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		self.addCleanup(frappe.db.commit)
		self.addCleanup(frappe.delete_doc, "Backup Destination", destination.name, force=True)
		with_destination = make_policy(
			"died before uploading", with_files=0, destinations=[{"destination": destination.name}]
		)
		log, folder, artifact = dead_run_with_folder(
			"20261203T000003Z-died-before-uploading",
			lambda manifest: sign(manifest).to_json(),
			policy=with_destination,
		)
		self.assertEqual((log.status, log.error_class), ("Failed", "RunDied"))
		self.assertIn("Its upload starts again on the next tick", log.error_message)
		self.assertIsNotNone(log.next_upload_retry_at)
		self.assertEqual((log.backup_dir, len(log.artifacts)), (folder, 1))

		# A folder that does not hold what its manifest lists, or whose manifest this site did not
		# sign, is kept and listed on the failed log, never called good.
		for backup_id, describe, why in (
			(
				"20261203T000001Z-died-with-a-short-file",
				lambda manifest: sign(
					dataclasses.replace(
						manifest, artifacts=[dataclasses.replace(manifest.artifacts[0], size=999)]
					)
				).to_json(),
				"its files are not the ones its manifest.json lists: do not restore from it",
			),
			(
				"20261203T000002Z-died-with-an-unsigned-manifest",
				lambda manifest: manifest.to_json(),
				"is not one this site signed for this backup: do not restore from it",
			),
			# A folder of a version that wrote no manifest: kept and listed, not judged.
			("20261203T000004Z-died-without-a-manifest", lambda manifest: None, "holds no manifest.json"),
		):
			log, folder, _artifact = dead_run_with_folder(backup_id, describe)
			self.assertEqual((log.status, log.error_class), ("Failed", "RunDied"), backup_id)
			self.assertIn(why, log.error_message)
			self.assertEqual((log.backup_dir, list(log.artifacts)), (folder, []))
			self.assertIn(backup_id, backup_dirs_on_disk())

	def test_queued_run_whose_job_vanished_is_failed(self):
		policy = make_policy("vanished", with_files=0)
		log = jobs.start_run(policy=policy.name, trigger="Manual", enqueue=False)
		frappe.db.set_value("Backup Log", log.name, "queued_at", add_to_date(now_datetime(), hours=-2))
		reaper.reap_dead_runs()
		self.assertEqual(frappe.db.get_value("Backup Log", log.name, "status"), "Failed")


class TestLocalRetention(BackupRunTestCase):
	def make_fake_backup(self, policy_name: str, started_at, keep_forever=0, status="Success"):
		"""A Success log with a real folder in the backup root, as a run would leave it."""
		log = frappe.new_doc("Backup Log")
		log.update(
			{
				"policy": policy_name,
				"status": status,
				"trigger": "Scheduled",
				"site": frappe.local.site,
				"started_at": started_at,
				"keep_forever": keep_forever,
			}
		)
		log.flags.written_by_backup_manager = True
		log.insert(ignore_permissions=True)
		backup_id = f"{get_datetime(started_at):%Y%m%dT%H%M%SZ}-{log.name}"
		backup_dir = os.path.join(get_backup_root(), backup_id)
		os.makedirs(backup_dir)
		with open(os.path.join(backup_dir, "database.sql.gz"), "wb") as handle:
			handle.write(gzip.compress(b"-- test"))
		log.db_set({"backup_id": backup_id, "backup_dir": backup_dir})
		return log

	def test_retention_keeps_exactly_the_expected_backups(self):
		policy = make_policy("retention", keep_last=2, keep_daily=3)
		base = get_datetime("2026-11-28 02:00:00")
		logs = {}
		for days_ago in range(6):
			logs[days_ago] = self.make_fake_backup(policy.name, base - timedelta(days=days_ago))
		extra_same_day = self.make_fake_backup(policy.name, base - timedelta(days=1, hours=1))
		pinned = self.make_fake_backup(policy.name, base - timedelta(days=30), keep_forever=1)
		foreign_dir = os.path.join(get_backup_root(), "operator-notes")
		os.makedirs(foreign_dir, exist_ok=True)
		self.addCleanup(shutil.rmtree, foreign_dir)
		frappe.db.commit()

		dry = apply_local_retention(policy, dry_run=True)
		self.assertEqual(len([verdict for verdict in dry if not verdict.keep]), 4)
		self.assertTrue(all(os.path.isdir(log.backup_dir) for log in logs.values()), "dry run deleted files")

		result = bench_command("backup-manager", "prune", "--policy", policy.name, "--dry-run")
		self.assertEqual(result.returncode, 0, result.stderr)
		self.assertIn("would prune", result.stdout)

		apply_local_retention(policy)
		expected_kept = {logs[0].name, logs[1].name, logs[2].name, pinned.name}
		for log in [*logs.values(), extra_same_day, pinned]:
			log.reload()
			with self.subTest(log=log.name):
				if log.name in expected_kept:
					self.assertFalse(log.local_files_deleted)
					self.assertTrue(os.path.isdir(log.backup_dir))
				else:
					self.assertTrue(log.local_files_deleted)
					self.assertFalse(os.path.exists(log.backup_dir))
					self.assertTrue(log.prune_reason)
		self.assertTrue(os.path.isdir(foreign_dir), "retention deleted a folder it did not create")

	def test_newest_successful_backup_survives_and_a_real_run_prunes_older_ones(self):
		policy = make_policy("retention-run", with_files=0, keep_last=1)
		first = run_now(policy.name)
		second = run_now(policy.name)
		self.assertEqual((first.status, second.status), ("Success", "Success"))
		first.reload()
		self.assertTrue(first.local_files_deleted)
		self.assertFalse(os.path.exists(first.backup_dir))
		self.assertTrue(os.path.isdir(second.backup_dir))

	def test_log_is_read_only_except_keep_forever(self):
		policy = make_policy("readonly", with_files=0)
		log = frappe.get_doc("Backup Log", run_now(policy.name).name)
		log.keep_forever = 1
		log.save()
		log = frappe.get_doc("Backup Log", log.name)
		self.assertTrue(log.keep_forever)
		log.status = "Failed"
		with self.assertRaises(frappe.ValidationError):
			log.save()

	def test_log_child_tables_cannot_be_changed_by_a_system_manager(self):
		from frappe.client import save as client_save

		from backup_manager.backup_manager.doctype.backup_log.backup_log import BackupLogReadOnly

		policy = make_policy("readonly-tables", with_files=0)
		name = run_now(policy.name).name
		make_user("bm-sysmanager@example.com", ["System Manager"])
		self.addCleanup(frappe.set_user, "Administrator")
		frappe.set_user("bm-sysmanager@example.com")
		for table, field_name, value in (
			("artifacts", "sha256", "0" * 64),
			("apps", "version", "99.0.0"),
			("uploads", None, None),
		):
			with self.subTest(table=table):
				doc = frappe.get_doc("Backup Log", name).as_dict()
				if field_name:
					doc[table][0][field_name] = value
				else:
					doc[table].append({"doctype": "Backup Log Upload", "destination": "", "kind": "manifest"})
				with self.assertRaises(BackupLogReadOnly) as caught:
					client_save(doc)
				self.assertIn("only Keep Forever can be changed", str(caught.exception))
				frappe.db.rollback()
		doc = frappe.get_doc("Backup Log", name).as_dict()
		doc["artifacts"] = doc["artifacts"][1:]
		with self.assertRaises(BackupLogReadOnly):
			client_save(doc)
		frappe.db.rollback()
		# Keep Forever alone still saves, through the same API.
		doc = frappe.get_doc("Backup Log", name).as_dict()
		doc["keep_forever"] = 1
		client_save(doc)
		self.assertTrue(frappe.db.get_value("Backup Log", name, "keep_forever"))
		stored = frappe.get_doc("Backup Log", name)
		self.assertEqual(
			[row.sha256 for row in stored.artifacts],
			[artifact.sha256 for artifact in stored.get_manifest().artifacts],
		)


class TestAlertsAndMigrate(BackupRunTestCase):
	def test_missed_backup_alert_is_sent_once_per_window(self):
		policy = make_policy("stale", enabled=1, alert_after_hours=2)
		frappe.db.set_value(
			"Backup Policy",
			policy.name,
			"creation",
			add_to_date(now_datetime(), hours=-5),
			update_modified=False,
		)
		frappe.db.commit()
		filters = {"reference_doctype": "Backup Policy", "reference_name": policy.name}
		now = now_datetime()
		notifications.send_missed_backup_alerts(now)
		notifications.send_missed_backup_alerts(add_to_date(now, minutes=1))
		notifications.send_missed_backup_alerts(add_to_date(now, minutes=90))
		self.assertEqual(frappe.db.count("Email Queue", filters), 1)
		notifications.send_missed_backup_alerts(add_to_date(now, hours=2, minutes=1))
		self.assertEqual(frappe.db.count("Email Queue", filters), 2)

	def test_backup_before_migrate_runs_and_a_failure_stops_the_migrate(self):
		policy = make_policy("migrate", enabled=1, with_files=0, backup_before_migrate=1)
		migrate.backup_before_migrate()
		self.assertEqual(
			frappe.db.get_value("Backup Log", {"policy": policy.name}, ["trigger", "status"]),
			("Before Migrate", "Success"),
		)
		real_password = frappe.conf.db_password
		frappe.conf.db_password = "wrong-password-for-test"
		try:
			with self.assertRaises(migrate.BackupBeforeMigrateFailed) as caught:
				migrate.backup_before_migrate()
		finally:
			frappe.conf.db_password = real_password
		self.assertIn("BACKUP_MANAGER_SKIP_MIGRATE_BACKUP=1 bench --site", str(caught.exception))

		os.environ[migrate.SKIP_MIGRATE_BACKUP_ENV] = "1"
		self.addCleanup(os.environ.pop, migrate.SKIP_MIGRATE_BACKUP_ENV, None)
		count = frappe.db.count("Backup Log", {"policy": policy.name})
		migrate.backup_before_migrate()
		self.assertEqual(frappe.db.count("Backup Log", {"policy": policy.name}), count)


class TestEncryptedBackup(BackupRunTestCase):
	def set_encrypt_backup(self, value: int):
		frappe.db.set_single_value("System Settings", "encrypt_backup", value)
		frappe.db.commit()
		frappe.clear_document_cache("System Settings", "System Settings")
		if hasattr(frappe.local, "system_settings"):
			del frappe.local.system_settings

	def test_encrypted_backup_encrypts_every_artifact_including_the_site_config(self):
		import json
		import tempfile

		from frappe.utils.backups import get_or_generate_backup_encryption_key

		from backup_manager.core.checksums import verify_gzip_complete
		from backup_manager.core.encryption import decrypt_file, is_gpg_encrypted

		self.set_encrypt_backup(1)
		self.addCleanup(self.set_encrypt_backup, 0)
		log = run_now(make_policy("encrypted").name)
		self.assertEqual(log.status, "Success", log.error_message)
		self.assertTrue(log.encrypted)
		self.assertEqual(len(log.artifacts), 4)
		for row in log.artifacts:
			with self.subTest(kind=row.kind):
				self.assertTrue(row.encrypted)
				self.assertTrue(is_gpg_encrypted(row.local_path))

		key = get_or_generate_backup_encryption_key()
		self.assertNotIn(key, json.dumps(log.as_dict(), default=str))
		with tempfile.TemporaryDirectory() as folder:
			database = next(row for row in log.artifacts if row.kind == DATABASE)
			decrypt_file(database.local_path, os.path.join(folder, "db.sql.gz"), key)
			verify_gzip_complete(os.path.join(folder, "db.sql.gz"))
			config = next(row for row in log.artifacts if row.kind == SITE_CONFIG)
			decrypt_file(config.local_path, os.path.join(folder, "config.json"), key)
			with open(os.path.join(folder, "config.json")) as handle:
				self.assertEqual(json.load(handle)["db_name"], frappe.conf.db_name)
		self.assertTrue(all(check.ok for check in verify_local_backup(log)))


class TestRealMigrate(BackupRunTestCase):
	def test_bench_migrate_backs_up_first_and_a_failed_backup_stops_it(self):
		policy = make_policy("real-migrate", enabled=1, with_files=0, backup_before_migrate=1)
		result = bench_command("migrate", timeout=900)
		self.assertEqual(result.returncode, 0, result.stdout[-2000:] + result.stderr[-2000:])
		frappe.db.rollback()
		self.assertEqual(
			frappe.db.get_value("Backup Log", {"policy": policy.name}, ["trigger", "status"]),
			("Before Migrate", "Success"),
		)

		# A backup folder that cannot be created (its parent is a file) makes the backup fail.
		blocker = os.path.join(sites_path(), "bm-test-not-a-folder")
		with open(blocker, "w") as handle:
			handle.write("a file, not a folder")
		self.addCleanup(os.remove, blocker)
		self.assertEqual(bench_command("set-config", "backup_manager_path", blocker).returncode, 0)
		self.addCleanup(bench_command, "set-config", "backup_manager_path", "")
		result = bench_command("migrate", timeout=900)
		self.assertNotEqual(result.returncode, 0, "a failed backup must stop the migrate")
		self.assertIn("Backup before migrate failed for policy", result.stdout + result.stderr)
		self.assertIn("BACKUP_MANAGER_SKIP_MIGRATE_BACKUP=1", result.stdout + result.stderr)
		frappe.db.rollback()
		statuses = frappe.get_all(
			"Backup Log", filters={"policy": policy.name}, pluck="status", order_by="creation asc"
		)
		self.assertEqual(statuses, ["Success", "Failed"])


class TestWhenCreated(FrappeTestCase):
	"""The public tar is handed over once Frappe starts the private one (local_backup.when_created)."""

	def setUp(self):
		self.folder = tempfile.mkdtemp(prefix="bm-when-created-")
		self.addCleanup(shutil.rmtree, self.folder, True)
		self.path = os.path.join(self.folder, "private-files.tar")
		self.calls = []

	def test_called_once_when_the_file_appears_during_the_block(self):
		with when_created(self.path, lambda: self.calls.append(time.monotonic()), poll_seconds=0.01):
			time.sleep(0.05)
			self.assertEqual(self.calls, [])
			with open(self.path, "w") as handle:
				handle.write("tar")
			deadline = time.monotonic() + 5
			while not self.calls and time.monotonic() < deadline:
				time.sleep(0.01)
			self.assertEqual(len(self.calls), 1, "called while the block still runs")
			time.sleep(0.05)
		self.assertEqual(len(self.calls), 1)

	def test_not_called_when_the_file_never_appears_or_appears_after_the_block(self):
		with when_created(self.path, lambda: self.calls.append(1), poll_seconds=0.01):
			time.sleep(0.05)
		with open(self.path, "w") as handle:
			handle.write("tar")
		time.sleep(0.05)
		self.assertEqual(self.calls, [])


class StandInGenerator:
	"""Records where and when backup_files ran; a real BackupGenerator's tars are run by the tests above."""

	def __init__(self, folder: str, *, fail: bool = False, seconds: float = 0.2):
		self.backup_path_private_files = os.path.join(folder, "private-files.tar")
		self.fail, self.seconds = fail, seconds
		self.site_seen = None
		self.thread = None
		self.ended_at = None
		self.done_in = None
		self.command = ""

	def done(self):
		import threading

		self.done_in = threading.current_thread().name

	def backup_files(self):
		import threading

		self.site_seen = frappe.local.site
		self.thread = threading.current_thread().name
		time.sleep(self.seconds)
		if self.command:
			frappe.utils.execute_in_shell(self.command, low_priority=True, check_exit_code=True)
		self.ended_at = time.monotonic()
		if self.fail:
			raise frappe.CommandFailedError("tar failed", "", "tar: Cannot stat")


class TestFileTarsBeside(FrappeTestCase):
	"""Frappe's backup_files runs in a thread beside the dump (local_backup.file_tars_beside)."""

	def setUp(self):
		self.folder = tempfile.mkdtemp(prefix="bm-tars-beside-")
		self.addCleanup(shutil.rmtree, self.folder, True)

	def test_runs_in_another_thread_seeing_the_site_while_the_block_runs(self):
		generator = StandInGenerator(self.folder, seconds=0.3)
		started = time.monotonic()
		with file_tars_beside(generator, lambda: None, generator.done) as tars:
			block_ended = time.monotonic()
		self.assertLess(block_ended - started, 0.25, "the block did not wait for the tars")
		self.assertTrue(tars.written)
		self.assertEqual(generator.site_seen, frappe.local.site)
		self.assertEqual(generator.thread, "backup-manager-file-tars")
		self.assertEqual(
			generator.done_in, "backup-manager-file-tars", "the tars are checked from their thread"
		)
		self.assertIsNotNone(generator.ended_at, "the tars were waited for when the block ended")

	def test_a_tar_failure_is_raised_when_the_block_ends(self):
		generator = StandInGenerator(self.folder, fail=True)
		with (
			self.assertRaises(frappe.CommandFailedError),
			file_tars_beside(generator, lambda: None, generator.done),
		):
			pass
		self.assertIsNone(generator.done_in, "failed tars are not checked")

	def test_a_failing_block_waits_for_the_tars_before_raising(self):
		generator = StandInGenerator(self.folder, seconds=0.3)
		with self.assertRaises(RuntimeError), file_tars_beside(generator, lambda: None, generator.done):
			raise RuntimeError("the dump failed")
		self.assertIsNotNone(generator.ended_at, "the folder must not be removed under a running tar")

	def test_a_failing_block_stops_a_running_tar_command(self):
		# Frappe's own execute_in_shell, as backup_files runs tar: a command naming the folder.
		generator = StandInGenerator(self.folder, seconds=0)
		generator.command = f"sleep 60 && true {generator.backup_path_private_files}"
		started = time.monotonic()
		with self.assertRaises(RuntimeError), file_tars_beside(generator, lambda: None, generator.done):
			time.sleep(0.3)
			raise RuntimeError("the dump failed")
		self.assertLess(time.monotonic() - started, 10, "the failed run waited for the tar command")
		self.assertIsNone(generator.done_in, "stopped tars are not checked")

	def test_disabled_writes_nothing(self):
		generator = StandInGenerator(self.folder)
		with file_tars_beside(generator, lambda: None, generator.done, enabled=False) as tars:
			pass
		self.assertFalse(tars.written)
		self.assertIsNone(generator.thread)
		self.assertIsNone(generator.done_in)
