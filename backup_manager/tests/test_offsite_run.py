"""Offsite copies end to end in a real bench against a real S3 server (SeaweedFS on 127.0.0.1).

scripts/run-tests.sh starts the server and exports BM_TEST_S3_ENDPOINT and its keys. Without
them these tests are skipped, unless BM_REQUIRE_S3=1 (as in CI), where that is a failure.
"""

import hashlib
import json
import os
import tempfile
import unittest

import boto3
import frappe
from botocore.config import Config

from backup_manager import api, jobs
from backup_manager.core.checksums import sha256_file
from backup_manager.core.manifest import MANIFEST_FILE_NAME, Manifest
from backup_manager.offsite import retry_upload
from backup_manager.retention import get_local_backup_records
from backup_manager.tests.utils import (
	FrappeTestCase,
	bench_command,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	make_user,
)

S3_ENDPOINT = os.environ.get("BM_TEST_S3_ENDPOINT", "")
S3_ACCESS_KEY = os.environ.get("BM_TEST_S3_ACCESS_KEY", "")
S3_SECRET_KEY = os.environ.get("BM_TEST_S3_SECRET_KEY", "")
TEST_DESTINATION_PREFIX = "_Test BM Dest "

if not S3_ENDPOINT and os.environ.get("BM_REQUIRE_S3") == "1":
	raise RuntimeError(
		"BM_REQUIRE_S3=1 but BM_TEST_S3_ENDPOINT is not set: start SeaweedFS (tests/seaweed.py start)"
	)


def s3_client():
	return boto3.client(
		"s3",
		endpoint_url=S3_ENDPOINT,
		aws_access_key_id=S3_ACCESS_KEY,
		aws_secret_access_key=S3_SECRET_KEY,
		region_name="us-east-1",
		config=Config(s3={"addressing_style": "path"}),
	)


def list_keys(bucket: str, prefix: str = "") -> list[str]:
	paginator = s3_client().get_paginator("list_objects_v2")
	return sorted(
		item["Key"]
		for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
		for item in page.get("Contents", [])
	)


