"""Offsite upload, listing, retention, verification and download against a real SeaweedFS."""

import hashlib
import json
import os
import shutil
import tempfile
import unittest
from datetime import datetime, timedelta, timezone

from backup_manager.core import layout
from backup_manager.core.errors import (
	ArtifactError,
	ChecksumMismatch,
	InvalidPolicy,
	StorageError,
)
from backup_manager.core.manifest import (
	DATABASE,
	PRIVATE_FILES,
	PUBLIC_FILES,
	SITE_CONFIG,
	Artifact,
	InstalledApp,
	Manifest,
	sign_manifest,
)
from backup_manager.core.offsite import (
	CHECK_CHECKSUM,
	CHECK_EXISTS,
	DELETED,
	FAILED,
	KEEP,
	LOCKED,
	MANIFEST_KIND,
	SKIPPED,
	UPLOADED,
	WOULD_DELETE,
	BackupUpload,
	apply_offsite_retention,
	download_backup,
	list_remote_backups,
	upload_backup,
	verify_remote_backup,
)
from backup_manager.core.retention import RetentionRules
from backup_manager.core.storage import MiB, get_backend
from tests.seaweed import shared_endpoint

SITE = "erp.example.com"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
# The test site's manifest key: every manifest make_backup writes is signed with it.
KEY = "0f" * 32


def backup_id_for(moment: datetime, number: int) -> str:
	return f"{moment:%Y%m%dT%H%M%SZ}-BL-{number:05d}"


