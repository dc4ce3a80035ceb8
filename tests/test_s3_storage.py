"""S3 backend: against a real SeaweedFS (tests/seaweed.py); botocore's Stubber only maps errors
that SeaweedFS cannot produce (wrong region, a listing page failing halfway, bulk-delete quirks)."""

import base64
import contextlib
import hashlib
import http.server
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from backup_manager.core.errors import (
	ArtifactError,
	ChecksumMismatch,
	InvalidPolicy,
	LocalFileChanged,
	StorageError,
)
from backup_manager.core.storage import (
	BACKBLAZE_B2,
	CLOUDFLARE_R2,
	DIGITALOCEAN_SPACES,
	PROVIDER_PRESETS,
	S3_MAX_OBJECT_SIZE,
	S3_MAX_PARTS,
	S3_MIN_PART_SIZE,
	SSE_KMS,
	VERIFIED_BY_CHECKSUM,
	VERIFIED_BY_METADATA,
	VERIFIED_BY_PART_CHECKSUMS,
	VERIFIED_BY_READ_BACK,
	WASABI,
	MiB,
	S3Config,
	endpoint_for,
	get_backend,
)
from backup_manager.core.storage.s3 import (
	OBJECT_LOCK_MODE,
	choose_part_size,
	composite_checksum,
	hash_local_file,
	is_transient,
)
from backup_manager.core.storage.s3_direct import DirectRequests, FallBack
from tests.seaweed import SeaweedServer, shared_endpoint, weed_binary

GiB = 1024 * MiB
TiB = 1024 * GiB


def write_random_file(directory: str, name: str, size: int) -> tuple[str, str]:
	"""Write `size` random bytes; return (path, sha256)."""
	path = os.path.join(directory, name)
	digest = hashlib.sha256()
	block = os.urandom(MiB)
	with open(path, "wb") as handle:
		written = 0
		while written < size:
			# A fresh first byte per block keeps every MiB different without much urandom.
			chunk = (written.to_bytes(8, "big") + block)[: min(MiB, size - written)]
			handle.write(chunk)
			digest.update(chunk)
			written += len(chunk)
	return path, digest.hexdigest()


def unfinished_uploads(client, bucket: str) -> list[dict]:
	return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


class TestS3Config(unittest.TestCase):
	def test_repr_never_shows_the_secret_key_or_session_token(self):
		config = S3Config(
			bucket="b",
			access_key_id="AKIAEXAMPLE",
			secret_access_key="s3cr3t-value",
			session_token="t0ken-value",
		)
		self.assertNotIn("s3cr3t-value", repr(config))
		self.assertNotIn("t0ken-value", repr(config))
		self.assertNotIn("s3cr3t-value", str(config))
		self.assertIn("AKIAEXAMPLE", repr(config))

	def test_presets_build_each_providers_endpoint(self):
		self.assertEqual(endpoint_for(WASABI, "eu-central-1"), "https://s3.eu-central-1.wasabisys.com")
		self.assertEqual(endpoint_for(BACKBLAZE_B2, "us-west-004"), "https://s3.us-west-004.backblazeb2.com")
		self.assertEqual(endpoint_for(DIGITALOCEAN_SPACES, "fra1"), "https://fra1.digitaloceanspaces.com")
		self.assertEqual(
			endpoint_for(CLOUDFLARE_R2, account_id="abc123"), "https://abc123.r2.cloudflarestorage.com"
		)
		self.assertEqual(PROVIDER_PRESETS[CLOUDFLARE_R2].default_region, "auto")

	def test_r2_without_account_id_or_endpoint_asks_for_endpoint_url(self):
		with self.assertRaises(InvalidPolicy) as caught:
			S3Config(provider=CLOUDFLARE_R2, bucket="b").validate()
		self.assertEqual(caught.exception.field, "endpoint_url")

	def test_provider_limits_are_enforced_by_field(self):
		cases = [
			(dict(provider=BACKBLAZE_B2, server_side_encryption=SSE_KMS), "server_side_encryption"),
			(
				dict(
					provider=CLOUDFLARE_R2,
					endpoint_url="https://x.r2.cloudflarestorage.com",
					object_lock_days=30,
				),
				"object_lock_days",
			),
			(dict(endpoint_url="https://s3.example.com", multipart_chunksize_mb=4), "multipart_chunksize_mb"),
			(dict(endpoint_url="https://s3.example.com", addressing_style="sideways"), "addressing_style"),
			(dict(endpoint_url="https://s3.example.com", kms_key_id="key"), "kms_key_id"),
			(dict(endpoint_url=""), "endpoint_url"),
			(dict(endpoint_url="s3.example.com"), "endpoint_url"),
		]
		for settings, field in cases:
			with self.subTest(field=field, settings=settings):
				with self.assertRaises(InvalidPolicy) as caught:
					S3Config(bucket="b", **settings).validate()
				self.assertEqual(caught.exception.field, field)

	def test_b2_and_unknown_servers_get_no_checksum_headers_unless_asked(self):
		self.assertFalse(S3Config(provider=BACKBLAZE_B2, bucket="b").uses_additional_checksums)
		self.assertFalse(
			S3Config(endpoint_url="https://s3.example.com", bucket="b").uses_additional_checksums
		)
		self.assertTrue(
			S3Config(
				endpoint_url="https://s3.example.com", bucket="b", additional_checksums=True
			).uses_additional_checksums
		)


