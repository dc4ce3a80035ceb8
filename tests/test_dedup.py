"""Deduplicated files offsite, against a real SeaweedFS: PUTs counted, restores byte-identical."""

import filecmp
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest
from datetime import timedelta

from backup_manager.core import dedup_store, layout
from backup_manager.core.dedup import FileIndex, build_index, index_archive
from backup_manager.core.dedup_store import collect_unreferenced_contents
from backup_manager.core.errors import ChecksumMismatch, StorageError
from backup_manager.core.manifest import DATABASE, PUBLIC_FILES, Artifact, Manifest, sign_manifest
from backup_manager.core.offsite import (
	DELETED,
	KEEP,
	UPLOADED,
	BackupUpload,
	apply_offsite_retention,
	list_remote_backups,
	upload_backup,
	verify_remote_backup,
)
from backup_manager.core.retention import RetentionRules
from backup_manager.core.storage import get_backend
from tests.seaweed import shared_endpoint
from tests.test_offsite import KEY, NOW, SITE, backup_id_for, signed_download

CONTENT = "/files/sha256/"


class CountingBackend:
	"""A real backend that counts the content uploads (PUTs) going through it."""

	def __init__(self, backend):
		self.backend = backend
		self.content_puts: list[str] = []

	def __getattr__(self, name):
		return getattr(self.backend, name)

	def upload_bytes(self, data, key, **kwargs):
		if CONTENT in key:
			self.content_puts.append(key)
		return self.backend.upload_bytes(data, key, **kwargs)

	def upload_content(self, data, key, **kwargs):
		if CONTENT in key:
			self.content_puts.append(key)
		return self.backend.upload_content(data, key, **kwargs)

	def upload_file(self, path, key, **kwargs):
		if CONTENT in key:
			self.content_puts.append(key)
		return self.backend.upload_file(path, key, **kwargs)


def sha256_of(path: str) -> str:
	with open(path, "rb") as handle:
		return hashlib.sha256(handle.read()).hexdigest()


class DedupTestCase(unittest.TestCase):
	@classmethod
	def setUpClass(cls):
		cls.endpoint = shared_endpoint()
		cls.bucket = cls.endpoint.create_bucket()

	def setUp(self):
		self.prefix = f"{self.id().rsplit('.', 1)[-1]}/dedup"
		self.backend = CountingBackend(get_backend(self.endpoint.storage_config(self.bucket)))
		self.work = tempfile.mkdtemp(prefix="bm-dedup-")
		self.addCleanup(shutil.rmtree, self.work, True)
		# The site's public files, as Frappe's backup tars them: <site>/public/files/...
		self.files = os.path.join(self.work, "site", SITE, "public", "files")
		os.makedirs(self.files)

	def write(self, name: str, data: bytes) -> None:
		path = os.path.join(self.files, name)
		os.makedirs(os.path.dirname(path), exist_ok=True)
		with open(path, "wb") as handle:
			handle.write(data)

	def backup(self, number: int, when=NOW) -> tuple[Manifest, str]:
		"""Tar the files with GNU tar (as frappe.utils.backups does) into a new local backup."""
		backup_id = backup_id_for(when, number)
		local = os.path.join(self.work, "local", backup_id)
		os.makedirs(local)
		tar_path = os.path.join(local, "files.tar")
		subprocess.run(
			["tar", "-cf", tar_path, "-C", os.path.join(self.work, "site"), f"{SITE}/public"], check=True
		)
		with open(os.path.join(local, "database.sql.gz"), "wb") as handle:
			handle.write(os.urandom(1000))
		artifacts = [
			Artifact(DATABASE, "database.sql.gz", 1000, sha256_of(os.path.join(local, "database.sql.gz"))),
			Artifact(PUBLIC_FILES, "files.tar", os.path.getsize(tar_path), sha256_of(tar_path)),
		]
		manifest = Manifest(
			backup_id=backup_id,
			site=SITE,
			created_at=backup_id[:16],
			frappe_version="15",
			artifacts=artifacts,
		)
		return sign_manifest(manifest, KEY), local

	def upload(self, manifest: Manifest, local: str) -> dict:
		self.backend.content_puts.clear()
		results = upload_backup(
			self.backend, manifest, local, prefix=self.prefix, site=SITE, deduplicate=True
		)
		self.assertEqual({result.status for result in results}, {UPLOADED}, results)
		return {result.kind: result for result in results}

	def download(self, manifest: Manifest, target: str) -> Manifest:
		"""Download a backup of this test's prefix as the disaster tool does (bucket manifest, key)."""
		return signed_download(self.backend, self.prefix, manifest.backup_id, target)

	def stored_contents(self) -> set[str]:
		folder = layout.content_prefix(self.prefix, SITE)
		return {layout.parse_content_key(folder, item.key) for item in self.backend.list_objects(folder)}


