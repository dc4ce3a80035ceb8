"""SFTP destinations against a real OpenSSH server on 127.0.0.1 (backup_manager/tests/sshd.py)."""

import contextlib
import hashlib
import io
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from datetime import timedelta

from backup_manager.core.errors import ChecksumMismatch, InvalidPolicy, StorageError
from backup_manager.core.manifest import DATABASE, SITE_CONFIG, Artifact
from backup_manager.core.offsite import (
	DELETED,
	FAILED,
	KEEP,
	SKIPPED,
	UPLOADED,
	apply_offsite_retention,
	download_backup,
	list_remote_backups,
	upload_backup,
	verify_remote_backup,
)
from backup_manager.core.offsite_tool import main
from backup_manager.core.retention import RetentionRules
from backup_manager.core.storage import (
	VERIFIED_BY_READ_BACK,
	VERIFIED_BY_SERVER_HASH,
	FolderConfig,
	SFTPConfig,
	get_backend,
)
from backup_manager.core.storage.filetree import is_partial_name
from backup_manager.core.storage.sftp import HostKeyRefused
from backup_manager.tests.sshd import SSHServer, sshd_available
from tests.test_offsite import KEY, NOW, SITE, backup_id_for, make_backup

REQUIRE_SSHD = os.environ.get("BM_REQUIRE_SSHD") == "1"


def setUpModule():
	if not sshd_available():
		if REQUIRE_SSHD:
			raise RuntimeError(
				"openssh-server is required (BM_REQUIRE_SSHD=1): apt-get install openssh-server"
			)
		raise unittest.SkipTest("openssh-server is not installed")


def all_files(folder: str) -> list[str]:
	found = []
	for current, _folders, files in os.walk(folder):
		found += [os.path.relpath(os.path.join(current, name), folder) for name in files]
	return sorted(found)


class SFTPTestCase(unittest.TestCase):
	@classmethod
	def setUpClass(cls):
		cls.server = SSHServer().start()

	@classmethod
	def tearDownClass(cls):
		cls.server.__exit__(None, None, None)

	def setUp(self):
		self.remote = tempfile.mkdtemp(prefix="bm-sftp-remote-")
		self.local = tempfile.mkdtemp(prefix="bm-sftp-local-")
		self.addCleanup(shutil.rmtree, self.remote, True)
		self.addCleanup(shutil.rmtree, self.local, True)
		self.prefix = "backups"
		self.backend = self.make_backend()

	def make_backend(self, **overrides):
		backend = get_backend(self.server.config(base_folder=self.remote, **overrides))
		self.addCleanup(backend.close)
		return backend

	def upload(self, backup_id: str, backend=None, sizes=None):
		local = os.path.join(self.local, backup_id)
		manifest = make_backup(local, backup_id, sizes)
		results = upload_backup(backend or self.backend, manifest, local, prefix=self.prefix, site=SITE)
		return manifest, results