class TestPartSize(unittest.TestCase):
	def test_small_and_medium_files_use_the_configured_part_size(self):
		self.assertEqual(choose_part_size(10 * MiB, 16 * MiB), 16 * MiB)
		self.assertEqual(choose_part_size(100 * GiB, 16 * MiB), 16 * MiB)  # 6400 parts

	def test_part_size_is_at_least_the_s3_minimum(self):
		self.assertEqual(choose_part_size(100 * MiB, 1 * MiB), S3_MIN_PART_SIZE)

	def test_huge_files_get_parts_big_enough_to_stay_within_10000_parts(self):
		for size in (200 * GiB, 1 * TiB, S3_MAX_OBJECT_SIZE):
			with self.subTest(size=size):
				part_size = choose_part_size(size, 16 * MiB)
				self.assertLessEqual(-(-size // part_size), S3_MAX_PARTS)
				self.assertGreater(-(-size // (part_size // 2)), S3_MAX_PARTS)  # not bigger than needed
		self.assertEqual(choose_part_size(200 * GiB, 16 * MiB), 32 * MiB)

	def test_more_than_5_tib_is_refused(self):
		with self.assertRaises(StorageError):
			choose_part_size(S3_MAX_OBJECT_SIZE + 1, 16 * MiB)

	def test_local_part_hashes_split_at_part_boundaries(self):
		directory = tempfile.mkdtemp()
		self.addCleanup(shutil.rmtree, directory)
		path, sha256 = write_random_file(directory, "f", 11 * MiB + 7)
		digest = hash_local_file(path, 5 * MiB)
		self.assertEqual(digest.sha256, sha256)
		with open(path, "rb") as handle:
			data = handle.read()
		expected = [
			hashlib.sha256(data[start : start + 5 * MiB]).digest() for start in range(0, len(data), 5 * MiB)
		]
		self.assertEqual(digest.part_digests, expected)
		self.assertEqual(len(expected), 3)


class SeaweedTestCase(unittest.TestCase):
	@classmethod
	def setUpClass(cls):
		cls.endpoint = shared_endpoint()
		cls.bucket = cls.endpoint.create_bucket()
		cls.client = cls.endpoint.client()
		cls.directory = tempfile.mkdtemp(prefix="bm-s3-test-")

	@classmethod
	def tearDownClass(cls):
		shutil.rmtree(cls.directory, ignore_errors=True)

	def backend(self, **overrides):
		return get_backend(self.endpoint.storage_config(self.bucket, **overrides))

	def key(self, name: str) -> str:
		return f"tests/{self.id().rsplit('.', 1)[-1]}/{name}"


class TestUploadAndVerify(SeaweedTestCase):
	def test_single_part_upload_is_verified_by_the_providers_sha256(self):
		path, sha256 = write_random_file(self.directory, "single", 1 * MiB + 3)
		result = self.backend().upload_file(path, self.key("db.sql.gz"), size=1 * MiB + 3, sha256=sha256)
		self.assertEqual(result.verified_by, VERIFIED_BY_CHECKSUM)
		head = self.client.head_object(Bucket=self.bucket, Key=self.key("db.sql.gz"), ChecksumMode="ENABLED")
		self.assertEqual(base64.b64decode(head["ChecksumSHA256"]).hex(), sha256)
		self.assertEqual(head["Metadata"]["sha256"], sha256)

	def test_upload_reports_progress_that_adds_up_to_the_file_size(self):
		size = 11 * MiB + 7  # 5 MiB parts, sent by several transfer threads
		path, sha256 = write_random_file(self.directory, "progress", size)
		reported = []
		lock = threading.Lock()

		def record(byte_count):
			with lock:
				reported.append(byte_count)

		self.backend(multipart_chunksize_mb=5).upload_file(
			path, self.key("progress.tar"), size=size, sha256=sha256, progress=record
		)
		self.assertGreater(len(reported), 3)
		self.assertEqual(sum(reported), size)

	def test_multipart_upload_is_verified_by_part_checksums_and_leaves_no_unfinished_upload(self):
		size = 12 * MiB + 5  # 5 MiB parts: 3 parts
		path, sha256 = write_random_file(self.directory, "multi", size)
		key = self.key("files.tar")
		result = self.backend(multipart_chunksize_mb=5).upload_file(path, key, size=size, sha256=sha256)
		self.assertEqual(result.verified_by, VERIFIED_BY_PART_CHECKSUMS)
		head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
		self.assertTrue(head["ETag"].endswith('-3"'), head["ETag"])
		self.assertEqual(
			head["ChecksumSHA256"], composite_checksum(hash_local_file(path, 5 * MiB).part_digests)
		)
		self.assertEqual(unfinished_uploads(self.client, self.bucket), [])
		stored = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
		self.assertEqual(hashlib.sha256(stored).hexdigest(), sha256)

	def test_without_additional_checksums_size_and_stored_sha256_are_compared(self):
		path, sha256 = write_random_file(self.directory, "nochecksum", 6 * MiB)
		key = self.key("db.sql.gz")
		result = self.backend(additional_checksums=False).upload_file(path, key, size=6 * MiB, sha256=sha256)
		self.assertEqual(result.verified_by, VERIFIED_BY_METADATA)
		head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
		self.assertNotIn("ChecksumSHA256", head)
		self.assertEqual(head["Metadata"]["sha256"], sha256)

	def test_read_back_verify_hashes_the_stored_bytes(self):
		path, sha256 = write_random_file(self.directory, "readback", 2 * MiB)
		result = self.backend(read_back_verify=True).upload_file(
			path, self.key("x"), size=2 * MiB, sha256=sha256
		)
		self.assertEqual(result.verified_by, f"{VERIFIED_BY_CHECKSUM} + {VERIFIED_BY_READ_BACK}")

	def test_a_local_file_that_no_longer_matches_the_backup_is_refused_without_retrying(self):
		path, _sha256 = write_random_file(self.directory, "changed", 1 * MiB)
		started = time.monotonic()
		with self.assertRaises(ChecksumMismatch) as caught:
			self.backend(retry_backoff_seconds=5).upload_file(
				path, self.key("x"), size=1 * MiB, sha256="0" * 64
			)
		self.assertIn("take a new backup", str(caught.exception).lower())
		self.assertLess(time.monotonic() - started, 5)

	def test_a_local_file_of_another_size_is_refused_before_uploading(self):
		path, sha256 = write_random_file(self.directory, "short", 1000)
		with self.assertRaises(ChecksumMismatch):
			self.backend().upload_file(path, self.key("x"), size=1001, sha256=sha256)
		self.assertIsNone(self.backend().head(self.key("x")))

	def test_a_missing_local_file_is_an_artifact_error(self):
		with self.assertRaises(ArtifactError):
			self.backend().upload_file(
				os.path.join(self.directory, "nope"), self.key("x"), size=1, sha256="0" * 64
			)

	def test_upload_bytes_and_read_bytes_round_trip(self):
		result = self.backend().upload_bytes(b'{"backup_id": "x"}', self.key("manifest.json"))
		self.assertEqual(result.verified_by, VERIFIED_BY_CHECKSUM)
		self.assertEqual(result.sha256, hashlib.sha256(b'{"backup_id": "x"}').hexdigest())
		self.assertEqual(self.backend().read_bytes(self.key("manifest.json")), b'{"backup_id": "x"}')

	def test_content_upload_is_checked_by_the_server_against_the_given_sha256(self):
		data = os.urandom(3000)
		sha256 = hashlib.sha256(data).hexdigest()
		backend = self.backend()
		heads = []
		original_head = backend.head
		backend.head = lambda key: heads.append(key) or original_head(key)
		result = backend.upload_content(data, self.key("content"), sha256=sha256)
		# The server confirmed the SHA-256 it checked: no HEAD was needed.
		self.assertEqual((result.verified_by, heads), (VERIFIED_BY_CHECKSUM, []))
		self.assertEqual(backend.read_bytes(self.key("content")), data)

		# Bytes that are not the content the index names are refused by the server, not stored.
		with self.assertRaisesRegex(LocalFileChanged, "changed while it was uploaded"):
			backend.upload_content(data + b"x", self.key("changed"), sha256=sha256)
		self.assertIsNone(backend.head(self.key("changed")))

	def test_content_upload_without_provider_checksums_hashes_before_sending(self):
		backend = self.backend(additional_checksums=False)
		data = os.urandom(3000)
		with self.assertRaises(LocalFileChanged):
			backend.upload_content(data, self.key("changed"), sha256=hashlib.sha256(b"other").hexdigest())
		self.assertIsNone(backend.head(self.key("changed")))
		result = backend.upload_content(data, self.key("content"), sha256=hashlib.sha256(data).hexdigest())
		self.assertEqual(result.verified_by, VERIFIED_BY_METADATA)

	def test_download_file_round_trip(self):
		size = 11 * MiB
		path, sha256 = write_random_file(self.directory, "download-source", size)
		backend = self.backend()
		backend.upload_file(path, self.key("big"), size=size, sha256=sha256)
		target = os.path.join(self.directory, "downloaded")
		backend.download_file(self.key("big"), target)
		with open(target, "rb") as handle:
			self.assertEqual(hashlib.sha256(handle.read()).hexdigest(), sha256)

	def test_reading_a_missing_key_raises_a_plain_storage_error(self):
		with self.assertRaises(StorageError) as caught:
			self.backend().read_bytes(self.key("missing"))
		self.assertIn("does not exist", str(caught.exception))
		with self.assertRaises(StorageError):
			self.backend().download_file(self.key("missing"), os.path.join(self.directory, "never"))
		self.assertFalse(os.path.exists(os.path.join(self.directory, "never")))


class TestCorruptionIsDetected(SeaweedTestCase):
	def upload(self, name: str, size: int = 64 * 1024):
		path, sha256 = write_random_file(self.directory, name, size)
		key = self.key(name)
		self.backend().upload_file(path, key, size=size, sha256=sha256)
		return key, size, sha256

	def test_overwritten_bytes_without_any_checksum_are_caught_by_hashing_them(self):
		key, size, sha256 = self.upload("plain")
		self.client.put_object(Bucket=self.bucket, Key=key, Body=os.urandom(size))
		with self.assertRaises(ChecksumMismatch) as caught:
			self.backend().verify_object(key, size, sha256)
		self.assertIn("read back", str(caught.exception))

	def test_overwritten_bytes_with_their_own_checksum_are_caught_without_reading_them(self):
		key, size, sha256 = self.upload("checksummed")
		self.client.put_object(Bucket=self.bucket, Key=key, Body=os.urandom(size), ChecksumAlgorithm="SHA256")
		with self.assertRaises(ChecksumMismatch) as caught:
			self.backend().verify_object(key, size, sha256, read_back=False)
		self.assertIn("SHA-256", str(caught.exception))

	def test_bytes_swapped_behind_an_intact_stored_sha256_need_read_back(self):
		key, size, sha256 = self.upload("metadata-only")
		self.client.put_object(
			Bucket=self.bucket, Key=key, Body=os.urandom(size), Metadata={"sha256": sha256}
		)
		# Without provider checksums the stored sha256 only proves the object is ours, not its bytes.
		self.assertEqual(
			self.backend().verify_object(key, size, sha256, read_back=False), VERIFIED_BY_METADATA
		)
		with self.assertRaises(ChecksumMismatch):
			self.backend().verify_object(key, size, sha256, read_back=True)

	def test_a_truncated_object_is_a_size_mismatch(self):
		key, size, sha256 = self.upload("truncated")
		self.client.put_object(
			Bucket=self.bucket, Key=key, Body=os.urandom(size - 1), Metadata={"sha256": sha256}
		)
		with self.assertRaises(ChecksumMismatch) as caught:
			self.backend().verify_object(key, size, sha256)
		self.assertIn(f"{size - 1} bytes offsite", str(caught.exception))

	def test_an_intact_object_verifies(self):
		key, size, sha256 = self.upload("intact")
		self.assertEqual(
			self.backend().verify_object(key, size, sha256, read_back=True),
			f"{VERIFIED_BY_CHECKSUM} + {VERIFIED_BY_READ_BACK}",
		)

	def test_a_missing_object_is_a_storage_error(self):
		with self.assertRaises(StorageError) as caught:
			self.backend().verify_object(self.key("never-uploaded"), 1, "0" * 64)
		self.assertIn("missing", str(caught.exception))


class TestListDeleteAbort(SeaweedTestCase):
	def test_list_head_and_delete_touch_exactly_the_given_keys(self):
		backend = self.backend()
		keys = [self.key(f"file-{number}") for number in range(5)]
		for key in keys:
			backend.upload_bytes(key.encode(), key)
		listed = backend.list_objects(self.key(""))
		self.assertEqual(sorted(item.key for item in listed), sorted(keys))
		self.assertEqual({item.size for item in listed if item.key == keys[0]}, {len(keys[0])})
		backend.delete_objects(keys[:3])
		self.assertEqual(sorted(item.key for item in backend.list_objects(self.key(""))), sorted(keys[3:]))
		self.assertIsNone(backend.head(keys[0]))
		self.assertEqual(backend.head(keys[4]).size, len(keys[4]))

	def test_abort_incomplete_uploads_aborts_only_under_the_prefix_and_counts(self):
		inside = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key("orphans/db.sql.gz"))
		self.client.upload_part(
			Bucket=self.bucket,
			Key=self.key("orphans/db.sql.gz"),
			UploadId=inside["UploadId"],
			PartNumber=1,
			Body=b"x" * 1024,
		)
		outside = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key("elsewhere/db.sql.gz"))
		self.addCleanup(
			self.client.abort_multipart_upload,
			Bucket=self.bucket,
			Key=self.key("elsewhere/db.sql.gz"),
			UploadId=outside["UploadId"],
		)
		backend = self.backend()
		past = datetime.now(timezone.utc) - timedelta(days=1)
		self.assertEqual(backend.abort_incomplete_uploads(self.key("orphans/"), initiated_before=past), 0)
		self.assertEqual(backend.abort_incomplete_uploads(self.key("orphans/")), 1)
		remaining = [upload["Key"] for upload in unfinished_uploads(self.client, self.bucket)]
		self.assertNotIn(self.key("orphans/db.sql.gz"), remaining)
		self.assertIn(self.key("elsewhere/db.sql.gz"), remaining)

	def test_listing_a_dead_endpoint_raises_instead_of_returning_nothing(self):
		backend = get_backend(
			self.endpoint.storage_config(
				self.bucket, endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=1
			)
		)
		with self.assertRaises(StorageError) as caught:
			backend.list_objects("anything/")
		self.assertIn("nothing is decided", str(caught.exception))
		self.assertIn("Endpoint unreachable", str(caught.exception))


class TestConnectionCheck(SeaweedTestCase):
	def report_text(self, report) -> str:
		return report.summary() + " ".join(check.message for check in report.checks)

	def test_every_check_passes_and_the_probe_is_removed(self):
		report = self.backend(prefix="offsite").check_connection()
		self.assertEqual(
			[check.name for check in report.checks], ["bucket exists", "write", "read", "delete"]
		)
		self.assertTrue(report.ok, report.summary())
		self.assertEqual(self.backend().list_objects("offsite/"), [])

	def test_a_read_only_key_fails_the_write_check_with_access_denied(self):
		if not self.endpoint.readonly_access_key:
			self.skipTest(
				"no read-only identity: set BM_TEST_S3_READONLY_ACCESS_KEY/_SECRET_KEY for this server"
			)
		report = self.backend(
			access_key_id=self.endpoint.readonly_access_key,
			secret_access_key=self.endpoint.readonly_secret_key,
		).check_connection()
		self.assertTrue(report.check("bucket exists").ok)
		write = report.check("write")
		self.assertFalse(write.ok)
		self.assertIn("Access denied (403)", write.message)
		self.assertTrue(report.check("read").skipped)
		self.assertTrue(report.check("delete").skipped)
		self.assertNotIn(self.endpoint.readonly_secret_key, self.report_text(report))

	def test_a_wrong_secret_is_named_and_never_shown(self):
		wrong_secret = secrets.token_urlsafe(30)
		report = self.backend(secret_access_key=wrong_secret).check_connection()
		failure = report.first_failure
		self.assertEqual(failure.name, "bucket exists")
		self.assertIn("Secret Access Key does not match", failure.message)
		self.assertNotIn(wrong_secret, self.report_text(report))
		self.assertNotIn(self.endpoint.secret_key, self.report_text(report))
		self.assertEqual([check.skipped for check in report.checks], [False, True, True, True])

	def test_an_unknown_access_key_is_named(self):
		report = self.backend(access_key_id="AKIANOSUCHKEY000").check_connection()
		self.assertIn("does not know this Access Key ID", report.first_failure.message)

	def test_a_missing_bucket_is_a_404(self):
		report = get_backend(self.endpoint.storage_config("bm-no-such-bucket-here")).check_connection()
		self.assertIn("does not exist", report.first_failure.message)
		self.assertIn("404", report.first_failure.message)

	def test_a_dead_endpoint_is_unreachable(self):
		report = self.backend(
			endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=1
		).check_connection()
		self.assertIn("Endpoint unreachable", report.first_failure.message)

	def test_https_to_a_plain_http_server_is_a_tls_error(self):
		report = self.backend(
			endpoint_url=self.endpoint.endpoint_url.replace("http://", "https://"), max_attempts=1
		).check_connection()
		self.assertIn("TLS error", report.first_failure.message)

	def test_object_lock_is_checked_when_the_policy_locks_objects(self):
		locked_bucket = self.endpoint.create_bucket(object_lock=True)
		report = get_backend(
			self.endpoint.storage_config(locked_bucket, object_lock_days=1)
		).check_connection()
		self.assertTrue(report.check("object lock").ok, report.summary())
		self.assertTrue(report.ok, report.summary())
		report = self.backend(object_lock_days=1).check_connection()
		self.assertFalse(report.check("object lock").ok)
		self.assertIn("does not have Object Lock enabled", report.check("object lock").message)

	def test_an_upload_with_a_wrong_secret_fails_without_showing_it(self):
		wrong_secret = secrets.token_urlsafe(30)
		path, sha256 = write_random_file(self.directory, "denied", 1000)
		with self.assertRaises(StorageError) as caught:
			self.backend(secret_access_key=wrong_secret).upload_file(
				path, self.key("x"), size=1000, sha256=sha256
			)
		self.assertIn("Secret Access Key does not match", str(caught.exception))
		self.assertNotIn(wrong_secret, str(caught.exception))
		self.assertNotIn(
			wrong_secret, repr(caught.exception.__cause__.args) if caught.exception.__cause__ else ""
		)


class TestObjectLock(SeaweedTestCase):
	"""SeaweedFS implements S3 Object Lock (versioned buckets, retention dates), so this is real."""

	def test_uploads_are_locked_in_governance_mode_for_the_configured_days(self):
		bucket = self.endpoint.create_bucket(object_lock=True)
		backend = get_backend(self.endpoint.storage_config(bucket, object_lock_days=2))
		path, sha256 = write_random_file(self.directory, "locked", 1000)
		backend.upload_file(path, "site/20260101T000000Z-BL-1/db.sql.gz", size=1000, sha256=sha256)
		locked_until = backend.object_locked_until("site/20260101T000000Z-BL-1/db.sql.gz")
		expected = datetime.now(timezone.utc) + timedelta(days=2)
		self.assertLess(abs((locked_until - expected).total_seconds()), 300)
		head = self.client.head_object(Bucket=bucket, Key="site/20260101T000000Z-BL-1/db.sql.gz")
		self.assertEqual(head["ObjectLockMode"], OBJECT_LOCK_MODE)
		# The server enforces it: deleting the locked version itself is refused.
		with self.assertRaises(ClientError):
			self.client.delete_object(
				Bucket=bucket, Key="site/20260101T000000Z-BL-1/db.sql.gz", VersionId=head["VersionId"]
			)

	def test_a_content_sent_directly_is_locked_too(self):
		bucket = self.endpoint.create_bucket(object_lock=True)
		backend = get_backend(self.endpoint.storage_config(bucket, object_lock_days=2))
		data = os.urandom(5000)
		result = backend.upload_content(data, "site/contents/ab/c", sha256=hashlib.sha256(data).hexdigest())
		self.assertIsInstance(backend._direct, DirectRequests)
		self.assertEqual(result.verified_by, VERIFIED_BY_CHECKSUM)
		locked_until = backend.object_locked_until("site/contents/ab/c")
		expected = datetime.now(timezone.utc) + timedelta(days=2)
		self.assertLess(abs((locked_until - expected).total_seconds()), 300)
		head = self.client.head_object(Bucket=bucket, Key="site/contents/ab/c")
		self.assertEqual(head["ObjectLockMode"], OBJECT_LOCK_MODE)

	def test_an_unlocked_object_has_no_lock_date(self):
		backend = self.backend()
		backend.upload_bytes(b"x", self.key("free"))
		self.assertIsNone(backend.object_locked_until(self.key("free")))
		self.assertIsNone(backend.object_locked_until(self.key("missing")))


class TestDirectRequests(SeaweedTestCase):
	"""Contents and small reads go as signed single requests (core.storage.s3_direct)."""

	def test_a_content_goes_direct_and_the_server_confirms_its_checksum(self):
		backend = self.backend()
		data = os.urandom(300_000)
		sha256 = hashlib.sha256(data).hexdigest()
		result = backend.upload_content(data, self.key("content"), sha256=sha256, metadata={"kind": "x"})
		self.assertIsInstance(backend._direct, DirectRequests)
		self.assertEqual(result.verified_by, VERIFIED_BY_CHECKSUM)
		head = self.client.head_object(Bucket=self.bucket, Key=self.key("content"), ChecksumMode="ENABLED")
		self.assertEqual(base64.b64decode(head["ChecksumSHA256"]).hex(), sha256)
		self.assertEqual(head["Metadata"], {"kind": "x", "sha256": sha256})
		self.assertEqual(backend.read_bytes(self.key("content")), data)

	def test_bytes_that_are_not_the_declared_content_are_refused_and_not_stored(self):
		backend = self.backend()
		data = os.urandom(1000)
		declared = hashlib.sha256(b"other bytes").hexdigest()
		with self.assertRaises(LocalFileChanged):
			backend.upload_content(data, self.key("content"), sha256=declared)
		self.assertIsInstance(backend._direct, DirectRequests)
		self.assertEqual(backend.list_objects(self.key("")), [])

	def test_a_missing_object_read_directly_names_the_key(self):
		backend = self.backend()
		with self.assertRaises(StorageError) as caught:
			backend.read_bytes(self.key("missing"))
		self.assertIsInstance(backend._direct, DirectRequests)
		self.assertIn(self.key("missing"), str(caught.exception))
		self.assertIn("404", str(caught.exception))

	def test_wrong_keys_are_refused_and_reported_by_the_client(self):
		backend = self.backend(secret_access_key="not-the-secret-key-at-all")
		with self.assertRaises(StorageError) as caught:
			backend.read_bytes(self.key("anything"))
		# The direct path hands any refusal but a missing object to the client, which reports it.
		self.assertIs(backend._direct, False)
		self.assertIn("403", str(caught.exception))
		self.assertNotIn("not-the-secret-key-at-all", str(caught.exception))

	def test_an_argument_without_a_direct_header_falls_back_to_the_client(self):
		backend = self.backend()
		with self.assertRaises(FallBack):
			backend._direct_requests().put(self.key("x"), b"x", sha256="0" * 64, arguments={"ACL": "private"})
		self.assertEqual(backend.list_objects(self.key("")), [])

	def test_a_redirect_turns_the_direct_path_off_and_the_client_answers(self):
		backend = get_backend(self.endpoint.storage_config(self.bucket))
		data = b"read through the client after the redirect"
		backend.upload_bytes(data, self.key("object"))
		requests = backend._direct_requests()
		# Point the direct path at a server that only redirects (as S3 does for another region).
		with redirecting_server() as url:
			requests.prefix = f"{url}/{self.bucket}/"
			self.assertEqual(backend.read_bytes(self.key("object")), data)
		self.assertIs(backend._direct, False)


class RedirectHandler(http.server.BaseHTTPRequestHandler):
	def do_GET(self):
		body = b"<Error><Code>PermanentRedirect</Code><Message>Use another endpoint</Message></Error>"
		self.send_response(301)
		self.send_header("Content-Length", str(len(body)))
		self.end_headers()
		self.wfile.write(body)

	do_PUT = do_GET

	def log_message(self, *args):
		pass


@contextlib.contextmanager
def redirecting_server():
	server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RedirectHandler)
	thread = threading.Thread(target=server.serve_forever, daemon=True)
	thread.start()
	try:
		yield f"http://127.0.0.1:{server.server_address[1]}"
	finally:
		server.shutdown()
		server.server_close()


class TestErrorMapping(unittest.TestCase):
	"""Errors SeaweedFS cannot produce, through botocore's Stubber (no network)."""

	SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

	def setUp(self):
		config = S3Config(
			endpoint_url="https://s3.eu-central-1.wasabisys.com",
			provider=WASABI,
			region="us-east-1",
			bucket="backups",
			access_key_id="AKIAEXAMPLE",
			secret_access_key=self.SECRET,
			max_attempts=1,
		)
		self.backend = get_backend(config)
		self.stubber = Stubber(self.backend.client)
		self.stubber.activate()
		# The Stubber answers only calls made through the client, not the direct requests.
		self.backend._direct = False
		self.addCleanup(self.stubber.deactivate)

	def test_a_redirect_to_another_region_names_the_region(self):
		self.stubber.add_client_error(
			"head_bucket",
			service_error_code="301",
			http_status_code=301,
			response_meta={"HTTPHeaders": {"x-amz-bucket-region": "eu-central-1"}},
		)
		report = self.backend.check_connection()
		self.assertIn("Wrong region", report.first_failure.message)
		self.assertIn("eu-central-1", report.first_failure.message)

	def test_a_malformed_authorization_for_another_region_names_the_region(self):
		self.stubber.add_client_error(
			"list_objects_v2",
			service_error_code="AuthorizationHeaderMalformed",
			service_message="The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'",
			http_status_code=400,
		)
		with self.assertRaises(StorageError) as caught:
			self.backend.list_objects("site/")
		self.assertIn("Wrong region", str(caught.exception))
		self.assertIn("Set Region to eu-central-1", str(caught.exception))

	def test_a_listing_whose_second_page_fails_raises_instead_of_returning_the_first(self):
		self.stubber.add_response(
			"list_objects_v2",
			{
				"Contents": [{"Key": "site/a", "Size": 1}],
				"IsTruncated": True,
				"NextContinuationToken": "page-2",
				"KeyCount": 1,
			},
		)
		self.stubber.add_client_error(
			"list_objects_v2", service_error_code="InternalError", http_status_code=500
		)
		with self.assertRaises(StorageError) as caught:
			self.backend.list_objects("site/")
		self.assertIn("nothing is decided", str(caught.exception))

	def test_a_truncated_page_without_a_continuation_token_raises(self):
		self.stubber.add_response(
			"list_objects_v2",
			{"Contents": [{"Key": "site/a", "Size": 1}], "IsTruncated": True, "KeyCount": 1},
		)
		with self.assertRaises(StorageError):
			self.backend.list_objects("site/")

	def test_keys_the_provider_would_not_delete_are_reported(self):
		self.stubber.add_response(
			"delete_objects",
			{"Errors": [{"Key": "site/b", "Code": "AccessDenied", "Message": "Access Denied"}]},
		)
		with self.assertRaises(StorageError) as caught:
			self.backend.delete_objects(["site/a", "site/b"])
		self.assertIn("site/b: AccessDenied", str(caught.exception))

	def test_a_provider_refusing_bulk_delete_gets_one_delete_per_key(self):
		self.stubber.add_client_error(
			"delete_objects", service_error_code="MissingContentMD5", http_status_code=400
		)
		self.stubber.add_response("delete_object", {}, {"Bucket": "backups", "Key": "site/a"})
		self.stubber.add_response("delete_object", {}, {"Bucket": "backups", "Key": "site/b"})
		self.backend.delete_objects(["site/a", "site/b"])
		self.stubber.assert_no_pending_responses()

	def test_a_message_quoting_the_secret_is_redacted(self):
		self.stubber.add_client_error(
			"get_object",
			service_error_code="AccessDenied",
			service_message=f"Denied for secret {self.SECRET}",
			http_status_code=403,
		)
		with self.assertRaises(StorageError) as caught:
			self.backend.read_bytes("site/x")
		self.assertNotIn(self.SECRET, str(caught.exception))
		self.assertIn("***", str(caught.exception))

	def test_only_transient_failures_are_retried(self):
		def client_error(code, status):
			return ClientError(
				{"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
			)

		self.assertTrue(is_transient(client_error("SlowDown", 503)))
		self.assertTrue(is_transient(client_error("InternalError", 500)))
		self.assertTrue(is_transient(client_error("BadDigest", 400)))
		self.assertTrue(is_transient(EndpointConnectionError(endpoint_url="https://x")))
		self.assertTrue(is_transient(ReadTimeoutError(endpoint_url="https://x")))
		self.assertFalse(is_transient(client_error("AccessDenied", 403)))
		self.assertFalse(is_transient(client_error("NoSuchBucket", 404)))


class TestInterruptedUpload(unittest.TestCase):
	"""A server of its own, since the test kills it (even when BM_TEST_S3_ENDPOINT is set)."""

	@classmethod
	def setUpClass(cls):
		try:
			weed_binary()
		except RuntimeError as exc:
			raise unittest.SkipTest(str(exc)) from exc
		cls.server = SeaweedServer()
		cls.server.start()
		cls.directory = tempfile.mkdtemp(prefix="bm-s3-crash-")

	@classmethod
	def tearDownClass(cls):
		cls.server.remove()
		shutil.rmtree(cls.directory, ignore_errors=True)

	def test_an_upload_cut_by_a_server_stop_is_retried_and_leaves_no_unfinished_upload(self):
		endpoint = self.server.endpoint
		bucket = endpoint.create_bucket()
		client = endpoint.client()
		size = 80 * MiB
		path, sha256 = write_random_file(self.directory, "crash", size)
		backend = get_backend(
			endpoint.storage_config(
				bucket,
				max_concurrency=1,
				upload_attempts=6,
				retry_backoff_seconds=0.5,
				max_attempts=1,
				connect_timeout=1,
			)
		)
		outcome = {}
		aborted_counts = []
		abort_uploads_for_key = backend._abort_uploads_for_key

		def record_aborts(key):
			aborted_counts.append(abort_uploads_for_key(key))
			return aborted_counts[-1]

		backend._abort_uploads_for_key = record_aborts

		def upload():
			try:
				outcome["result"] = backend.upload_file(
					path, "site/20260101T000000Z-BL-1/db.sql.gz", size=size, sha256=sha256
				)
			except Exception as exc:
				outcome["error"] = exc

		with self.assertLogs("backup_manager.core.storage.s3", logging.WARNING) as logs:
			thread = threading.Thread(target=upload)
			thread.start()
			deadline = time.monotonic() + 30
			interrupted = []
			while time.monotonic() < deadline and thread.is_alive():
				interrupted = unfinished_uploads(client, bucket)
				if interrupted:
					break
				time.sleep(0.005)
			self.assertTrue(
				interrupted and thread.is_alive(), "the upload finished before the stop could cut it"
			)
			# SIGTERM: SeaweedFS shuts down cleanly, so the cut upload survives the restart as an
			# orphan (after SIGKILL it sometimes loses a freshly created upload, and the test could
			# not tell an abort from that loss).
			self.server.stop()
			self.server.restart()
			thread.join(timeout=120)

		self.assertNotIn("error", outcome, outcome.get("error"))
		self.assertEqual(outcome["result"].verified_by, VERIFIED_BY_PART_CHECKSUMS)
		self.assertTrue(any("Retrying" in line for line in logs.output), logs.output)
		# The upload cut by the stop was aborted by a retry: nothing is left to bill for.
		self.assertGreaterEqual(sum(aborted_counts), 1, aborted_counts)
		self.assertEqual(unfinished_uploads(client, bucket), [])
		stored = client.get_object(Bucket=bucket, Key="site/20260101T000000Z-BL-1/db.sql.gz")["Body"].read()
		self.assertEqual(hashlib.sha256(stored).hexdigest(), sha256)

	def test_an_upload_to_a_server_that_stays_down_fails_with_a_plain_error(self):
		endpoint = self.server.endpoint
		bucket = endpoint.create_bucket()
		path, sha256 = write_random_file(self.directory, "down", 1000)
		backend = get_backend(
			endpoint.storage_config(
				bucket, upload_attempts=2, retry_backoff_seconds=0.1, max_attempts=1, connect_timeout=1
			)
		)
		self.server.kill()
		self.addCleanup(self.server.restart)
		with self.assertRaises(StorageError) as caught:
			backend.upload_file(path, "site/x", size=1000, sha256=sha256)
		self.assertIn("Endpoint unreachable", str(caught.exception))
		self.assertIn("after 2 attempts", str(caught.exception))
		self.assertNotIn(endpoint.secret_key, str(caught.exception))


if __name__ == "__main__":
	unittest.main()
