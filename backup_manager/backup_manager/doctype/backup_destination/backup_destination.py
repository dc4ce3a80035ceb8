# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

import frappe
from frappe import _
from frappe.model.document import Document
from frappe.utils import now_datetime

from backup_manager.core.storage import PROVIDER_PRESETS, S3Config, get_backend
from backup_manager.permissions import require_backup_admin


class InvalidBackupDestination(frappe.ValidationError):
	pass


class BackupDestination(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		access_key_id: DF.Data
		account_id: DF.Data | None
		addressing_style: DF.Literal["auto", "path", "virtual"]
		bucket: DF.Data
		destination_name: DF.Data
		enabled: DF.Check
		endpoint_url: DF.Data | None
		kms_key_id: DF.Data | None
		last_test_at: DF.Datetime | None
		last_test_message: DF.SmallText | None
		last_test_status: DF.Literal["", "Passed", "Failed"]
		max_concurrency: DF.Int
		multipart_chunksize_mb: DF.Int
		object_lock_days: DF.Int
		path_prefix: DF.Data | None
		provider: DF.Literal[
			"Amazon S3",
			"Wasabi",
			"Backblaze B2",
			"Cloudflare R2",
			"MinIO",
			"DigitalOcean Spaces",
			"Other S3-compatible",
		]
		read_back_verify: DF.Check
		region: DF.Data | None
		secret_access_key: DF.Password
		server_side_encryption: DF.Literal["", "AES256", "aws:kms"]
		storage_class: DF.Literal[
			"", "STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"
		]

	# end: auto-generated types
	def validate(self):
		# Saving never touches the network: connection problems are for Test Connection.
		self.apply_provider_preset()
		self.bucket = (self.bucket or "").strip()
		self.path_prefix = (self.path_prefix or "").strip().strip("/")
		if self.endpoint_url and not self.endpoint_url.startswith(("https://", "http://")):
			frappe.throw(
				_(
					"Endpoint URL {0} must start with https:// (or http:// for a server on your own network)."
				).format(frappe.bold(self.endpoint_url)),
				exc=InvalidBackupDestination,
			)
		if self.provider != "Amazon S3" and not self.endpoint_url:
			frappe.throw(
				_("Endpoint URL is required for {0}. Copy it from the provider's console.").format(
					_(self.provider)
				),
				exc=InvalidBackupDestination,
			)
		for fieldname in ("object_lock_days", "max_concurrency", "multipart_chunksize_mb"):
			if (self.get(fieldname) or 0) < 0:
				frappe.throw(
					_("{0} cannot be negative.").format(_(self.meta.get_label(fieldname))),
					exc=InvalidBackupDestination,
				)
		if self.server_side_encryption == "aws:kms" and not self.kms_key_id:
			frappe.throw(
				_("KMS Key ID is required when Server-Side Encryption is aws:kms."),
				exc=InvalidBackupDestination,
			)

	def apply_provider_preset(self):
		"""Fill the endpoint, region and addressing style the provider implies, where left empty."""
		preset = PROVIDER_PRESETS.get(self.provider)
		if not preset:
			return
		if not self.region and preset.default_region:
			self.region = preset.default_region
		if not self.endpoint_url and preset.endpoint_template:
			try:
				self.endpoint_url = preset.endpoint_template.format(
					region=self.region or "", account_id=self.account_id or ""
				)
			except KeyError:
				pass
			if "{}" in self.endpoint_url or "//." in self.endpoint_url or self.endpoint_url.endswith("//"):
				self.endpoint_url = ""
		if (not self.addressing_style or self.addressing_style == "auto") and preset.addressing_style:
			self.addressing_style = preset.addressing_style

	def get_s3_config(self) -> S3Config:
		return S3Config(
			provider=self.provider,
			endpoint_url=self.endpoint_url or None,
			region=self.region or None,
			bucket=self.bucket,
			prefix=self.path_prefix or "",
			addressing_style=self.addressing_style or "auto",
			access_key_id=self.access_key_id,
			secret_access_key=self.get_password("secret_access_key", raise_exception=False) or "",
			storage_class=self.storage_class or "",
			server_side_encryption=self.server_side_encryption or "",
			kms_key_id=self.kms_key_id or "",
			object_lock_days=self.object_lock_days or 0,
			max_concurrency=self.max_concurrency or 4,
			multipart_chunksize_mb=self.multipart_chunksize_mb or 64,
			read_back_verify=bool(self.read_back_verify),
		)

	def get_backend(self):
		return get_backend(self.get_s3_config())

	@frappe.whitelist()
	def test_connection(self):
		"""Check the bucket exists and a probe object can be written, read and deleted."""
		require_backup_admin()
		report = self.get_backend().check_connection()
		passed = report.ok
		message = "\n".join(
			f"{'✔' if check.ok else '✘'} {check.name}: {check.message}" for check in report.checks
		)
		self.db_set(
			{
				"last_test_status": "Passed" if passed else "Failed",
				"last_test_at": now_datetime(),
				"last_test_message": message,
			}
		)
		return {
			"ok": passed,
			"checks": [
				{"name": check.name, "ok": check.ok, "message": check.message} for check in report.checks
			],
		}
