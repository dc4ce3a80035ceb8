# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from backup_manager.core.errors import InvalidPolicy
from backup_manager.core.storage import (
	PROVIDER_PRESETS,
	STORAGE_FOLDER,
	STORAGE_SFTP,
	FolderConfig,
	S3Config,
	SFTPConfig,
	StorageConfig,
	get_backend,
)


class InvalidBackupDestination(frappe.ValidationError):
	pass


class BackupDestination(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		access_key_id: DF.Data | None
		account_id: DF.Data | None
		addressing_style: DF.Literal["auto", "path", "virtual"]
		base_folder: DF.Data | None
		bucket: DF.Data | None
		deduplicate_files: DF.Check
		destination_name: DF.Data
		enabled: DF.Check
		endpoint_url: DF.Data | None
		folder_path: DF.Data | None
		host_key: DF.SmallText | None
		host_key_fingerprint: DF.Data | None
		kms_key_id: DF.Data | None
		last_test_at: DF.Datetime | None
		last_test_message: DF.SmallText | None
		last_test_status: DF.Literal["", "Passed", "Failed"]
		max_concurrency: DF.Int
		multipart_chunksize_mb: DF.Int
		must_be_mount_point: DF.Check
		object_lock_days: DF.Int
		path_prefix: DF.Data | None
		private_key: DF.Password | None
		private_key_file: DF.Data | None
		private_key_passphrase: DF.Password | None
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
		secret_access_key: DF.Password | None
		server_side_encryption: DF.Literal["", "AES256", "aws:kms"]
		sftp_host: DF.Data | None
		sftp_password: DF.Password | None
		sftp_port: DF.Int
		sftp_username: DF.Data | None
		storage_class: DF.Literal[
			"", "STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"
		]
		storage_type: DF.Literal["S3-compatible", "SFTP", "Folder"]

	# end: auto-generated types
	def validate(self):
		# Saving never touches the network: connection problems are for Test Connection.
		self.path_prefix = (self.path_prefix or "").strip().strip("/")
		if self.storage_type == STORAGE_SFTP:
			self.sftp_host = (self.sftp_host or "").strip()
			self.base_folder = (self.base_folder or "").strip()
			if self.has_value_changed("sftp_host") or self.has_value_changed("sftp_port"):
				# A key accepted for another server says nothing about this one.
				if not self.is_new() and not self.flags.keep_host_key:
					self.host_key = ""
					self.host_key_fingerprint = ""
		elif self.storage_type != STORAGE_FOLDER:
			self.apply_provider_preset()
			self.bucket = (self.bucket or "").strip()
		# The form refuses exactly what the storage backend would refuse at upload time.
		try:
			self.get_storage_config(with_secret=False).validate()
		except InvalidPolicy as exc:
			label = self.meta.get_label(exc.field) if self.meta.has_field(exc.field) else ""
			frappe.throw(str(exc), title=_(label) if label else None, exc=InvalidBackupDestination)

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

	def get_s3_config(self, with_secret: bool = True) -> S3Config:
		return S3Config(
			provider=self.provider,
			endpoint_url=self.endpoint_url or None,
			region=self.region or None,
			bucket=self.bucket,
			prefix=self.path_prefix or "",
			addressing_style=self.addressing_style or "auto",
			access_key_id=self.access_key_id,
			secret_access_key=(self.get_password("secret_access_key", raise_exception=False) or "")
			if with_secret
			else "",
			storage_class=self.storage_class or "",
			server_side_encryption=self.server_side_encryption or "",
			kms_key_id=self.kms_key_id or "",
			object_lock_days=self.object_lock_days or 0,
			max_concurrency=self.max_concurrency or 4,
			multipart_chunksize_mb=self.multipart_chunksize_mb or 64,
			read_back_verify=bool(self.read_back_verify),
		)

	def get_sftp_config(self, with_secret: bool = True) -> SFTPConfig:
		def secret(fieldname: str) -> str:
			if not with_secret:
				return ""
			return self.get_password(fieldname, raise_exception=False) or ""

		return SFTPConfig(
			host=self.sftp_host or "",
			port=self.sftp_port or 22,
			username=(self.sftp_username or "").strip(),
			base_folder=self.base_folder or "",
			prefix=self.path_prefix or "",
			password=secret("sftp_password"),
			private_key=secret("private_key"),
			private_key_file=(self.private_key_file or "").strip(),
			private_key_passphrase=secret("private_key_passphrase"),
			host_key=(self.host_key or "").strip(),
			read_back_verify=bool(self.read_back_verify),
		)

	def get_folder_config(self) -> FolderConfig:
		return FolderConfig(
			path=(self.folder_path or "").strip(),
			prefix=self.path_prefix or "",
			must_be_mount_point=bool(self.must_be_mount_point),
			read_back_verify=True,
		)

	def get_storage_config(self, with_secret: bool = True) -> StorageConfig:
		"""The core configuration of this destination's type."""
		if self.storage_type == STORAGE_SFTP:
			return self.get_sftp_config(with_secret=with_secret)
		if self.storage_type == STORAGE_FOLDER:
			return self.get_folder_config()
		return self.get_s3_config(with_secret=with_secret)

	def describe_location(self) -> str:
		"""Where the copies go, for messages (never a secret)."""
		if self.storage_type == STORAGE_SFTP:
			return f"sftp://{self.sftp_username}@{self.sftp_host}:{self.sftp_port or 22}/{self.base_folder or ''}"
		if self.storage_type == STORAGE_FOLDER:
			return self.folder_path or ""
		return self.bucket or ""

	def get_backend(self):
		return get_backend(self.get_storage_config())