def make_destination(name: str, bucket: str, **values):
	full_name = TEST_DESTINATION_PREFIX + name
	if frappe.db.exists("Backup Destination", full_name):
		frappe.delete_doc("Backup Destination", full_name, force=True, ignore_permissions=True)
	destination = frappe.get_doc(
		{
			"doctype": "Backup Destination",
			"destination_name": full_name,
			"provider": "MinIO",
			"endpoint_url": S3_ENDPOINT,
			"region": "us-east-1",
			"bucket": bucket,
			"path_prefix": "offsite-tests",
			"addressing_style": "path",
			"access_key_id": S3_ACCESS_KEY,
			"secret_access_key": S3_SECRET_KEY,
			"multipart_chunksize_mb": 5,
			# These tests check the whole-archive layout; deduplicated files: test_sftp_destination.
			"deduplicate_files": 0,
			**values,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return destination


def run_now(policy_name: str):
	return jobs.execute_run(jobs.start_run(policy=policy_name, trigger="CLI", enqueue=False))


@unittest.skipUnless(
	S3_ENDPOINT, "no S3 server: BM_TEST_S3_ENDPOINT is not set (scripts/run-tests.sh sets it)"
)
class TestOffsiteRun(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		ensure_outgoing_email_account()
		cls.bucket = "bm-bench-" + frappe.generate_hash(length=8).lower()
		s3_client().create_bucket(Bucket=cls.bucket)

	def setUp(self):
		frappe.set_user("Administrator")
		delete_test_policies()

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.rollback()
		delete_test_policies()
		for name in frappe.get_all(
			"Backup Destination", filters={"name": ("like", TEST_DESTINATION_PREFIX + "%")}, pluck="name"
		):
			frappe.delete_doc("Backup Destination", name, force=True, ignore_permissions=True)
		frappe.db.commit()

	def test_run_uploads_every_artifact_then_the_manifest_and_reports_success(self):
		destination = make_destination("main", self.bucket)
		policy = make_policy("offsite", destinations=[{"destination": destination.name}])
		log = run_now(policy.name)

		self.assertEqual(log.status, "Success", log.error_message)
		folder = f"offsite-tests/{frappe.local.site}/{log.backup_id}/"
		expected = sorted([folder + row.file_name for row in log.artifacts] + [folder + MANIFEST_FILE_NAME])
		self.assertEqual(list_keys(self.bucket, folder), expected)
		self.assertEqual(len(log.uploads), len(log.artifacts) + 1)
		self.assertTrue(
			all(row.status == "Uploaded" and row.remote_key.startswith(folder) for row in log.uploads)
		)
		manifest_row = next(row for row in log.uploads if row.kind == "manifest")
		self.assertEqual(manifest_row.remote_key, folder + MANIFEST_FILE_NAME)

		remote = Manifest.from_json(
			s3_client()
			.get_object(Bucket=self.bucket, Key=folder + MANIFEST_FILE_NAME)["Body"]
			.read()
			.decode()
		)
		self.assertEqual(remote, Manifest.from_json(log.manifest))
		self.assertEqual(
			{artifact.sha256 for artifact in remote.artifacts}, {row.sha256 for row in log.artifacts}
		)

		result = bench_command("backup-manager", "verify", log.name, "--offsite")
		self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

		with tempfile.TemporaryDirectory() as target:
			result = bench_command("backup-manager", "download", log.name, "--to", target)
			self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
			for row in log.artifacts:
				self.assertEqual(sha256_file(os.path.join(target, row.file_name)), row.sha256)

		# The secret stays in its Password field: not on the log, not in API answers.
		self.assertNotIn(
			S3_SECRET_KEY, json.dumps(frappe.get_doc("Backup Log", log.name).as_dict(), default=str)
		)
		from frappe.client import get as client_get

		self.assertNotIn(
			S3_SECRET_KEY, json.dumps(client_get("Backup Destination", destination.name), default=str)
		)

	def test_corrupted_offsite_object_fails_offsite_verification(self):
		destination = make_destination("corrupt", self.bucket)
		log = run_now(
			make_policy("corrupt", with_files=0, destinations=[{"destination": destination.name}]).name
		)
		self.assertEqual(log.status, "Success", log.error_message)
		database_key = next(row.remote_key for row in log.uploads if row.kind == "database")
		s3_client().put_object(Bucket=self.bucket, Key=database_key, Body=b"not the backup")
		result = bench_command("backup-manager", "verify", log.name, "--offsite")
		self.assertEqual(result.returncode, 1, result.stdout)
		self.assertIn("BAD", result.stdout)

	def test_failed_upload_keeps_the_local_copy_and_a_retry_completes_it(self):
		destination = make_destination("badkey", self.bucket, secret_access_key="wrong-secret-for-test")
		policy = make_policy(
			"badkey", with_files=0, keep_last=1, destinations=[{"destination": destination.name}]
		)
		first = run_now(policy.name)
		self.assertEqual(first.status, "Failed")
		self.assertIn("Offsite upload incomplete", first.error_message)
		self.assertNotIn("wrong-secret-for-test", json.dumps(first.as_dict(), default=str))
		self.assertTrue(os.path.isdir(first.backup_dir), "a failed upload must keep the local copy")
		self.assertIsNotNone(first.next_upload_retry_at)
		self.assertTrue(
			frappe.db.exists("Email Queue", {"reference_doctype": "Backup Log", "reference_name": first.name})
		)

		# Retention treats the unverified backup as protected, even with keep_last=1 and a newer run.
		second = run_now(policy.name)
		self.assertEqual(second.status, "Failed")
		first.reload()
		self.assertFalse(first.local_files_deleted)
		records = {record.id: record for record in get_local_backup_records(policy.name)}
		self.assertEqual(records[first.name].protected_reason, "offsite copy not verified yet")

		destination.secret_access_key = S3_SECRET_KEY
		destination.save(ignore_permissions=True)
		frappe.db.commit()
		self.assertEqual(retry_upload(first.name, enqueue=False), "Success")
		first.reload()
		self.assertEqual(first.status, "Success")
		self.assertEqual(first.upload_attempts, 2)
		self.assertIn(f"{first.backup_id}/{MANIFEST_FILE_NAME}", "\n".join(list_keys(self.bucket)))

	def test_unreachable_destination_is_failed_with_a_plain_reason(self):
		destination = make_destination("down", self.bucket, endpoint_url="http://127.0.0.1:1")
		log = run_now(
			make_policy("down", with_files=0, destinations=[{"destination": destination.name}]).name
		)
		self.assertEqual(log.status, "Failed")
		self.assertTrue(all(row.status != "Uploaded" for row in log.uploads))
		self.assertTrue(os.path.isdir(log.backup_dir))

	def test_partial_when_one_of_two_destinations_fails(self):
		good = make_destination("good", self.bucket)
		bad = make_destination("bad", "no-such-bucket-" + frappe.generate_hash(length=6).lower())
		log = run_now(
			make_policy(
				"two", with_files=0, destinations=[{"destination": good.name}, {"destination": bad.name}]
			).name
		)
		self.assertEqual(log.status, "Partial")
		self.assertTrue(os.path.isdir(log.backup_dir))

	def test_offsite_retention_deletes_exactly_the_pruned_backups(self):
		destination = make_destination(
			"retention", self.bucket, path_prefix="retention-" + frappe.generate_hash(length=6)
		)
		policy = make_policy(
			"offsite-retention", with_files=0, keep_last=1, destinations=[{"destination": destination.name}]
		)
		foreign_key = f"{destination.path_prefix}/{frappe.local.site}/operator-notes.txt"
		s3_client().put_object(Bucket=self.bucket, Key=foreign_key, Body=b"keep me")
		first = run_now(policy.name)
		second = run_now(policy.name)
		self.assertEqual((first.status, second.status), ("Success", "Success"))
		keys = list_keys(self.bucket, destination.path_prefix + "/")
		self.assertFalse(
			[key for key in keys if first.backup_id in key], "the older backup was not pruned offsite"
		)
		self.assertTrue([key for key in keys if second.backup_id in key and key.endswith(MANIFEST_FILE_NAME)])
		self.assertIn(foreign_key, keys, "retention deleted an object it did not create")

	def test_planted_future_backups_are_reported_and_never_displace_real_ones(self):
		destination = make_destination(
			"planted", self.bucket, path_prefix="planted-" + frappe.generate_hash(length=6)
		)
		policy = make_policy(
			"offsite-planted", with_files=0, keep_last=2, destinations=[{"destination": destination.name}]
		)
		first = run_now(policy.name)
		self.assertEqual(first.status, "Success", first.error_message)
		# Whoever can write to the bucket plants complete-looking backups dated in the future: copies
		# of the real one's objects under new ids, manifest included (its signature names another id).
		folder = f"{destination.path_prefix}/{frappe.local.site}"
		planted = [f"2099010{day}T000000Z-BL-PLANTED{day}" for day in (1, 2, 3)]
		for backup_id in planted:
			for row in first.uploads:
				name = row.remote_key.rsplit("/", 1)[-1]
				body = s3_client().get_object(Bucket=self.bucket, Key=row.remote_key)["Body"].read()
				if name == MANIFEST_FILE_NAME:
					data = json.loads(body)
					data["backup_id"] = backup_id
					body = json.dumps(data).encode()
				s3_client().put_object(Bucket=self.bucket, Key=f"{folder}/{backup_id}/{name}", Body=body)
		planted_keys = [key for key in list_keys(self.bucket, folder + "/") if "PLANTED" in key]

		second = run_now(policy.name)
		third = run_now(policy.name)
		self.assertEqual((second.status, third.status), ("Success", "Success"))
		keys = list_keys(self.bucket, folder + "/")
		self.assertFalse([key for key in keys if first.backup_id in key], "retention no longer prunes")
		for log in (second, third):
			self.assertTrue([key for key in keys if f"{log.backup_id}/{MANIFEST_FILE_NAME}" in key])
		self.assertEqual([key for key in keys if "PLANTED" in key], planted_keys)
		third.reload()
		for backup_id in planted:
			self.assertIn(backup_id, third.unrecognised_objects)
		self.assertIn("in the future", third.unrecognised_objects)

	def test_download_checks_the_files_against_the_log_not_the_bucket_manifest(self):
		destination = make_destination(
			"download", self.bucket, path_prefix="download-" + frappe.generate_hash(length=6)
		)
		policy = make_policy(
			"offsite-download", with_files=0, destinations=[{"destination": destination.name}]
		)
		log = run_now(policy.name)
		self.assertEqual(log.status, "Success", log.error_message)
		manifest_key = next(row.remote_key for row in log.uploads if row.kind == "manifest")
		# The bucket's manifest is no longer readable: the download does not need it.
		s3_client().put_object(Bucket=self.bucket, Key=manifest_key, Body=b"not a manifest")
		with tempfile.TemporaryDirectory() as parent:
			target = os.path.join(parent, "download")
			result = bench_command("backup-manager", "download", log.name, "--to", target)
			self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
			for row in log.artifacts:
				self.assertEqual(sha256_file(os.path.join(target, row.file_name)), row.sha256)
			with open(os.path.join(target, MANIFEST_FILE_NAME)) as handle:
				self.assertEqual(Manifest.from_json(handle.read()), Manifest.from_json(log.manifest))

		# A swapped database with a bucket manifest rewritten to match it is still caught.
		database = next(row for row in log.artifacts if row.kind == "database")
		evil = b"\x1f\x8b swapped"
		database_key = manifest_key.rsplit("/", 1)[0] + "/" + database.file_name
		s3_client().put_object(Bucket=self.bucket, Key=database_key, Body=evil)
		forged = json.loads(log.manifest)
		for artifact in forged["artifacts"]:
			if artifact["kind"] == "database":
				artifact["size"], artifact["sha256"] = len(evil), hashlib.sha256(evil).hexdigest()
		s3_client().put_object(Bucket=self.bucket, Key=manifest_key, Body=json.dumps(forged).encode())
		with tempfile.TemporaryDirectory() as parent:
			target = os.path.join(parent, "download")
			result = bench_command("backup-manager", "download", log.name, "--to", target)
			self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
			self.assertIn("Download failed", result.stderr)
			self.assertIn(database.file_name, result.stderr)
			self.assertFalse(os.path.exists(os.path.join(target, database.file_name)))

	def test_test_connection_reports_each_check(self):
		report = api.test_destination_connection(make_destination("probe", self.bucket).name)
		self.assertTrue(report["ok"], report)
		self.assertEqual(len(report["checks"]), 4)
		missing = api.test_destination_connection(
			make_destination("missing", "no-such-bucket-" + frappe.generate_hash(length=6).lower()).name
		)
		self.assertFalse(missing["ok"])
		self.assertFalse(missing["checks"][0]["ok"])
		self.assertIn("no-such-bucket", missing["checks"][0]["message"])
		self.assertEqual(
			frappe.db.get_value(
				"Backup Destination", TEST_DESTINATION_PREFIX + "missing", "last_test_status"
			),
			"Failed",
		)

	def test_non_system_manager_cannot_see_destinations_or_test_them(self):
		destination = make_destination("private", self.bucket)
		make_user("bm-plain-user@example.com", ["Blogger"])
		frappe.set_user("bm-plain-user@example.com")
		self.assertFalse(frappe.has_permission("Backup Destination", "read"))
		with self.assertRaises(frappe.PermissionError):
			frappe.get_list("Backup Destination")
		with self.assertRaises(frappe.PermissionError):
			api.test_destination_connection(destination.name)
