"""Restore drills for real: a throwaway site on this bench, MariaDB, SeaweedFS, and a killed drill.

One backup is taken for the whole class (each full drill costs about a minute); tests that
change it (a corrupted file, edited row counts) put it back.
"""

import hashlib
import json
import os
import signal
import subprocess
import time

import frappe
from frappe.utils import add_to_date, now_datetime

from backup_manager import drills, jobs
from backup_manager.api import run_restore_drill
from backup_manager.core.drill import is_drill_site_name
from backup_manager.locks import drill_lock_name, is_drill_locked
from backup_manager.notifications import send_unverified_restore_alerts
from backup_manager.tests.test_offsite_run import S3_ENDPOINT, make_destination, s3_client
from backup_manager.tests.utils import (
	FrappeTestCase,
	bench_argv,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	make_user,
	sites_path,
)

# Live tables a drill must never write to (it writes only its own records and the backup's flags).
LIVE_TABLES = ("tabToDo", "tabUser", "__Auth", "tabFile", "tabBackup Destination")


def root_connection():
	return drills.connect_as(frappe.conf.get("root_login") or "root", frappe.conf.root_password)


def database_names() -> set[str]:
	connection = root_connection()
	try:
		with connection.cursor() as cursor:
			cursor.execute("SELECT schema_name FROM information_schema.schemata")
			return {row[0] for row in cursor.fetchall()}
	finally:
		connection.close()


def checksum_live_tables() -> dict:
	return {
		table: frappe.db.sql(f"CHECKSUM TABLE `{table}`")[0][1]  # noqa: S608 (fixed names)
		for table in LIVE_TABLES
	}


def hash_folder(path: str) -> dict:
	hashes = {}
	for directory, _folders, files in os.walk(path):
		for name in files:
			full = os.path.join(directory, name)
			with open(full, "rb") as handle:
				hashes[os.path.relpath(full, path)] = hashlib.sha256(handle.read()).hexdigest()
	return hashes


def drill_leftovers() -> list[str]:
	"""What a drill may leave on the bench: sites, archived copies, work folders."""
	bench = os.path.dirname(sites_path())
	found = [name for name in os.listdir(sites_path()) if is_drill_site_name(name)]
	for folder in ("archived/sites", drills.DRILL_WORK_FOLDER):
		path = os.path.join(bench, folder)
		if os.path.isdir(path):
			found += [f"{folder}/{name}" for name in os.listdir(path) if name.startswith("bm-drill-")]
	return found


def run_drill(log_name: str, destination: str | None = None):
	drill = drills.start_drill(
		backup_log=log_name, trigger="CLI", destination=destination, prefer_local=True, enqueue=False
	)
	return drills.execute_drill(drill)


def checks_of(drill) -> dict:
	return {row.check: (row.result, row.detail) for row in drill.checks}