def make_backup(
	directory: str, backup_id: str, sizes: dict[str, int] | None = None, *, key: str | None = KEY
) -> Manifest:
	"""Write artifact files for a backup into `directory` and return its manifest."""
	sizes = sizes or {DATABASE: 3000, PUBLIC_FILES: 2000, PRIVATE_FILES: 1500, SITE_CONFIG: 200}
	names = {
		DATABASE: "database.sql.gz",
		PUBLIC_FILES: "files.tar",
		PRIVATE_FILES: "private-files.tar",
		SITE_CONFIG: "site_config_backup.json",
	}
	os.makedirs(directory, exist_ok=True)
	artifacts = []
	for kind, size in sizes.items():
		data = (backup_id.encode() + kind.encode()) * (size // 20 + 1)
		data = hashlib.sha256(data).digest() + data
		data = data[:size]
		with open(os.path.join(directory, names[kind]), "wb") as handle:
			handle.write(data)
		artifacts.append(
			Artifact(kind=kind, file_name=names[kind], size=size, sha256=hashlib.sha256(data).hexdigest())
		)
	manifest = Manifest(
		backup_id=backup_id,
		site=SITE,
		created_at=backup_id[:16],
		frappe_version="15.45.0",
		apps=[InstalledApp("frappe", "15.45.0"), InstalledApp("erpnext", "15.40.1")],
		artifacts=artifacts,
	)
	return sign_manifest(manifest, key) if key else manifest


def signed_download(backend, prefix: str, backup_id: str, target: str) -> Manifest:
	"""Download a backup as the disaster tool does: the bucket's manifest, checked with the site's key."""
	return download_backup(
		backend, prefix=prefix, site=SITE, backup_id=backup_id, to_dir=target, hmac_key=KEY
	)


class RecordingBackend:
	"""Wraps a real backend, recording calls, and failing the operations a test names."""

	def __init__(self, backend, fail: dict[str, Exception] | None = None):
		self.backend = backend
		self.fail = fail or {}
		self.calls: list[tuple[str, object]] = []

	def __getattr__(self, name):
		operation = getattr(self.backend, name)

		def call(*args, **kwargs):
			self.calls.append((name, args[0] if args else None))
			if name in self.fail:
				raise self.fail[name]
			return operation(*args, **kwargs)

		return call

	def called(self, name: str) -> list:
		return [argument for operation, argument in self.calls if operation == name]


class OffsiteTestCase(unittest.TestCase):
	@classmethod
	def setUpClass(cls):
		# One bucket per class (a new SeaweedFS bucket costs a volume allocation); each test gets
		# its own prefix, so tests never see each other's objects.
		cls.endpoint = shared_endpoint()
		cls.bucket = cls.endpoint.create_bucket()
		cls.client = cls.endpoint.client()

	def setUp(self):
		self.prefix = f"{self.id().rsplit('.', 1)[-1]}/backups"
		self.backend = get_backend(self.endpoint.storage_config(self.bucket))
		self.directory = tempfile.mkdtemp(prefix="bm-offsite-test-")
		self.addCleanup(shutil.rmtree, self.directory, True)

	def upload(self, backup_id: str, backend=None, sizes=None) -> Manifest:
		local = os.path.join(self.directory, backup_id)
		manifest = make_backup(local, backup_id, sizes)
		results = upload_backup(
			backend or self.backend, manifest, local, prefix=self.prefix, site=SITE, max_workers=2
		)
		self.assertEqual([result.status for result in results], [UPLOADED] * len(results), results)
		return manifest

	def keys(self) -> list[str]:
		return sorted(item.key for item in self.backend.list_objects(f"{self.prefix}/"))

	def download(self, backup_id: str, target: str) -> Manifest:
		return signed_download(self.backend, self.prefix, backup_id, target)


class TestUploadBackup(OffsiteTestCase):
	def test_every_artifact_is_uploaded_verified_and_the_manifest_comes_last(self):
		recording = RecordingBackend(self.backend)
		backup_id = backup_id_for(NOW, 1)
		local = os.path.join(self.directory, "one")
		manifest = make_backup(local, backup_id, {DATABASE: 11 * MiB, PUBLIC_FILES: 2000, SITE_CONFIG: 200})
		results = upload_backup(recording, manifest, local, prefix=self.prefix, site=SITE, max_workers=3)

		self.assertEqual(
			[result.kind for result in results], [DATABASE, PUBLIC_FILES, SITE_CONFIG, MANIFEST_KIND]
		)
		self.assertEqual({result.status for result in results}, {UPLOADED})
		self.assertEqual(results[0].key, f"{self.prefix}/{SITE}/{backup_id}/database.sql.gz")
		self.assertEqual(results[0].bytes, 11 * MiB)
		self.assertEqual(results[0].verified_by, "S3 SHA-256 part checksums")
		self.assertTrue(all(result.verified_by for result in results))
		# The manifest is written once every artifact upload returned, so it is the last write.
		writes = [name for name, _argument in recording.calls if name in ("upload_file", "upload_bytes")]
		self.assertEqual(writes[-1], "upload_bytes")
		self.assertEqual(recording.called("upload_bytes"), [manifest.to_json().encode()])
		stored = json.loads(self.backend.read_bytes(layout.manifest_key(self.prefix, SITE, backup_id)))
		self.assertEqual(stored["backup_id"], backup_id)
		self.assertEqual(len(stored["artifacts"]), 3)

	def test_one_failed_artifact_is_reported_and_no_manifest_is_written(self):
		backup_id = backup_id_for(NOW, 2)
		local = os.path.join(self.directory, "two")
		manifest = make_backup(local, backup_id)
		os.remove(os.path.join(local, "files.tar"))
		results = upload_backup(self.backend, manifest, local, prefix=self.prefix, site=SITE, max_workers=2)

		by_kind = {result.kind: result for result in results}
		self.assertEqual(by_kind[PUBLIC_FILES].status, FAILED)
		self.assertIn("files.tar is missing", by_kind[PUBLIC_FILES].error)
		self.assertEqual(by_kind[DATABASE].status, UPLOADED)
		self.assertEqual(by_kind[MANIFEST_KIND].status, SKIPPED)
		self.assertNotIn(layout.manifest_key(self.prefix, SITE, backup_id), self.keys())
		[remote] = list_remote_backups(self.backend, prefix=self.prefix, site=SITE)
		self.assertFalse(remote.complete)

	def test_a_failing_storage_reports_every_artifact_without_raising_or_leaking_the_secret(self):
		wrong_secret = "Wrong/Secret+Key0123456789abcdefghijklmn"
		backend = get_backend(self.endpoint.storage_config(self.bucket, secret_access_key=wrong_secret))
		backup_id = backup_id_for(NOW, 3)
		local = os.path.join(self.directory, "three")
		manifest = make_backup(local, backup_id)
		results = upload_backup(backend, manifest, local, prefix=self.prefix, site=SITE, max_workers=2)

		self.assertEqual([result.status for result in results], [FAILED] * 4 + [SKIPPED])
		for result in results[:4]:
			self.assertIn("Secret Access Key does not match", result.error)
			self.assertNotIn(wrong_secret, result.error)
		self.assertEqual(self.keys(), [])


class TestBackupUploadAsArtifactsFinish(OffsiteTestCase):
	def test_an_artifact_added_early_uploads_from_its_first_folder_and_the_manifest_waits_for_all(self):
		recording = RecordingBackend(self.backend)
		backup_id = backup_id_for(NOW, 4)
		partial = os.path.join(self.directory, "four.partial")
		manifest = make_backup(partial, backup_id)
		upload = BackupUpload(recording, prefix=self.prefix, site=SITE, backup_id=backup_id, max_workers=2)
		database = manifest.artifacts[0]
		upload.add(database, os.path.join(partial, database.file_name))
		upload.wait()
		self.assertEqual(self.keys(), [layout.object_key(self.prefix, SITE, backup_id, database.file_name)])
		# The folder is renamed once the early upload no longer reads from it; the rest comes from there.
		final = os.path.join(self.directory, "four")
		os.rename(partial, final)
		results = upload.finish(manifest, final)

		self.assertEqual({result.status for result in results}, {UPLOADED}, results)
		self.assertEqual(results[-1].kind, MANIFEST_KIND)
		uploaded = recording.called("upload_file")
		self.assertEqual(len(uploaded), 4, "the early artifact is not uploaded twice")
		self.assertEqual(uploaded[0], os.path.join(partial, database.file_name))
		writes = [name for name, _argument in recording.calls if name in ("upload_file", "upload_bytes")]
		self.assertEqual(writes[-1], "upload_bytes")
		[remote] = list_remote_backups(self.backend, prefix=self.prefix, site=SITE)
		self.assertTrue(remote.complete)

	def test_cancel_after_a_failed_backup_deletes_what_was_uploaded(self):
		backup_id = backup_id_for(NOW, 5)
		local = os.path.join(self.directory, "five")
		manifest = make_backup(local, backup_id)
		upload = BackupUpload(self.backend, prefix=self.prefix, site=SITE, backup_id=backup_id)
		upload.add(manifest.artifacts[0], os.path.join(local, manifest.artifacts[0].file_name))
		upload.cancel()
		self.assertEqual(self.keys(), [])

	def test_a_destination_that_cannot_start_reports_every_artifact_failed(self):
		backup_id = backup_id_for(NOW, 6)
		manifest = make_backup(os.path.join(self.directory, "six"), backup_id)
		upload = BackupUpload(None, prefix=self.prefix, site=SITE, backup_id=backup_id, error="bad keys")
		upload.add(manifest.artifacts[0], "/nonexistent")
		results = upload.finish(manifest, "/nonexistent")
		self.assertEqual([result.status for result in results], [FAILED] * 4)
		self.assertEqual({result.error for result in results}, {"bad keys"})


class TestListRemoteBackups(OffsiteTestCase):
	def test_complete_incomplete_and_foreign_keys(self):
		complete_id = backup_id_for(NOW - timedelta(days=1), 1)
		self.upload(complete_id)
		incomplete_id = backup_id_for(NOW, 2)
		self.backend.upload_bytes(
			b"half", layout.object_key(self.prefix, SITE, incomplete_id, "database.sql.gz")
		)
		broken_id = backup_id_for(NOW - timedelta(days=2), 3)
		self.backend.upload_bytes(b"{not json", layout.manifest_key(self.prefix, SITE, broken_id))
		for foreign in (
			f"{self.prefix}/{SITE}/notes.txt",
			f"{self.prefix}/{SITE}/random-folder/file",
			f"{self.prefix}/{SITE}/{complete_id}/nested/x",
			f"{self.prefix}/other.site/x",
		):
			self.backend.upload_bytes(b"keep me", foreign)

		backups = list_remote_backups(self.backend, prefix=self.prefix, site=SITE)

		self.assertEqual([backup.backup_id for backup in backups], [incomplete_id, complete_id, broken_id])
		incomplete, complete, broken = backups
		self.assertTrue(complete.complete)
		self.assertEqual(complete.manifest.apps[1].name, "erpnext")
		self.assertEqual(complete.created_at, NOW - timedelta(days=1))
		self.assertEqual(len(complete.keys), 5)
		self.assertEqual(complete.size, 3000 + 2000 + 1500 + 200 + len(complete.manifest.to_json().encode()))
		self.assertFalse(incomplete.complete)
		self.assertIn("no manifest", incomplete.problem)
		self.assertFalse(broken.complete)
		self.assertIsNone(broken.manifest)
		self.assertIn("cannot be read", broken.problem)

	def test_a_manifest_listing_a_missing_artifact_is_not_complete(self):
		backup_id = backup_id_for(NOW, 1)
		self.upload(backup_id)
		self.backend.delete_objects([layout.object_key(self.prefix, SITE, backup_id, "private-files.tar")])
		[backup] = list_remote_backups(self.backend, prefix=self.prefix, site=SITE)
		self.assertFalse(backup.complete)
		self.assertEqual(backup.problem, "private-files.tar is missing")

	def test_a_manifest_that_cannot_be_read_fails_the_listing(self):
		self.upload(backup_id_for(NOW, 1))
		failing = RecordingBackend(self.backend, fail={"read_bytes": StorageError("read failed")})
		with self.assertRaises(StorageError):
			list_remote_backups(failing, prefix=self.prefix, site=SITE)


class TestOffsiteRetention(OffsiteTestCase):
	def upload_daily(self, days: int) -> list[str]:
		"""One complete backup a day, oldest first; return their ids newest first."""
		ids = []
		for offset in range(days - 1, -1, -1):
			backup_id = backup_id_for(NOW - timedelta(days=offset, hours=1), 100 + offset)
			self.upload(backup_id, sizes={DATABASE: 100, SITE_CONFIG: 50})
			ids.append(backup_id)
		return list(reversed(ids))

	def test_exactly_the_pruned_backups_objects_are_deleted_and_foreign_keys_stay(self):
		newest_first = self.upload_daily(5)
		running_id = backup_id_for(NOW, 999)
		self.backend.upload_bytes(
			b"still uploading", layout.object_key(self.prefix, SITE, running_id, "database.sql.gz")
		)
		foreign = [
			f"{self.prefix}/{SITE}/README.txt",
			f"{self.prefix}/{SITE}/manual-copy/database.sql.gz",
			f"{self.prefix}/other.site/x",
		]
		for key in foreign:
			self.backend.upload_bytes(b"not ours", key)
		before = self.keys()

		results = apply_offsite_retention(
			self.backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=2),
			hmac_key=KEY,
			now=NOW,
			known_ids=[running_id],
		)

		actions = {result.backup_id: result.action for result in results}
		self.assertEqual(
			actions,
			{
				running_id: KEEP,
				newest_first[0]: KEEP,
				newest_first[1]: KEEP,
				newest_first[2]: DELETED,
				newest_first[3]: DELETED,
				newest_first[4]: DELETED,
			},
		)
		deleted_keys = {
			key for key in before if any(f"/{backup_id}/" in key for backup_id in newest_first[2:])
		}
		self.assertEqual(len(deleted_keys), 9)  # three backups of database, site config and manifest
		self.assertEqual(self.keys(), sorted(set(before) - deleted_keys))
		for key in foreign:
			self.assertIn(key, self.keys())

	def test_deletion_goes_oldest_first_and_each_manifest_before_its_artifacts(self):
		newest_first = self.upload_daily(4)
		recording = RecordingBackend(self.backend)
		apply_offsite_retention(
			recording, prefix=self.prefix, site=SITE, rules=RetentionRules(keep_last=1), hmac_key=KEY, now=NOW
		)
		batches = recording.called("delete_objects")
		self.assertEqual(len(batches), 6)
		order = [
			next(backup_id for backup_id in newest_first if f"/{backup_id}/" in batch[0]) for batch in batches
		]
		self.assertEqual(
			order,
			[
				newest_first[3],
				newest_first[3],
				newest_first[2],
				newest_first[2],
				newest_first[1],
				newest_first[1],
			],
		)
		self.assertTrue(batches[0][0].endswith("/manifest.json"))
		self.assertTrue(all(not key.endswith("manifest.json") for key in batches[1]))

	def test_dry_run_deletes_nothing_and_says_what_it_would_delete(self):
		newest_first = self.upload_daily(3)
		before = self.keys()
		results = apply_offsite_retention(
			self.backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=1),
			hmac_key=KEY,
			now=NOW,
			dry_run=True,
		)
		self.assertEqual([result.action for result in results], [KEEP, WOULD_DELETE, WOULD_DELETE])
		self.assertEqual(results[1].backup_id, newest_first[1])
		self.assertEqual(self.keys(), before)

	def test_pinned_backups_and_the_newest_complete_one_are_kept(self):
		newest_first = self.upload_daily(3)
		# The newest backup is incomplete: the newest *complete* one must still stay.
		incomplete_id = backup_id_for(NOW + timedelta(minutes=1), 1000)
		self.backend.upload_bytes(
			b"x", layout.object_key(self.prefix, SITE, incomplete_id, "database.sql.gz")
		)
		results = apply_offsite_retention(
			self.backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=1),
			pinned_ids=[newest_first[2]],
			hmac_key=KEY,
			now=NOW + timedelta(minutes=2),
		)
		actions = {result.backup_id: (result.action, result.reason) for result in results}
		self.assertEqual(actions[newest_first[0]][0], KEEP)
		self.assertIn("newest good backup", actions[newest_first[0]][1])
		self.assertEqual(actions[newest_first[2]], (KEEP, "pinned (Keep Forever)"))
		self.assertEqual(actions[newest_first[1]][0], DELETED)

	def test_a_failed_listing_deletes_nothing(self):
		self.upload_daily(3)
		before = self.keys()
		failing = RecordingBackend(
			self.backend, fail={"list_objects": StorageError("listing failed halfway")}
		)
		with self.assertRaises(StorageError):
			apply_offsite_retention(
				failing,
				prefix=self.prefix,
				site=SITE,
				rules=RetentionRules(keep_last=1),
				hmac_key=KEY,
				now=NOW,
			)
		self.assertEqual(failing.called("delete_objects"), [])
		self.assertEqual(self.keys(), before)

	def test_an_unreachable_server_deletes_nothing(self):
		self.upload_daily(2)
		before = self.keys()
		dead = get_backend(
			self.endpoint.storage_config(
				self.bucket, endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=1
			)
		)
		with self.assertRaises(StorageError) as caught:
			apply_offsite_retention(
				dead, prefix=self.prefix, site=SITE, rules=RetentionRules(keep_last=1), hmac_key=KEY, now=NOW
			)
		self.assertIn("Endpoint unreachable", str(caught.exception))
		self.assertEqual(self.keys(), before)

	def test_rules_that_keep_nothing_are_refused_before_listing(self):
		failing = RecordingBackend(self.backend)
		with self.assertRaises(InvalidPolicy):
			apply_offsite_retention(
				failing, prefix=self.prefix, site=SITE, rules=RetentionRules(), hmac_key=KEY, now=NOW
			)
		self.assertEqual(failing.calls, [])

	def test_backups_under_object_lock_are_kept_with_the_lock_date(self):
		locked_bucket = self.endpoint.create_bucket(object_lock=True)
		locked_backend = get_backend(self.endpoint.storage_config(locked_bucket, object_lock_days=1))
		plain_backend = get_backend(self.endpoint.storage_config(locked_bucket))
		old_locked = backup_id_for(NOW - timedelta(days=3), 1)
		old_unlocked = backup_id_for(NOW - timedelta(days=2), 2)
		newest = backup_id_for(NOW - timedelta(days=1), 3)
		self.upload(old_locked, backend=locked_backend, sizes={DATABASE: 100})
		self.upload(old_unlocked, backend=plain_backend, sizes={DATABASE: 100})
		self.upload(newest, backend=plain_backend, sizes={DATABASE: 100})

		results = apply_offsite_retention(
			plain_backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=1),
			hmac_key=KEY,
			now=datetime.now(timezone.utc),
		)

		by_id = {result.backup_id: result for result in results}
		self.assertEqual(by_id[old_locked].action, LOCKED)
		self.assertTrue(by_id[old_locked].keep)
		self.assertTrue(by_id[old_locked].reason.startswith("locked until "), by_id[old_locked].reason)
		self.assertEqual(by_id[old_unlocked].action, DELETED)
		self.assertEqual(by_id[newest].action, KEEP)
		remaining = [
			backup.backup_id for backup in list_remote_backups(plain_backend, prefix=self.prefix, site=SITE)
		]
		self.assertEqual(remaining, [newest, old_locked])
		self.assertIsNotNone(
			list_remote_backups(plain_backend, prefix=self.prefix, site=SITE)[1].locked_until
		)