class TestSFTPUploadVerifyDownload(SFTPTestCase):
	def test_a_backup_is_uploaded_verified_on_the_server_listed_and_downloaded_byte_identical(self):
		backup_id = backup_id_for(NOW, 1)
		manifest, results = self.upload(backup_id)

		self.assertEqual([result.status for result in results], [UPLOADED] * 5, results)
		self.assertEqual({result.verified_by for result in results}, {VERIFIED_BY_SERVER_HASH})
		self.assertEqual(
			all_files(self.remote),
			sorted(
				f"backups/{SITE}/{backup_id}/{name}"
				for name in (
					"database.sql.gz",
					"files.tar",
					"private-files.tar",
					"site_config_backup.json",
					"manifest.json",
				)
			),
		)
		backups = list_remote_backups(self.backend, prefix=self.prefix, site=SITE)
		self.assertEqual([(backup.backup_id, backup.complete) for backup in backups], [(backup_id, True)])
		checks = verify_remote_backup(self.backend, manifest, prefix=self.prefix, site=SITE)
		self.assertTrue(all(check.ok for check in checks), checks)

		target = os.path.join(self.local, "download")
		download_backup(
			self.backend, prefix=self.prefix, site=SITE, backup_id=backup_id, to_dir=target, hmac_key=KEY
		)
		for artifact in manifest.artifacts:
			with open(os.path.join(target, artifact.file_name), "rb") as handle:
				self.assertEqual(hashlib.sha256(handle.read()).hexdigest(), artifact.sha256)

	def test_a_file_changed_on_the_server_fails_verification(self):
		backup_id = backup_id_for(NOW, 2)
		manifest, _results = self.upload(backup_id)
		path = os.path.join(self.remote, "backups", SITE, backup_id, "database.sql.gz")
		with open(path, "r+b") as handle:
			handle.write(b"X")  # same size, different bytes

		checks = verify_remote_backup(self.backend, manifest, prefix=self.prefix, site=SITE)
		failed = [check for check in checks if not check.ok]
		self.assertEqual([(check.kind, check.check) for check in failed], [(DATABASE, "checksum")])
		with self.assertRaises(ChecksumMismatch):
			self.backend.verify_object(
				f"backups/{SITE}/{backup_id}/database.sql.gz",
				manifest.artifacts[0].size,
				manifest.artifacts[0].sha256,
			)
		# read_back hashes the bytes on this side instead of on the server
		self.assertEqual(
			self.backend.verify_object(
				f"backups/{SITE}/{backup_id}/site_config_backup.json",
				manifest.artifact(SITE_CONFIG).size,
				manifest.artifact(SITE_CONFIG).sha256,
				read_back=True,
			),
			VERIFIED_BY_READ_BACK,
		)

	def test_retention_deletes_exactly_the_pruned_backups_folders(self):
		ids = []
		for offset in range(3, -1, -1):
			backup_id = backup_id_for(NOW - timedelta(days=offset), 10 + offset)
			_manifest, results = self.upload(backup_id, sizes={DATABASE: 100, SITE_CONFIG: 50})
			self.assertEqual({result.status for result in results}, {UPLOADED})
			ids.insert(0, backup_id)
		foreign = os.path.join(self.remote, "backups", SITE, "notes.txt")
		with open(foreign, "w") as handle:
			handle.write("not ours")

		results = apply_offsite_retention(
			self.backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=2),
			now=NOW,
			hmac_key=KEY,
		)

		self.assertEqual(
			{result.backup_id: result.action for result in results},
			{ids[0]: KEEP, ids[1]: KEEP, ids[2]: DELETED, ids[3]: DELETED},
		)
		self.assertEqual(
			sorted(os.listdir(os.path.join(self.remote, "backups", SITE))), sorted([*ids[:2], "notes.txt"])
		)

	def test_a_key_file_others_can_read_and_a_wrong_key_are_refused_with_clear_messages(self):
		loose = os.path.join(self.local, "loose_key")
		shutil.copy(self.server.user_key_path, loose)
		os.chmod(loose, 0o644)
		with self.assertRaisesRegex(StorageError, "can be read by other users .*chmod 600"):
			self.make_backend(private_key_file=loose).list_objects("backups/")

		other = os.path.join(self.local, "other_key")
		subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
		with open(other) as handle:
			text = handle.read()
		backend = self.make_backend(private_key_file="", private_key=text)
		with self.assertRaisesRegex(StorageError, "refused the login of user"):
			backend.list_objects("backups/")
		self.assertNotIn("PRIVATE KEY", repr(backend.config))

	def test_a_server_that_is_down_fails_fast_with_a_clear_message(self):
		from backup_manager.tests.sshd import free_port

		backend = self.make_backend(port=free_port())
		outcome = []
		worker = threading.Thread(target=lambda: outcome.append(self._capture(backend)), daemon=True)
		worker.start()
		worker.join(15)
		self.assertFalse(worker.is_alive(), "the connection failure must not hang the upload")
		self.assertIn("refused the connection", outcome[0])

	@staticmethod
	def _capture(backend) -> str:
		try:
			backend.upload_bytes(b"x", "backups/x")
		except StorageError as exc:
			return str(exc)
		return "no error"

	def test_settings_no_upload_could_work_with_are_refused_naming_the_field(self):
		cases = {
			"sftp_host": SFTPConfig(host="", username="u"),
			"sftp_port": SFTPConfig(host="h", port=70000, username="u"),
			"sftp_username": SFTPConfig(host="h", username=""),
			"base_folder": SFTPConfig(host="h", username="u", base_folder="../etc"),
			"private_key_file": SFTPConfig(host="h", username="u", private_key_file="id_rsa"),
		}
		for field_name, config in cases.items():
			with self.subTest(field_name), self.assertRaises(InvalidPolicy) as caught:
				config.validate()
			self.assertEqual(caught.exception.field, field_name)