class TestDeduplicatedUpload(DedupTestCase):
	def test_unchanged_files_are_not_uploaded_again_and_changed_ones_are(self):
		for number in range(20):
			self.write(f"scan-{number:02d}.pdf", os.urandom(20_000 + number))
		self.write("same-twice-a.txt", b"identical content")
		self.write("sub/same-twice-b.txt", b"identical content")
		first = self.upload(*self.backup(1))
		self.assertEqual(len(self.backend.content_puts), 21, "20 scans and one content shared by two files")
		self.assertEqual(
			first[PUBLIC_FILES].represented_bytes,
			os.path.getsize(os.path.join(self.work, "local", backup_id_for(NOW, 1), "files.tar")),
		)

		second = self.upload(*self.backup(2))
		self.assertEqual(self.backend.content_puts, [], "nothing changed: no file content is uploaded")
		self.assertLess(second[PUBLIC_FILES].bytes, second[PUBLIC_FILES].represented_bytes / 100)

		self.write("scan-03.pdf", os.urandom(5000))
		self.write("new.pdf", os.urandom(7000))
		third = self.upload(*self.backup(3))
		self.assertEqual(len(self.backend.content_puts), 2)
		self.assertLessEqual(third[PUBLIC_FILES].bytes, 12_000 + 4096)

		backups = list_remote_backups(self.backend, prefix=self.prefix, site=SITE)
		self.assertEqual([backup.complete for backup in backups], [True, True, True])
		# The archive itself is not stored: only its index, the database and the manifest.
		self.assertEqual(
			sorted(key.rsplit("/", 1)[-1] for key in backups[0].keys),
			["database.sql.gz", "files.tar.index.json.gz", "manifest.json"],
		)

	def test_progress_counts_every_byte_of_the_backup_stored_or_found_stored(self):
		for number in range(6):
			self.write(f"scan-{number}.pdf", os.urandom(30_000))
		for number in (1, 2):
			manifest, local = self.backup(number)
			sent: list[int] = []
			results = upload_backup(
				self.backend,
				manifest,
				local,
				prefix=self.prefix,
				site=SITE,
				deduplicate=True,
				progress=sent.append,
			)
			self.assertEqual({result.status for result in results}, {UPLOADED})
			# The second backup finds every file stored: it still reaches the whole size.
			self.assertEqual(sum(sent), sum(artifact.size for artifact in manifest.artifacts), number)
			self.assertTrue(all(value >= 0 for value in sent))

	def test_a_restore_from_the_index_gives_byte_identical_files(self):
		for number in range(5):
			self.write(f"doc-{number}.bin", os.urandom(3000 * (number + 1)))
		self.write("a/very/" + "long-name-" * 12 + ".txt", b"a name longer than 100 characters")
		self.write("empty.txt", b"")
		manifest, local = self.backup(4)
		self.upload(manifest, local)

		target = os.path.join(self.work, "restored")
		self.download(manifest, target)
		self.assertEqual(sha256_of(os.path.join(target, "files.tar")), manifest.artifact(PUBLIC_FILES).sha256)
		extracted = os.path.join(self.work, "extracted")
		with tarfile.open(os.path.join(target, "files.tar")) as archive:
			archive.extractall(extracted, filter="data")
		comparison = filecmp.dircmp(os.path.join(self.work, "site"), extracted)
		self.assertEqual((comparison.left_only, comparison.right_only, comparison.diff_files), ([], [], []))
		for folder, _dirs, names in os.walk(self.files):
			for name in names:
				original = os.path.join(folder, name)
				copy = os.path.join(extracted, os.path.relpath(original, os.path.join(self.work, "site")))
				self.assertTrue(filecmp.cmp(original, copy, shallow=False), original)

	def test_a_file_missing_from_the_store_fails_verify_and_the_restore_naming_it(self):
		self.write("invoice-0001.pdf", os.urandom(4000))
		self.write("invoice-0002.pdf", os.urandom(4000))
		manifest, local = self.backup(5)
		self.upload(manifest, local)
		self.assertTrue(
			all(
				check.ok
				for check in verify_remote_backup(self.backend, manifest, prefix=self.prefix, site=SITE)
			)
		)
		missing = sha256_of(os.path.join(self.files, "invoice-0002.pdf"))
		self.backend.delete_objects([layout.content_key(self.prefix, SITE, missing)])

		failed = [
			check
			for check in verify_remote_backup(self.backend, manifest, prefix=self.prefix, site=SITE)
			if not check.ok
		]
		self.assertEqual(len(failed), 1)
		self.assertIn("invoice-0002.pdf", failed[0].message)
		with self.assertRaisesRegex(StorageError, "invoice-0002.pdf"):
			self.download(manifest, os.path.join(self.work, "r"))
		self.assertFalse(os.path.exists(os.path.join(self.work, "r", "files.tar")))

	def test_a_damaged_content_or_a_swapped_index_fails_the_restore_naming_it(self):
		self.write("invoice-0001.pdf", os.urandom(4000))
		self.write("invoice-0002.pdf", os.urandom(4000))
		manifest, local = self.backup(6)
		self.upload(manifest, local)
		damaged = sha256_of(os.path.join(self.files, "invoice-0002.pdf"))
		# Same size, other bytes: only the hash can tell.
		self.backend.upload_bytes(os.urandom(4000), layout.content_key(self.prefix, SITE, damaged))
		target = os.path.join(self.work, "r")
		with self.assertRaisesRegex(ChecksumMismatch, "invoice-0002.pdf.*damaged"):
			self.download(manifest, target)
		# Nothing unverified is left: no archive, no partial file (the verified dump may stay).
		self.assertEqual([name for name in os.listdir(target) if name.startswith("files.tar")], [])

		# The index of another backup put in this one's place: its archive is not the one signed.
		self.write("invoice-0003.pdf", os.urandom(4000))
		other, other_local = self.backup(7)
		self.upload(other, other_local)
		index_key = layout.object_key(self.prefix, SITE, manifest.backup_id, "files.tar.index.json.gz")
		other_index = layout.object_key(self.prefix, SITE, other.backup_id, "files.tar.index.json.gz")
		self.backend.upload_bytes(self.backend.read_bytes(other_index), index_key)
		with self.assertRaisesRegex(ChecksumMismatch, "describes another archive"):
			self.download(manifest, target)
		self.assertEqual([name for name in os.listdir(target) if name.startswith("files.tar")], [])

	def test_a_compressed_archive_is_uploaded_whole(self):
		self.write("x.txt", b"x" * 1000)
		manifest, local = self.backup(6)
		with open(os.path.join(local, "files.tar"), "ab") as handle:
			handle.write(b"not a tar trailer")  # bytes a rebuild from an index could not give back
		manifest.artifacts[1] = Artifact(
			PUBLIC_FILES,
			"files.tar",
			os.path.getsize(os.path.join(local, "files.tar")),
			sha256_of(os.path.join(local, "files.tar")),
		)
		self.assertIsNone(
			build_index(os.path.join(local, "files.tar"), "files.tar", manifest.artifacts[1].sha256)
		)
		results = self.upload(manifest, local)
		self.assertTrue(results[PUBLIC_FILES].key.endswith("/files.tar"))
		self.assertEqual(self.backend.content_puts, [])


