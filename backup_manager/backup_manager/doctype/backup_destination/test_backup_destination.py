# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

import frappe

from backup_manager.backup_manager.doctype.backup_destination.backup_destination import (
	InvalidBackupDestination,
)
from backup_manager.core.errors import InvalidPolicy
from backup_manager.tests.utils import FrappeTestCase


def destination_doc(**values):
	return frappe.get_doc(
		{
			"doctype": "Backup Destination",
			"destination_name": "_Test BM Dest validation",
			"provider": "Other S3-compatible",
			"endpoint_url": "http://127.0.0.1:1",
			"bucket": "backups",
			"access_key_id": "AKIAEXAMPLE",
			"secret_access_key": "not-a-real-secret",
			**values,
		}
	)


class TestBackupDestinationValidation(FrappeTestCase):
	"""The form refuses exactly what the storage backend refuses, with the backend's message."""

	def tearDown(self):
		frappe.db.rollback()

	def assert_refused_like_the_backend(self, field: str, **values):
		doc = destination_doc(**values)
		with self.assertRaises(InvalidBackupDestination) as caught:
			doc.insert(ignore_permissions=True)
		with self.assertRaises(InvalidPolicy) as backend:
			doc.get_s3_config(with_secret=False).validate()
		self.assertEqual(backend.exception.field, field)
		self.assertIn(str(backend.exception), str(caught.exception))

	def test_settings_the_backend_refuses_are_refused_on_save(self):
		cases = {
			"max_concurrency": {"max_concurrency": 100},
			"multipart_chunksize_mb": {"multipart_chunksize_mb": 1},
			"server_side_encryption": {
				"provider": "Backblaze B2",
				"endpoint_url": "https://s3.us-west-004.backblazeb2.com",
				"server_side_encryption": "aws:kms",
			},
			"endpoint_url": {"endpoint_url": "s3.example.com"},
			"object_lock_days": {"object_lock_days": -1},
			"kms_key_id": {"server_side_encryption": "AES256", "kms_key_id": "arn:aws:kms:key"},
		}
		for field, values in cases.items():
			with self.subTest(field=field):
				self.assert_refused_like_the_backend(field, **values)

	def test_a_provider_that_needs_an_endpoint_names_the_endpoint(self):
		self.assert_refused_like_the_backend("endpoint_url", provider="Cloudflare R2", endpoint_url="")

	def test_settings_the_backend_accepts_save(self):
		doc = destination_doc(
			max_concurrency=64, multipart_chunksize_mb=5, server_side_encryption="aws:kms"
		).insert(ignore_permissions=True)
		self.assertEqual(doc.get_s3_config().secret_access_key, "not-a-real-secret")
		self.assertNotIn("not-a-real-secret", repr(doc.get_s3_config()))