class TestSFTPHostKey(SFTPTestCase):
	def test_connection_check_shows_the_fingerprint_until_accepted_then_passes(self):
		unpinned = self.make_backend(host_key="")
		report = unpinned.check_connection()
		self.assertFalse(report.ok)
		self.assertEqual(report.host_key, self.server.host_key_line)
		fingerprint = subprocess.run(
			["ssh-keygen", "-lf", f"{self.server.host_key_path}.pub"],
			capture_output=True,
			text=True,
			check=True,
		).stdout.split()[1]
		self.assertEqual(report.host_key_fingerprint, fingerprint)
		self.assertIn(fingerprint, report.checks[0].message)
		# Nothing is written to a server whose key was never accepted.
		with self.assertRaisesRegex(HostKeyRefused, "not accepted yet"):
			unpinned.upload_bytes(b"x", "backups/x")
		self.assertEqual(all_files(self.remote), [])

		accepted = self.make_backend(host_key=report.host_key).check_connection()
		self.assertTrue(accepted.ok, accepted.summary())
		self.assertEqual(
			[check.name for check in accepted.checks], ["host key", "folder", "write", "read", "delete"]
		)
		self.assertEqual(all_files(self.remote), [])

	def test_a_changed_host_key_is_refused_and_nothing_is_sent(self):
		old_key = self.server.host_key_line
		self.server.replace_host_key()
		backend = self.make_backend(host_key=old_key)
		backup_id = backup_id_for(NOW, 3)
		_manifest, results = self.upload(backup_id, backend=backend)

		self.assertEqual([result.status for result in results], [FAILED] * 4 + [SKIPPED])
		self.assertIn("host key of 127.0.0.1 has CHANGED", results[0].error)
		self.assertEqual(all_files(self.remote), [])
		report = backend.check_connection()
		self.assertFalse(report.ok)
		self.assertIn("CHANGED", report.checks[0].message)
		self.assertEqual(report.host_key, self.server.host_key_line)