class TestVerifyRemoteBackup(OffsiteTestCase):
	def test_an_intact_backup_passes_every_check(self):
		manifest = self.upload(backup_id_for(NOW, 1))
		checks = verify_remote_backup(self.backend, manifest, prefix=self.prefix, site=SITE, read_back=True)
		self.assertTrue(all(check.ok for check in checks), [check for check in checks if not check.ok])
		self.assertEqual(len(checks), 2 + 3 * 4)

	def test_a_corrupted_and_a_missing_artifact_are_reported(self):
		manifest = self.upload(backup_id_for(NOW, 1))
		database_key = layout.object_key(self.prefix, SITE, manifest.backup_id, "database.sql.gz")
		self.client.put_object(Bucket=self.bucket, Key=database_key, Body=os.urandom(3000))
		self.backend.delete_objects([layout.object_key(self.prefix, SITE, manifest.backup_id, "files.tar")])

		failed = [
			(check.kind, check.check)
			for check in verify_remote_backup(self.backend, manifest, prefix=self.prefix, site=SITE)
			if not check.ok
		]

		self.assertEqual(failed, [(DATABASE, CHECK_CHECKSUM), (PUBLIC_FILES, CHECK_EXISTS)])


class TestDownloadBackup(OffsiteTestCase):
	def test_round_trip_gives_the_same_bytes_and_the_manifest(self):
		manifest = self.upload(backup_id_for(NOW, 1), sizes={DATABASE: 12 * MiB, PUBLIC_FILES: 4000})
		target = os.path.join(self.directory, "restore")
		downloaded = self.download(manifest.backup_id, target)
		self.assertEqual(downloaded, manifest)
		self.assertEqual(sorted(os.listdir(target)), ["database.sql.gz", "files.tar", "manifest.json"])
		for artifact in manifest.artifacts:
			with open(os.path.join(target, artifact.file_name), "rb") as handle:
				self.assertEqual(hashlib.sha256(handle.read()).hexdigest(), artifact.sha256)

	def test_a_corrupted_artifact_raises_and_leaves_no_file_behind(self):
		manifest = self.upload(backup_id_for(NOW, 1))
		database_key = layout.object_key(self.prefix, SITE, manifest.backup_id, "database.sql.gz")
		self.client.put_object(Bucket=self.bucket, Key=database_key, Body=os.urandom(3000))
		target = os.path.join(self.directory, "restore")
		with self.assertRaises(ChecksumMismatch) as caught:
			self.download(manifest.backup_id, target)
		self.assertIn("database.sql.gz", str(caught.exception))
		self.assertEqual(os.listdir(target), [])

	def test_an_incomplete_backup_cannot_be_downloaded(self):
		backup_id = backup_id_for(NOW, 1)
		self.backend.upload_bytes(b"x", layout.object_key(self.prefix, SITE, backup_id, "database.sql.gz"))
		with self.assertRaises(StorageError) as caught:
			download_backup(
				self.backend, prefix=self.prefix, site=SITE, backup_id=backup_id, to_dir=self.directory
			)
		self.assertIn("no readable manifest", str(caught.exception))

	def test_a_manifest_naming_a_path_outside_the_folder_is_refused(self):
		backup_id = backup_id_for(NOW, 1)
		manifest = Manifest(
			backup_id=backup_id,
			site=SITE,
			created_at="",
			frappe_version="15",
			artifacts=[Artifact(DATABASE, "../../escape.sql.gz", 1, "0" * 64)],
		)
		# Signed: even a manifest of this site's own must not lead outside the folder.
		sign_manifest(manifest, KEY)
		self.backend.upload_bytes(
			manifest.to_json().encode(), layout.manifest_key(self.prefix, SITE, backup_id)
		)
		target = os.path.join(self.directory, "restore")
		with self.assertRaises(ArtifactError):
			self.download(backup_id, target)
		self.assertFalse(os.path.exists(os.path.join(self.directory, "escape.sql.gz")))


if __name__ == "__main__":
	unittest.main()