class TestDeduplicatedRetention(DedupTestCase):
	def test_retention_deletes_exactly_the_contents_no_kept_backup_references(self):
		self.write("a.txt", b"in every backup")
		self.write("b.txt", b"only in the oldest")
		oldest, local = self.backup(7, NOW - timedelta(days=2))
		self.upload(oldest, local)
		os.remove(os.path.join(self.files, "b.txt"))
		self.write("c.txt", b"in the middle and the newest")
		middle, local = self.backup(8, NOW - timedelta(days=1))
		self.upload(middle, local)
		self.write("d.txt", b"only in the newest")
		newest, local = self.backup(9, NOW)
		self.upload(newest, local)
		hashes = {name: sha256_of(os.path.join(self.files, name)) for name in ("a.txt", "c.txt", "d.txt")}
		hashes["b.txt"] = hashlib.sha256(b"only in the oldest").hexdigest()
		self.assertEqual(self.stored_contents(), set(hashes.values()))

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
			{newest.backup_id: KEEP, middle.backup_id: KEEP, oldest.backup_id: DELETED},
		)
		self.assertEqual(self.stored_contents(), {hashes["a.txt"], hashes["c.txt"], hashes["d.txt"]})

		apply_offsite_retention(
			self.backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=1),
			now=NOW,
			hmac_key=KEY,
		)
		self.assertEqual(self.stored_contents(), {hashes["a.txt"], hashes["c.txt"], hashes["d.txt"]})
		target = os.path.join(self.work, "restored")
		self.download(newest, target)

	def test_an_index_that_cannot_be_read_deletes_nothing(self):
		self.write("a.txt", b"kept")
		first, local = self.backup(10, NOW - timedelta(days=1))
		self.upload(first, local)
		self.write("b.txt", b"second")
		second, local = self.backup(11, NOW)
		self.upload(second, local)
		orphan = hashlib.sha256(b"orphan").hexdigest()
		self.backend.upload_bytes(b"orphan", layout.content_key(self.prefix, SITE, orphan))
		index_key = layout.object_key(self.prefix, SITE, second.backup_id, "files.tar.index.json.gz")
		self.backend.upload_bytes(b"not gzip", index_key)
		before = self.stored_contents()

		collection = collect_unreferenced_contents(self.backend, prefix=self.prefix, site=SITE)
		self.assertIn("not collected", collection.error)
		self.assertEqual(collection.deleted, [])
		self.assertEqual(self.stored_contents(), before)
		self.assertIn(orphan, before)

	def test_an_index_round_trips_and_rejects_bad_hashes(self):
		self.write("a.txt", b"a")
		manifest, local = self.backup(12)
		index = build_index(
			os.path.join(local, "files.tar"), "files.tar", manifest.artifact(PUBLIC_FILES).sha256
		)
		self.assertEqual(FileIndex.from_bytes(index.to_bytes()), index)
		index.entries[-1].sha256 = "../../etc/passwd"
		with self.assertRaises(Exception):
			FileIndex.from_bytes(index.to_bytes())

	def test_the_read_that_hashes_an_archive_indexes_it_and_the_upload_uses_that_index(self):
		for number in range(4):
			self.write(f"doc-{number}.pdf", os.urandom(10_000 + number))
		self.write("empty.txt", b"")
		manifest, local = self.backup(13)
		path = os.path.join(local, "files.tar")
		sha256, index = index_archive(path, "files.tar")
		self.assertEqual(sha256, sha256_of(path))
		self.assertEqual(index, build_index(path, "files.tar", sha256))

		# The upload takes the given index instead of reading the archive again.
		built = []
		original = dedup_store.build_index
		dedup_store.build_index = lambda *args: built.append(args) or original(*args)
		self.addCleanup(setattr, dedup_store, "build_index", original)
		upload = BackupUpload(
			self.backend, prefix=self.prefix, site=SITE, backup_id=manifest.backup_id, deduplicate=True
		)
		for artifact in manifest.artifacts:
			upload.add(
				artifact,
				os.path.join(local, artifact.file_name),
				index=index if artifact.kind == PUBLIC_FILES else None,
			)
		results = upload.finish(manifest, local)
		self.assertEqual({result.status for result in results}, {UPLOADED})
		self.assertEqual(built, [])
		target = os.path.join(self.work, "restored")
		self.download(manifest, target)
		self.assertEqual(sha256_of(os.path.join(target, "files.tar")), sha256)

		# An index of another archive is not trusted: the upload indexes the archive itself.
		self.write("doc-9.pdf", os.urandom(5000))
		other, other_local = self.backup(14)
		upload = BackupUpload(
			self.backend, prefix=self.prefix, site=SITE, backup_id=other.backup_id, deduplicate=True
		)
		for artifact in other.artifacts:
			upload.add(artifact, os.path.join(other_local, artifact.file_name), index=index)
		self.assertEqual({result.status for result in upload.finish(other, other_local)}, {UPLOADED})
		self.assertEqual(len(built), 1)

	def test_an_archive_that_cannot_be_indexed_is_still_hashed_whole(self):
		self.write("a.txt", os.urandom(3000))
		compressed = os.path.join(self.work, "files.tgz")
		subprocess.run(["tar", "-czf", compressed, "-C", os.path.join(self.work, "site"), SITE], check=True)
		self.assertEqual(index_archive(compressed, "files.tgz"), (sha256_of(compressed), None))