class TestSFTPFailures(SFTPTestCase):
	def test_a_full_disk_fails_the_upload_names_it_and_leaves_no_file(self):
		if subprocess.run(
			["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.remote], capture_output=True
		).returncode:
			self.skipTest("cannot mount a tmpfs here")
		self.addCleanup(subprocess.run, ["umount", "-l", self.remote], check=False)
		backup_id = backup_id_for(NOW, 4)
		_manifest, results = self.upload(backup_id, sizes={DATABASE: 3 * 1024 * 1024, SITE_CONFIG: 100})

		by_kind = {result.kind: result for result in results}
		self.assertEqual(by_kind[DATABASE].status, FAILED)
		self.assertIn("its disk is full or user", by_kind[DATABASE].error)
		self.assertEqual(by_kind["manifest"].status, SKIPPED)
		names = all_files(self.remote)
		self.assertNotIn(f"backups/{SITE}/{backup_id}/database.sql.gz", names)
		self.assertFalse([name for name in names if is_partial_name(os.path.basename(name))], names)
		# The site config may or may not have fit before the disk filled; either way nothing is complete.
		self.assertFalse(
			any(
				backup.complete for backup in list_remote_backups(self.backend, prefix=self.prefix, site=SITE)
			)
		)

	def test_a_connection_dropped_mid_upload_leaves_nothing_counted_complete(self):
		backup_id = backup_id_for(NOW, 5)
		local = os.path.join(self.local, backup_id)
		manifest = make_backup(local, backup_id, sizes={SITE_CONFIG: 100})
		# The database "file" is a pipe this test feeds: the upload is surely mid-way when killed.
		pipe = os.path.join(local, "database.sql.gz")
		os.mkfifo(pipe)
		first = os.urandom(2 * 1024 * 1024)
		manifest.artifacts.insert(
			0, Artifact(kind=DATABASE, file_name="database.sql.gz", size=8 * 1024 * 1024, sha256="0" * 64)
		)

		def feed():
			try:
				with open(pipe, "wb") as handle:
					handle.write(first)
					handle.flush()
					while not self.killed.is_set():
						time.sleep(0.05)
					handle.write(os.urandom(1024 * 1024))
			except BrokenPipeError:
				pass

		self.killed = threading.Event()
		feeder = threading.Thread(target=feed, daemon=True)
		feeder.start()
		folder = os.path.join(self.remote, "backups", SITE, backup_id)
		uploader = threading.Thread(
			target=lambda: self.results.extend(
				upload_backup(self.backend, manifest, local, prefix=self.prefix, site=SITE, max_workers=1)
			)
		)
		self.results = []
		uploader.start()
		deadline = time.monotonic() + 20
		while time.monotonic() < deadline:
			partial = [
				name
				for name in (os.listdir(folder) if os.path.isdir(folder) else [])
				if is_partial_name(name)
			]
			if partial and os.path.getsize(os.path.join(folder, partial[0])) >= 1024 * 1024:
				break
			time.sleep(0.02)
		else:
			self.fail("the upload never started writing")
		self.assertGreater(self.server.kill_sessions(), 0)
		self.killed.set()
		uploader.join(30)
		feeder.join(5)

		by_kind = {result.kind: result for result in self.results}
		self.assertEqual(by_kind[DATABASE].status, FAILED, self.results)
		self.assertIn("connection was lost", by_kind[DATABASE].error)
		self.assertEqual(by_kind["manifest"].status, SKIPPED)
		self.assertFalse(os.path.exists(os.path.join(folder, "database.sql.gz")))
		self.assertFalse(os.path.exists(os.path.join(folder, "manifest.json")))
		# The next connection sees an incomplete backup without the half-written file; the failed
		# upload removed its temporary file, or the clean-up of unfinished uploads does.
		[backup] = list_remote_backups(self.backend, prefix=self.prefix, site=SITE)
		self.assertFalse(backup.complete)
		self.assertEqual(backup.keys, [f"backups/{SITE}/{backup_id}/site_config_backup.json"])
		self.assertLessEqual(self.backend.abort_incomplete_uploads("backups/"), 1)
		self.assertEqual(os.listdir(folder), ["site_config_backup.json"])


class TestOffsiteToolOverSFTPAndFolder(SFTPTestCase):
	"""The disaster tool needs only the server, the key in the environment and the host key."""

	def run_tool(self, *arguments: str, environ: dict) -> tuple[int, str, str]:
		stdout, stderr = io.StringIO(), io.StringIO()
		with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
			code = main(list(arguments), environ=environ)
		return code, stdout.getvalue(), stderr.getvalue()

	def sftp_arguments(self, **overrides) -> list[str]:
		values = {
			"--type": "sftp",
			"--host": "127.0.0.1",
			"--port": str(self.server.port),
			"--user": self.server.user,
			"--base-folder": self.remote,
			"--prefix": self.prefix,
			"--site": SITE,
			**overrides,
		}
		return [f"{name}={value}" for name, value in values.items() if value is not None]

	def test_list_download_and_restore_plan_over_sftp_with_the_key_only_in_the_environment(self):
		backup_id = backup_id_for(NOW, 20)
		manifest, _results = self.upload(backup_id)
		environ = {"SFTP_PRIVATE_KEY_FILE": self.server.user_key_path, "BACKUP_MANIFEST_KEY": KEY}
		fingerprint = subprocess.run(
			["ssh-keygen", "-lf", f"{self.server.host_key_path}.pub"],
			capture_output=True,
			text=True,
			check=True,
		).stdout.split()[1]

		code, out, err = self.run_tool(
			"list", *self.sftp_arguments(**{"--host-key-fingerprint": fingerprint}), environ=environ
		)
		self.assertEqual(code, 0, err)
		self.assertIn(backup_id, out)

		code, _out, err = self.run_tool(
			"list", *self.sftp_arguments(**{"--host-key-fingerprint": "SHA256:" + "B" * 43}), environ=environ
		)
		self.assertEqual(code, 1)
		self.assertIn("refused", err)
		code, _out, err = self.run_tool("list", *self.sftp_arguments(), environ=environ)
		self.assertEqual(code, 1)
		self.assertIn("--host-key", err)
		code, _out, err = self.run_tool(
			"list", *self.sftp_arguments(**{"--host-key": self.server.host_key_line}), environ={}
		)
		self.assertEqual(code, 1)
		self.assertIn("SFTP_PRIVATE_KEY_FILE", err)

		target = os.path.join(self.local, "tool-download")
		code, _out, err = self.run_tool(
			"download",
			*self.sftp_arguments(**{"--host-key": self.server.host_key_line}),
			f"--backup-id={backup_id}",
			f"--to={target}",
			environ=environ,
		)
		self.assertEqual(code, 0, err)
		for artifact in manifest.artifacts:
			with open(os.path.join(target, artifact.file_name), "rb") as handle:
				self.assertEqual(hashlib.sha256(handle.read()).hexdigest(), artifact.sha256)

		code, plan, err = self.run_tool(
			"restore-plan",
			*self.sftp_arguments(**{"--host-key": self.server.host_key_line}),
			f"--backup-id={backup_id}",
			"--format=sh",
			f"--bench-path={self.local}",
			environ=environ,
		)
		self.assertEqual(code, 0, err)
		self.assertIn("--type=sftp", plan)
		self.assertIn(shlex.quote(f"--host-key={self.server.host_key_line}"), plan)
		self.assertIn("SFTP_PRIVATE_KEY_FILE", plan)
		self.assertNotIn(self.server.user_key_path, plan)
		self.assertNotIn("AWS_SECRET_ACCESS_KEY", plan)
		bash = subprocess.run(["bash", "-n"], input=plan, text=True, capture_output=True, check=False)
		self.assertEqual(bash.returncode, 0, bash.stderr)

	def test_folder_tool_refuses_an_unmounted_folder_unless_told(self):
		backend = get_backend(FolderConfig(path=self.remote, must_be_mount_point=False))
		backup_id = backup_id_for(NOW, 21)
		self.upload(backup_id, backend=backend)
		arguments = ["--type=folder", f"--folder={self.remote}", f"--prefix={self.prefix}", f"--site={SITE}"]
		code, _out, err = self.run_tool("list", *arguments, environ={"BACKUP_MANIFEST_KEY": KEY})
		self.assertEqual(code, 1)
		self.assertIn("not a mount point", err)
		code, out, err = self.run_tool(
			"list", *arguments, "--no-mount-check", environ={"BACKUP_MANIFEST_KEY": KEY}
		)
		self.assertEqual(code, 0, err)
		self.assertIn(backup_id, out)
		code, plan, err = self.run_tool(
			"restore-plan",
			*arguments,
			"--no-mount-check",
			f"--backup-id={backup_id}",
			"--format=sh",
			f"--bench-path={self.local}",
			environ={"BACKUP_MANIFEST_KEY": KEY},
		)
		self.assertEqual(code, 0, err)
		self.assertIn(f"--type=folder --folder={self.remote}", plan)
		self.assertIn("--no-mount-check", plan)
