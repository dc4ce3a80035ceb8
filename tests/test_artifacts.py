import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
import time
import unittest
import zlib

from backup_manager.core import checksums, layout
from backup_manager.core.encryption import (
	decrypt_file,
	encrypt_file_in_place,
	is_gpg_encrypted,
)
from backup_manager.core.errors import ArtifactError, ChecksumMismatch, EncryptionError
from backup_manager.core.manifest import (
	Artifact,
	InstalledApp,
	Manifest,
	sha256sum_lines,
)


class TempDirTestCase(unittest.TestCase):
	def setUp(self):
		self.dir = tempfile.mkdtemp()
		self.addCleanup(shutil.rmtree, self.dir)

	def write(self, name, data: bytes) -> str:
		path = os.path.join(self.dir, name)
		with open(path, "wb") as handle:
			handle.write(data)
		return path


class TestChecksums(TempDirTestCase):
	def test_sha256_streams_large_files(self):
		data = os.urandom(3 * checksums.CHUNK_SIZE + 17)
		path = self.write("big.bin", data)
		self.assertEqual(checksums.sha256_file(path), hashlib.sha256(data).hexdigest())

	def test_verify_size_and_sha256(self):
		path = self.write("a.bin", b"hello")
		digest = hashlib.sha256(b"hello").hexdigest()
		checksums.verify_size_and_sha256(path, 5, digest)
		with self.assertRaises(ChecksumMismatch):
			checksums.verify_size_and_sha256(path, 6, digest)
		self.write("a.bin", b"jello")
		with self.assertRaises(ChecksumMismatch):
			checksums.verify_size_and_sha256(path, 5, digest)
		with self.assertRaises(ArtifactError):
			checksums.verify_size_and_sha256(os.path.join(self.dir, "missing"), 5, digest)

	def test_gzip_check_feeds_every_decompressed_byte_to_its_consumers(self):
		first, second = b"-- header\n", os.urandom(3 * checksums.CHUNK_SIZE).hex().encode()
		payload = gzip.compress(first) + gzip.compress(second)
		path = self.write("two-members.sql.gz", payload)
		seen = []
		digest = checksums.sha256_gzip_file(path, consumers=[seen.append])
		self.assertEqual(digest, hashlib.sha256(payload).hexdigest())
		self.assertEqual(b"".join(seen), first + second)
		self.assertLessEqual(max(len(chunk) for chunk in seen), checksums.CHUNK_SIZE)

	def test_truncated_gzip_is_detected(self):
		payload = gzip.compress(os.urandom(200_000))
		whole = self.write("db.sql.gz", payload)
		checksums.verify_gzip_complete(whole)
		truncated = self.write("cut.sql.gz", payload[: len(payload) // 2])
		with self.assertRaises(ArtifactError):
			checksums.verify_gzip_complete(truncated)

	def test_sha256_gzip_file_hashes_and_checks_multi_member_dumps_in_one_pass(self):
		# Like Frappe's dump: a header member, then the dump's member.
		payload = gzip.compress(b"-- header\n") + gzip.compress(os.urandom(3 * checksums.CHUNK_SIZE))
		whole = self.write("db.sql.gz", payload)
		self.assertEqual(checksums.sha256_gzip_file(whole), hashlib.sha256(payload).hexdigest())
		for cut in (len(payload) // 2, len(payload) - 3):
			with self.subTest(cut=cut):
				truncated = self.write("cut.sql.gz", payload[:cut])
				with self.assertRaises(ArtifactError):
					checksums.sha256_gzip_file(truncated)
		corrupt = bytearray(payload)
		corrupt[len(payload) // 3] ^= 0xFF
		with self.assertRaises(ArtifactError):
			checksums.sha256_gzip_file(self.write("bad.sql.gz", bytes(corrupt)))

	def grow(self, path: str, payload: bytes, finished: threading.Event, pieces: int = 7) -> threading.Thread:
		"""Append payload to path in pieces from another thread (like the dump pipeline), then finish."""

		def write() -> None:
			with open(path, "wb") as handle:
				step = len(payload) // pieces + 1
				for start in range(0, len(payload), step):
					handle.write(payload[start : start + step])
					handle.flush()
					time.sleep(0.02)
			finished.set()

		thread = threading.Thread(target=write)
		thread.start()
		self.addCleanup(thread.join)
		return thread

	def test_a_dump_read_while_it_is_written_gives_the_same_hash_and_text(self):
		first, second = b"-- header\n", os.urandom(3 * checksums.CHUNK_SIZE).hex().encode()
		payload = gzip.compress(first) + gzip.compress(second)
		path = os.path.join(self.dir, "growing.sql.gz")
		finished = threading.Event()
		# The reader starts before the file exists, as the check starts before the dump.
		with checksums.GrowingFile(path, finished, poll_seconds=0.005) as growing:
			self.grow(path, payload, finished)
			seen = []
			digest = checksums.sha256_gzip_stream(growing, "growing.sql.gz", consumers=[seen.append])
		self.assertEqual(digest, hashlib.sha256(payload).hexdigest())
		self.assertEqual(b"".join(seen), first + second)

	def test_a_dump_cut_short_while_it_is_written_is_detected(self):
		payload = gzip.compress(b"-- header\n") + gzip.compress(os.urandom(3 * checksums.CHUNK_SIZE))
		path = os.path.join(self.dir, "cut.sql.gz")
		finished = threading.Event()
		with checksums.GrowingFile(path, finished, poll_seconds=0.005) as growing:
			self.grow(path, payload[:-64], finished)
			with self.assertRaisesRegex(ArtifactError, "not a complete gzip file"):
				checksums.sha256_gzip_stream(growing, "cut.sql.gz")

	def test_a_dump_never_written_is_reported(self):
		finished = threading.Event()
		finished.set()
		with checksums.GrowingFile(os.path.join(self.dir, "none.sql.gz"), finished) as growing:
			with self.assertRaisesRegex(ArtifactError, "was not written"):
				checksums.sha256_gzip_stream(growing, "none.sql.gz")

	def test_tar_readability(self):
		buffer = io.BytesIO()
		with tarfile.open(fileobj=buffer, mode="w") as archive:
			for index in range(3):
				info = tarfile.TarInfo(f"files/{index}.txt")
				content = os.urandom(5000)
				info.size = len(content)
				archive.addfile(info, io.BytesIO(content))
		path = self.write("files.tar", buffer.getvalue())
		self.assertEqual(checksums.verify_tar_readable(path), 3)
		broken = self.write("broken.tar", b"not a tar at all" * 100)
		with self.assertRaises(ArtifactError):
			checksums.verify_tar_readable(broken)

	def test_format_size(self):
		self.assertEqual(checksums.format_size(512), "512 B")
		self.assertEqual(checksums.format_size(1536), "1.5 KiB")
		self.assertEqual(checksums.format_size(3 * 1024**3), "3.0 GiB")

	def test_bytes_after_the_last_member_are_an_error(self):
		payload = gzip.compress(b"-- header\n") + gzip.compress(os.urandom(100_000))
		for trailing in (b"garbage!", b"\0" * 10, b"\x1f\x8b\x08garbage"):
			with self.subTest(trailing=trailing), self.assertRaises(ArtifactError):
				checksums.sha256_gzip_file(self.write("trailing.sql.gz", payload + trailing))


class TestChecksumsWithZlib(TestChecksums):
	"""The same checks with Python's zlib, as on a machine without the isal package."""

	def setUp(self):
		super().setUp()
		previous = checksums.inflate_zlib
		checksums.inflate_zlib = zlib
		self.addCleanup(setattr, checksums, "inflate_zlib", previous)


class TestInflater(unittest.TestCase):
	def test_isal_inflates_when_installed(self):
		# requirements.txt installs isal: a backup's dump check must not fall back to zlib unseen.
		self.assertEqual(checksums.inflate_zlib.__name__, "isal.isal_zlib")


class TestManifest(unittest.TestCase):
	def manifest(self):
		return Manifest(
			backup_id="20261128T020000Z-BL-00001",
			site="erp.example.com",
			created_at="2026-11-28T02:00:00",
			frappe_version="15.44.2",
			apps=[InstalledApp("frappe", "15.44.2", "version-15", "abc"), InstalledApp("erpnext", "15.40.0")],
			artifacts=[
				Artifact("database", "db.sql.gz", 10, "a" * 64),
				Artifact("site_config", "cfg.json", 2, "b" * 64, encrypted=True),
			],
			encrypted=True,
		)

	def test_round_trip_and_lookup(self):
		manifest = self.manifest()
		again = Manifest.from_json(manifest.to_json())
		self.assertEqual(again, manifest)
		self.assertEqual(again.artifact("site_config").file_name, "cfg.json")
		self.assertIsNone(again.artifact("public_files"))
		self.assertEqual(again.total_size, 12)

	def test_sha256sum_lines(self):
		self.assertEqual(sha256sum_lines(self.manifest()), f"{'a' * 64}  db.sql.gz\n{'b' * 64}  cfg.json\n")

	def test_newer_format_is_refused(self):
		data = self.manifest().to_dict()
		data["format"] = 99
		with self.assertRaises(ValueError):
			Manifest.from_dict(data)


class TestLayout(unittest.TestCase):
	def test_keys(self):
		self.assertEqual(
			layout.object_key("", "s1", "20261128T020000Z-BL-00001", "f.tar"),
			"s1/20261128T020000Z-BL-00001/f.tar",
		)
		self.assertEqual(layout.manifest_key("/team/", "s1", "ID"), "team/s1/ID/manifest.json")

	def test_parse_backup_key_only_accepts_our_layout(self):
		folder = layout.site_prefix("p", "s1")
		self.assertEqual(
			layout.parse_backup_key(folder, "p/s1/20261128T020000Z-BL-00001/db.sql.gz"),
			("20261128T020000Z-BL-00001", "db.sql.gz"),
		)
		for foreign in (
			"p/s1/notes.txt",
			"p/s1/random-folder/x",
			"p/s2/20261128T020000Z-BL-1/x",
			"p/s1/20261128T020000Z-BL-1/sub/x",
		):
			with self.subTest(key=foreign):
				self.assertIsNone(layout.parse_backup_key(folder, foreign))


@unittest.skipUnless(shutil.which("gpg"), "gpg is not installed")
class TestEncryption(TempDirTestCase):
	def test_round_trip_and_detection(self):
		# A gzip header, as a real dump has: random bytes alone start like an OpenPGP packet 3 times in 256.
		clear = b"\x1f\x8b" + os.urandom(10_000)
		path = self.write("db.sql.gz", clear)
		self.assertFalse(is_gpg_encrypted(path))
		encrypt_file_in_place(path, "correct horse battery staple")
		self.assertTrue(is_gpg_encrypted(path))
		self.assertNotEqual(open(path, "rb").read(), clear)
		out = os.path.join(self.dir, "out")
		decrypt_file(path, out, "correct horse battery staple")
		self.assertEqual(open(out, "rb").read(), clear)

	def test_wrong_passphrase_fails_without_leaking_it(self):
		path = self.write("db.sql.gz", b"secret data")
		encrypt_file_in_place(path, "right-passphrase-123")
		with self.assertRaises(EncryptionError) as caught:
			decrypt_file(path, os.path.join(self.dir, "out"), "wrong-passphrase-456")
		self.assertNotIn("wrong-passphrase-456", str(caught.exception))
		self.assertNotIn("right-passphrase-123", str(caught.exception))
