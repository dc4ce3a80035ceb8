"""SFTP and mounted-folder destinations in a real bench: a real sshd on 127.0.0.1, a real tmpfs.

Covers the Desk/CLI path end to end: Test Connection shows the fingerprint and pins the key,
a changed key is refused, a run uploads and verifies, `verify --offsite` and download read it
back, retention prunes it, a failed destination keeps the local copy, a folder that is not a
mount point is refused, and a restore plan downloaded from the SFTP server builds a new site.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

import frappe

from backup_manager import api, jobs
from backup_manager.core import offsite
from backup_manager.core.manifest import MANIFEST_KEY_CONFIG, Manifest
from backup_manager.offsite import accept_host_key, test_destination_connection
from backup_manager.tests.sshd import SSHServer, sshd_available
from backup_manager.tests.test_restore_execution import drop_site, run_plan, site_execute
from backup_manager.tests.utils import (
	FrappeTestCase,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	sites_path,
)
from backup_manager.verification import verify_offsite_backup

PREFIX = "_Test BM Dest "

if not sshd_available() and os.environ.get("BM_REQUIRE_SSHD") == "1":
	raise RuntimeError("BM_REQUIRE_SSHD=1 but /usr/sbin/sshd is missing: apt-get install openssh-server")


def make_sftp_destination(name: str, server: SSHServer, base_folder: str, **values):
	full_name = PREFIX + name
	if frappe.db.exists("Backup Destination", full_name):
		frappe.delete_doc("Backup Destination", full_name, force=True, ignore_permissions=True)
	with open(server.user_key_path) as handle:
		# As pasted into the Password field, which drops the line breaks.
		private_key = handle.read().replace("\n", " ")
	destination = frappe.get_doc(
		{
			"doctype": "Backup Destination",
			"destination_name": full_name,
			"storage_type": "SFTP",
			"sftp_host": "127.0.0.1",
			"sftp_port": server.port,
			"sftp_username": server.user,
			"base_folder": base_folder,
			"private_key": private_key,
			"path_prefix": "bm",
			**values,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return destination


class TestSFTPDestination(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		if not sshd_available():
			raise unittest.SkipTest("openssh-server is not installed (scripts/run-tests.sh installs it)")
		ensure_outgoing_email_account()
		cls.server = SSHServer().start()
		cls.remote = tempfile.mkdtemp(prefix="bm-sftp-bench-")

	@classmethod
	def tearDownClass(cls):
		cls.server.__exit__(None, None, None)
		shutil.rmtree(cls.remote, ignore_errors=True)
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")

	def tearDown(self):
		frappe.db.rollback()
		delete_test_policies()
		for name in frappe.get_all(
			"Backup Destination", filters={"name": ("like", f"{PREFIX}%")}, pluck="name"
		):
			frappe.delete_doc("Backup Destination", name, force=True, ignore_permissions=True)
		frappe.db.commit()

	def accepted_destination(self, name: str, server: SSHServer | None = None):
		server = server or self.server
		destination = make_sftp_destination(name, server, self.remote)
		report = test_destination_connection(destination.name)
		self.assertFalse(report["ok"])
		accept_host_key(destination.name, report["host_key_to_accept"])
		frappe.db.commit()
		return frappe.get_doc("Backup Destination", destination.name)

	def test_test_connection_shows_the_fingerprint_pins_it_and_a_changed_key_is_refused(self):
		server = SSHServer().start()
		self.addCleanup(server.__exit__, None, None, None)
		destination = make_sftp_destination("sftp-hostkey", server, self.remote)
		fingerprint = subprocess.run(
			["ssh-keygen", "-lf", f"{server.host_key_path}.pub"], capture_output=True, text=True, check=True
		).stdout.split()[1]

		report = api.test_destination_connection(destination.name)
		self.assertFalse(report["ok"])
		self.assertEqual(report["host_key_to_accept"], fingerprint)
		self.assertNotIn("PRIVATE KEY", frappe.as_json(report))
		with self.assertRaises(frappe.ValidationError):
			api.accept_destination_host_key(destination.name, "SHA256:" + "A" * 43)
		api.accept_destination_host_key(destination.name, fingerprint)
		destination.reload()
		self.assertEqual(destination.host_key_fingerprint, fingerprint)
		self.assertEqual(destination.host_key, server.host_key_line)
		report = api.test_destination_connection(destination.name)
		self.assertTrue(report["ok"], report)
		self.assertEqual(report["host_key_to_accept"], "")

		server.replace_host_key()
		report = api.test_destination_connection(destination.name)
		self.assertFalse(report["ok"])
		self.assertIn("CHANGED", report["checks"][0]["message"])
		self.assertNotEqual(report["host_key_to_accept"], fingerprint)
		destination.reload()
		self.assertEqual(
			destination.host_key_fingerprint, fingerprint, "a changed key is never pinned silently"
		)

		policy = make_policy("sftp-hostkey", destinations=[{"destination": destination.name}])
		log = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(log.status, "Failed")
		self.assertIn("CHANGED", log.error_message)
		self.assertTrue(os.path.isdir(log.backup_dir), "the local copy is kept")

	def test_a_run_uploads_verifies_downloads_prunes_and_restores_into_a_new_site(self):
		destination = self.accepted_destination("sftp-run")
		policy = make_policy("sftp-run", keep_last=1, destinations=[{"destination": destination.name}])
		marker = "bm-sftp-marker-" + frappe.generate_hash(length=8)
		attachment = frappe.get_site_path("public", "files", f"{marker}.txt")
		with open(attachment, "wb") as handle:
			handle.write(os.urandom(4096))
		self.addCleanup(os.remove, attachment)

		first = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(first.status, "Success", first.error_message)
		self.assertEqual({row.status for row in first.uploads}, {"Uploaded"})
		folder = os.path.join(self.remote, "bm", frappe.local.site, first.backup_id)
		self.assertIn("manifest.json", os.listdir(folder))
		checks = verify_offsite_backup(first)
		self.assertTrue(checks and all(check.ok for check in checks), [c.message for c in checks if not c.ok])

		second = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(second.status, "Success", second.error_message)
		# keep_last=1: the first backup is pruned on the server after the second is complete;
		# "files" holds the deduplicated attachments (on by default for a new destination).
		self.assertEqual(
			sorted(os.listdir(os.path.join(self.remote, "bm", frappe.local.site))),
			sorted([second.backup_id, "files"]),
		)
		self.assertTrue(any(row.remote_key.endswith(".index.json.gz") for row in second.uploads))

		new_site = "bm-restore-sftp.localhost"
		drop_site(new_site)
		self.addCleanup(drop_site, new_site)
		downloads = os.path.join(os.path.dirname(sites_path()), "backup-restore", second.backup_id)
		self.addCleanup(shutil.rmtree, downloads, True)
		output = run_plan(
			frappe.local.site,
			second.name,
			"--new-site",
			new_site,
			"--from-destination",
			destination.name,
			env={
				"SFTP_PRIVATE_KEY_FILE": self.server.user_key_path,
				"BACKUP_MANIFEST_KEY": frappe.conf.get(MANIFEST_KEY_CONFIG),
			},
		)
		self.assertIn("Download the backup", output)
		self.assertNotIn("PRIVATE KEY", output)
		restored = site_execute(new_site, "frappe.client.get_count", doctype="User")
		self.assertGreater(restored, 0)
		restored_file = os.path.join(sites_path(), new_site, "public", "files", f"{marker}.txt")
		with open(restored_file, "rb") as got, open(attachment, "rb") as sent:
			self.assertEqual(got.read(), sent.read())

	def test_an_unreachable_server_fails_the_run_and_keeps_the_local_copy(self):
		destination = self.accepted_destination("sftp-down")
		destination.db_set("sftp_port", 1)
		policy = make_policy("sftp-down", destinations=[{"destination": destination.name}])
		log = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(log.status, "Failed")
		self.assertIn("refused the connection", log.error_message)
		self.assertTrue(os.path.isdir(log.backup_dir))
		self.assertFalse(log.local_files_deleted)


class TestFolderDestination(FrappeTestCase):
	def setUp(self):
		frappe.set_user("Administrator")
		self.folder = tempfile.mkdtemp(prefix="bm-folder-bench-")
		self.addCleanup(shutil.rmtree, self.folder, True)

	def tearDown(self):
		frappe.db.rollback()
		delete_test_policies()
		for name in frappe.get_all(
			"Backup Destination", filters={"name": ("like", f"{PREFIX}%")}, pluck="name"
		):
			frappe.delete_doc("Backup Destination", name, force=True, ignore_permissions=True)
		frappe.db.commit()

	def make_folder_destination(self, name: str):
		destination = frappe.get_doc(
			{
				"doctype": "Backup Destination",
				"destination_name": PREFIX + name,
				"storage_type": "Folder",
				"folder_path": self.folder,
				"must_be_mount_point": 1,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		return destination

	def test_a_folder_that_is_not_mounted_is_refused_and_a_mounted_one_holds_the_backup(self):
		destination = self.make_folder_destination("folder")
		policy = make_policy("folder", with_files=0, destinations=[{"destination": destination.name}])
		log = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(log.status, "Failed")
		self.assertIn("not a mount point", log.error_message)
		self.assertEqual(os.listdir(self.folder), [])
		self.assertTrue(os.path.isdir(log.backup_dir))

		if subprocess.run(
			["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", self.folder], check=False
		).returncode:
			self.skipTest("cannot mount a tmpfs here")
		self.addCleanup(subprocess.run, ["umount", "-l", self.folder], check=False)
		self.assertTrue(test_destination_connection(destination.name)["ok"])
		log = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(log.status, "Success", log.error_message)
		checks = verify_offsite_backup(log)
		self.assertTrue(checks and all(check.ok for check in checks))
		self.assertIn(
			"manifest.json", os.listdir(os.path.join(self.folder, frappe.local.site, log.backup_id))
		)

	def test_deduplicated_files_are_uploaded_once_and_the_savings_are_shown(self):
		destination = frappe.get_doc(
			{
				"doctype": "Backup Destination",
				"destination_name": PREFIX + "dedup",
				"storage_type": "Folder",
				"folder_path": self.folder,
				"must_be_mount_point": 0,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		self.assertEqual(destination.deduplicate_files, 1, "on by default for new destinations")
		attachment = frappe.get_site_path(
			"private", "files", f"bm-dedup-{frappe.generate_hash(length=8)}.bin"
		)
		with open(attachment, "wb") as handle:
			handle.write(os.urandom(256 * 1024))
		self.addCleanup(os.remove, attachment)
		policy = make_policy("dedup", destinations=[{"destination": destination.name}])

		first = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(first.status, "Success", first.error_message)
		second = jobs.execute_run(jobs.start_run(policy=policy.name, trigger="CLI", enqueue=False))
		self.assertEqual(second.status, "Success", second.error_message)

		private = next(row for row in second.uploads if row.kind == "private_files")
		self.assertTrue(private.remote_key.endswith(".index.json.gz"))
		self.assertGreaterEqual(private.represented_bytes, 256 * 1024)
		self.assertLess(private.bytes, private.represented_bytes / 10, "the attachment was not sent again")
		self.assertIn("already offsite", second.offsite_savings)
		self.assertTrue(all(check.ok for check in verify_offsite_backup(second)))
		self.assertIn(
			"stored file(s)", frappe.db.get_value("Backup Policy", policy.name, "offsite_storage_used")
		)

		target = tempfile.mkdtemp(prefix="bm-dedup-download-")
		self.addCleanup(shutil.rmtree, target, True)
		# As `bench download LOG`: the Backup Log's manifest is the trusted one.
		manifest = offsite.download_backup(
			destination.get_backend(),
			prefix="",
			site=second.site,
			backup_id=second.backup_id,
			to_dir=target,
			manifest=Manifest.from_json(second.manifest),
		)
		for artifact in manifest.artifacts:
			with open(os.path.join(target, artifact.file_name), "rb") as handle:
				self.assertEqual(hashlib.sha256(handle.read()).hexdigest(), artifact.sha256)
