"""Mounted-folder destinations: a real tmpfs mount, and the refusal when the mount is missing."""

import os
import shutil
import subprocess
import tempfile
import unittest
from datetime import timedelta

from backup_manager.core.errors import InvalidPolicy, StorageError
from backup_manager.core.manifest import DATABASE, SITE_CONFIG
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
from backup_manager.core.retention import RetentionRules
from backup_manager.core.storage import VERIFIED_BY_READ_BACK, FolderConfig, get_backend
from backup_manager.core.storage.filetree import is_partial_name
from tests.test_offsite import KEY, NOW, SITE, backup_id_for, make_backup


def mount_tmpfs(folder: str, size: str) -> bool:
	return (
		subprocess.run(
			["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder], capture_output=True
		).returncode
		== 0
	)


class FolderTestCase(unittest.TestCase):
	def setUp(self):
		self.mount = tempfile.mkdtemp(prefix="bm-folder-mount-")
		self.local = tempfile.mkdtemp(prefix="bm-folder-local-")
		self.addCleanup(shutil.rmtree, self.mount, True)
		self.addCleanup(shutil.rmtree, self.local, True)

	def mounted(self, size: str = "16m"):
		if not mount_tmpfs(self.mount, size):
			self.skipTest("cannot mount a tmpfs here (needs root)")
		self.addCleanup(subprocess.run, ["umount", "-l", self.mount], check=False)
		return get_backend(FolderConfig(path=self.mount, must_be_mount_point=True))

	def upload(self, backend, backup_id, sizes=None):
		local = os.path.join(self.local, backup_id)
		manifest = make_backup(local, backup_id, sizes)
		return manifest, upload_backup(backend, manifest, local, prefix="bm", site=SITE)


class TestFolderStorage(FolderTestCase):
	def test_on_a_mounted_disk_a_backup_is_stored_verified_listed_downloaded_and_pruned(self):
		backend = self.mounted()
		ids = []
		for offset in range(2, -1, -1):
			backup_id = backup_id_for(NOW - timedelta(days=offset), offset)
			manifest, results = self.upload(backend, backup_id)
			self.assertEqual([result.status for result in results], [UPLOADED] * 5, results)
			self.assertEqual({result.verified_by for result in results}, {VERIFIED_BY_READ_BACK})
			ids.insert(0, backup_id)
		self.assertTrue(
			all(check.ok for check in verify_remote_backup(backend, manifest, prefix="bm", site=SITE))
		)
		self.assertEqual(
			[
				(backup.backup_id, backup.complete)
				for backup in list_remote_backups(backend, prefix="bm", site=SITE)
			],
			[(backup_id, True) for backup_id in ids],
		)
		target = os.path.join(self.local, "download")
		download_backup(backend, prefix="bm", site=SITE, backup_id=ids[0], to_dir=target, hmac_key=KEY)
		with (
			open(os.path.join(target, "database.sql.gz"), "rb") as got,
			open(os.path.join(self.local, ids[0], "database.sql.gz"), "rb") as sent,
		):
			self.assertEqual(got.read(), sent.read())

		results = apply_offsite_retention(
			backend, prefix="bm", site=SITE, rules=RetentionRules(keep_last=1), now=NOW, hmac_key=KEY
		)
		self.assertEqual(
			{r.backup_id: r.action for r in results}, {ids[0]: KEEP, ids[1]: DELETED, ids[2]: DELETED}
		)
		self.assertEqual(os.listdir(os.path.join(self.mount, "bm", SITE)), [ids[0]])

	def test_a_full_disk_fails_the_upload_and_leaves_no_half_written_file(self):
		backend = self.mounted(size="1m")
		backup_id = backup_id_for(NOW, 7)
		_manifest, results = self.upload(
			backend, backup_id, sizes={DATABASE: 3 * 1024 * 1024, SITE_CONFIG: 100}
		)
		by_kind = {result.kind: result for result in results}
		self.assertEqual(by_kind[DATABASE].status, FAILED)
		self.assertIn("disk is full", by_kind[DATABASE].error)
		self.assertEqual(by_kind["manifest"].status, SKIPPED)
		folder = os.path.join(self.mount, "bm", SITE, backup_id)
		self.assertEqual(
			[name for name in os.listdir(folder) if is_partial_name(name) or name == "database.sql.gz"], []
		)

	def test_a_folder_that_is_not_a_mount_point_is_refused_and_nothing_is_written(self):
		backend = get_backend(FolderConfig(path=self.mount, must_be_mount_point=True))
		backup_id = backup_id_for(NOW, 8)
		_manifest, results = self.upload(backend, backup_id)
		self.assertEqual([result.status for result in results], [FAILED] * 4 + [SKIPPED])
		self.assertIn("is not a mount point", results[0].error)
		self.assertEqual(os.listdir(self.mount), [])
		with self.assertRaisesRegex(StorageError, "not a mount point"):
			list_remote_backups(backend, prefix="bm", site=SITE)
		report = backend.check_connection()
		self.assertFalse(report.ok)
		self.assertIn("not a mount point", report.checks[0].message)

		plain = get_backend(FolderConfig(path=self.mount, must_be_mount_point=False))
		_manifest, results = self.upload(plain, backup_id)
		self.assertEqual([result.status for result in results], [UPLOADED] * 5)

	def test_settings_no_upload_could_work_with_are_refused(self):
		for path in ("", "relative/folder", "/", "/mnt/../etc"):
			with self.subTest(path), self.assertRaises(InvalidPolicy) as caught:
				FolderConfig(path=path).validate()
			self.assertEqual(caught.exception.field, "folder_path")


class TestFolderUploadProgress(FolderTestCase):
	def test_upload_backup_reports_every_byte_written(self):
		backend = get_backend(FolderConfig(path=self.mount, must_be_mount_point=False))
		backup_id = backup_id_for(NOW, 0)
		local = os.path.join(self.local, backup_id)
		manifest = make_backup(local, backup_id, None)
		sent = []
		results = upload_backup(backend, manifest, local, prefix="bm", site=SITE, progress=sent.append)
		self.assertEqual([result.status for result in results], [UPLOADED] * 5, results)
		self.assertEqual(sum(sent), manifest.total_size)