class TestRestoreDrill(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		if not S3_ENDPOINT:
			raise AssertionError("Restore drill tests need the S3 server: set BM_TEST_S3_ENDPOINT")
		frappe.set_user("Administrator")
		ensure_outgoing_email_account()
		cls.log = cls.destination = cls.bucket = None
		cls.marker = "bm-drill-marker-" + frappe.generate_hash(length=8)
		try:
			cls.make_class_backup()
		except Exception:
			cls.tearDownClass()
			raise

	@classmethod
	def make_class_backup(cls):
		frappe.get_doc({"doctype": "ToDo", "description": cls.marker}).insert(ignore_permissions=True)
		for folder in ("public", "private"):
			with open(frappe.get_site_path(folder, "files", f"{cls.marker}.bin"), "wb") as handle:
				handle.write(os.urandom(5000))
		cls.bucket = "bm-drill-" + frappe.generate_hash(length=8).lower()
		s3_client().create_bucket(Bucket=cls.bucket)
		# Its secret key is a Password field: the drill decrypts it with the carried encryption_key.
		cls.destination = make_destination("drill", cls.bucket)
		cls.policy = make_policy("drill", destinations=[{"destination": cls.destination.name}])
		cls.log = jobs.execute_run(jobs.start_run(policy=cls.policy.name, trigger="CLI", enqueue=False))
		if cls.log.status != "Success":
			raise AssertionError(f"The class backup failed: {cls.log.error_message}")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		frappe.db.rollback()
		for name in frappe.get_all(
			"Backup Restore Drill", filters={"backup_log": cls.log.name if cls.log else ""}, pluck="name"
		):
			frappe.db.delete(
				"Email Queue", {"reference_doctype": "Backup Restore Drill", "reference_name": name}
			)
			frappe.delete_doc("Backup Restore Drill", name, force=True, ignore_permissions=True)
		delete_test_policies()
		if cls.destination:
			frappe.delete_doc("Backup Destination", cls.destination.name, force=True, ignore_permissions=True)
		for name in frappe.get_all("ToDo", filters={"description": cls.marker}, pluck="name"):
			frappe.delete_doc("ToDo", name, force=True, ignore_permissions=True)
		for folder in ("public", "private"):
			path = frappe.get_site_path(folder, "files", f"{cls.marker}.bin")
			if os.path.exists(path):
				os.remove(path)
		if cls.bucket:
			client = s3_client()
			for item in client.list_objects_v2(Bucket=cls.bucket).get("Contents", []):
				client.delete_object(Bucket=cls.bucket, Key=item["Key"])
			client.delete_bucket(Bucket=cls.bucket)
		frappe.db.commit()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")
		self.assertEqual(drill_leftovers(), [])

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.rollback()
		self.assertEqual(drill_leftovers(), [])

	def test_drill_from_local_files_passes_and_never_touches_the_live_site(self):
		tables = checksum_live_tables()
		files = {
			folder: hash_folder(frappe.get_site_path(folder, "files")) for folder in ("public", "private")
		}
		with open(os.path.join(sites_path(), "common_site_config.json"), "rb") as handle:
			common_config = handle.read()

		drill = run_drill(self.log.name)

		self.assertEqual(drill.status, "Passed", drill.error_message or drill.output)
		checks = checks_of(drill)
		for name in ("Restore", "Row counts", "Migrate", "Site answers", "Encryption key", "Apps"):
			self.assertEqual(checks[name][0], "Passed", f"{name}: {checks[name][1]}")
		for name in ("Public files", "Private files"):
			self.assertEqual(checks[name][0], "Passed", checks[name][1])
			self.assertIn("sampled files hash equal", checks[name][1])
		self.assertIn("Backup Destination", checks["Encryption key"][1])
		self.assertEqual(drill.source, "Local files")
		self.assertTrue(is_drill_site_name(drill.drill_site))
		self.assertTrue(drill.site_dropped)
		self.assertGreater(drill.restore_seconds, 0)

		# Dropped with its database; the live site's tables, files and the bench config unchanged.
		# (The MariaDB server is shared with other benches: only the drill's own database is looked for.)
		self.assertNotIn(frappe_db_name(drill.drill_site), database_names())
		self.assertEqual(checksum_live_tables(), tables)
		self.assertEqual(
			{folder: hash_folder(frappe.get_site_path(folder, "files")) for folder in ("public", "private")},
			files,
		)
		with open(os.path.join(sites_path(), "common_site_config.json"), "rb") as handle:
			self.assertEqual(handle.read(), common_config)

		log = frappe.get_doc("Backup Log", self.log.name)
		self.assertTrue(log.restore_verified)
		self.assertEqual(log.last_restore_drill, drill.name)
		policy = frappe.get_doc("Backup Policy", self.policy.name)
		self.assertEqual(str(policy.last_verified_restore_at), str(drill.finished_at))
		self.assertEqual(policy.last_drill_status, "Passed")

	def test_drill_from_the_destination_passes(self):
		drill = run_drill(self.log.name, destination=self.destination.name)
		self.assertEqual(drill.status, "Passed", drill.error_message or drill.output)
		self.assertEqual(drill.source, self.destination.name)
		self.assertIn("Download the backup", drill.output)
		self.assertNotIn(self.destination.get_password("secret_access_key"), drill.output)

	def test_corrupted_artifact_fails_the_drill_naming_the_artifact(self):
		artifact = next(row for row in self.log.artifacts if row.kind == "public_files")
		path = os.path.join(self.log.backup_dir, artifact.file_name)
		with open(path, "rb") as handle:
			original = handle.read()
		self.addCleanup(self.write_file, path, original)
		self.write_file(path, original[:-1] + bytes([original[-1] ^ 0xFF]))

		drill = run_drill(self.log.name)

		self.assertEqual(drill.status, "Failed")
		result, detail = checks_of(drill)["Restore"]
		self.assertEqual(result, "Failed")
		self.assertIn(f"{artifact.file_name}: FAILED", detail)
		self.assertIn(artifact.file_name, drill.error_message)
		self.assertTrue(drill.site_dropped)

	def test_row_counts_changed_after_the_fact_fail_the_drill_naming_the_table(self):
		manifest = json.loads(self.log.manifest)
		original = self.log.manifest
		database = next(item for item in manifest["artifacts"] if item["kind"] == "database")
		recorded = database["row_counts"]["tabToDo"]
		database["row_counts"]["tabToDo"] = recorded + 1
		frappe.db.set_value(
			"Backup Log", self.log.name, "manifest", json.dumps(manifest), update_modified=False
		)
		frappe.db.commit()
		self.addCleanup(self.set_manifest, original)

		drill = run_drill(self.log.name)

		self.assertEqual(drill.status, "Failed")
		result, detail = checks_of(drill)["Row counts"]
		self.assertEqual(result, "Failed")
		self.assertIn(f"tabToDo: {recorded} rows, recorded {recorded + 1}", detail)
		# The other checks still ran, and the policy's recipients got the failing check.
		self.assertEqual(checks_of(drill)["Site answers"][0], "Passed")
		message = frappe.db.get_value(
			"Email Queue",
			{"reference_doctype": "Backup Restore Drill", "reference_name": drill.name},
			"message",
		)
		self.assertIn("Row counts", message)
		self.assertIn("tabToDo", message)

	def test_killed_drill_leaves_nothing_once_the_next_tick_ran(self):
		process = subprocess.Popen(
			bench_argv("backup-manager", "drill", self.log.name),
			cwd=sites_path(),
			stdout=subprocess.DEVNULL,
			stderr=subprocess.DEVNULL,
		)
		self.addCleanup(lambda: process.poll() is None and process.kill())
		drill_name, db_name = self.wait_for_drill_database(process)
		os.kill(process.pid, signal.SIGKILL)
		process.wait()
		self.assertEqual(frappe.db.get_value("Backup Restore Drill", drill_name, "status"), "Running")
		# The server frees the dead connection's lock once it sees the socket closed.
		deadline = time.monotonic() + 30
		while is_drill_locked() and time.monotonic() < deadline:
			time.sleep(0.2)

		jobs.tick()

		drill = frappe.get_doc("Backup Restore Drill", drill_name)
		self.assertEqual(drill.status, "Failed")
		self.assertIn("worker was killed", drill.error_message)
		self.assertTrue(drill.site_dropped)
		self.assertEqual(db_name, frappe_db_name(drill.drill_site))
		self.assertNotIn(db_name, database_names())
		self.assertEqual(drill_leftovers(), [])
		self.assertEqual(marked_processes(drill_name), [])
		# The plan's saved copy of common_site_config.json (it was killed while holding one) is put back.
		self.assertEqual(saved_common_configs(), [])

	def test_second_drill_while_one_runs_is_refused_and_requests_are_deduplicated(self):
		holder = root_connection()
		self.addCleanup(holder.close)
		with holder.cursor() as cursor:
			cursor.execute("SELECT GET_LOCK(%s, 0)", (drill_lock_name(),))
			self.assertEqual(cursor.fetchone()[0], 1)

		queued = drills.start_drill(backup_log=self.log.name, trigger="Manual", enqueue=False)
		# Desk drills restore from the policy's drill destination (its first one here).
		self.assertEqual(queued.destination, self.destination.name)
		self.assertEqual(
			drills.start_drill(backup_log=self.log.name, trigger="Manual", enqueue=False).name, queued.name
		)
		drill = drills.execute_drill(queued)

		self.assertEqual(drill.status, "Refused")
		self.assertIn("Another restore drill is running on this bench", drill.error_message)
		self.assertFalse(drill.drill_site)

	def test_run_restore_drill_needs_a_system_manager(self):
		make_user("bm-drill-user@example.com", [])
		frappe.set_user("bm-drill-user@example.com")
		with self.assertRaises(frappe.PermissionError):
			run_restore_drill(self.log.name)
		frappe.set_user("Administrator")
		self.assertFalse(
			frappe.db.exists("Backup Restore Drill", {"backup_log": self.log.name, "status": "Queued"})
		)

	def test_tick_schedules_a_drill_after_every_backup_once(self):
		frappe.db.set_value("Backup Policy", self.policy.name, "restore_drill", "After every backup")
		frappe.db.set_value("Backup Log", self.log.name, "last_restore_drill", None)
		frappe.db.commit()
		self.addCleanup(frappe.db.set_value, "Backup Policy", self.policy.name, "restore_drill", "Off")
		drills.enqueue_due_drills(now_datetime(), enqueue=False)
		queued = frappe.get_all(
			"Backup Restore Drill", filters={"backup_log": self.log.name, "status": "Queued"}, pluck="name"
		)
		self.assertEqual(len(queued), 1)
		frappe.db.set_value("Backup Restore Drill", queued[0], "status", "Failed")
		frappe.db.commit()
		drills.enqueue_due_drills(now_datetime(), enqueue=False)
		self.assertEqual(
			frappe.db.count("Backup Restore Drill", {"backup_log": self.log.name, "trigger": "Scheduled"}), 1
		)

	def test_no_verified_restore_alert_goes_out_once_per_window(self):
		frappe.db.set_value(
			"Backup Policy",
			self.policy.name,
			{
				"alert_no_verified_restore_days": 2,
				"last_verified_restore_at": add_to_date(now_datetime(), days=-3),
				"last_drill_alert_at": None,
				# A new policy gets a whole window before its first alert.
				"creation": add_to_date(now_datetime(), days=-10),
			},
		)
		frappe.db.commit()
		self.addCleanup(
			frappe.db.set_value, "Backup Policy", self.policy.name, "alert_no_verified_restore_days", 0
		)

		def alerts():
			return frappe.db.count(
				"Email Queue", {"reference_doctype": "Backup Policy", "reference_name": self.policy.name}
			)

		before = alerts()
		send_unverified_restore_alerts(now_datetime())
		send_unverified_restore_alerts(now_datetime())
		self.assertEqual(alerts(), before + 1)

	def wait_for_drill_database(self, process) -> tuple[str, str]:
		"""Wait until the CLI's drill has created its site's database; return the drill and database names."""
		deadline = time.monotonic() + 300
		while time.monotonic() < deadline:
			self.assertIsNone(process.poll(), "the drill ended before it could be killed")
			frappe.db.rollback()
			running = frappe.get_all(
				"Backup Restore Drill",
				filters={"backup_log": self.log.name, "status": "Running"},
				fields=["name", "drill_site"],
			)
			if running and running[0].drill_site:
				db_name = drills.read_site_config(running[0].drill_site).get("db_name")
				if db_name and db_name in database_names():
					return running[0].name, db_name
			time.sleep(0.5)
		raise AssertionError("the drill never created its database")

	def write_file(self, path: str, data: bytes):
		with open(path, "wb") as handle:
			handle.write(data)

	def set_manifest(self, manifest: str):
		frappe.db.set_value("Backup Log", self.log.name, "manifest", manifest, update_modified=False)
		frappe.db.commit()


def frappe_db_name(site: str) -> str:
	"""The database name bench new-site derives from the site folder (frappe.installer._new_site)."""
	path = os.path.realpath(os.path.join(sites_path(), site))
	return "_" + hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()[:16]


def saved_common_configs() -> list[str]:
	return [name for name in os.listdir(sites_path()) if name.startswith(".common_site_config.json.")]


def marked_processes(drill_name: str) -> list[int]:
	marker = f"{drills.DRILL_MARKER_ENV}={drill_name}\0".encode()
	found = []
	for entry in os.listdir("/proc"):
		if entry.isdigit():
			try:
				with open(f"/proc/{entry}/environ", "rb") as handle:
					if marker in handle.read() + b"\0":
						found.append(int(entry))
			except OSError:
				continue
	return found
