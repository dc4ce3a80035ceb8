"""Offsite storage: a small interface over object stores (S3-compatible, SFTP, a mounted folder).

The interface is what offsite.py (upload, listing, retention, verification, download) needs
and nothing more. Keys passed to a backend are full object keys inside the bucket (or below the
base folder of an SFTP server or a mounted disk); the layout (`<prefix>/<site>/<backup id>/<file>`)
is built by core.layout, never here. Only storage/s3.py imports boto3 and only storage/sftp.py
imports paramiko; `get_backend` imports them lazily.
"""

import abc
import hashlib
import logging
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from backup_manager.core.errors import InvalidPolicy, LocalFileChanged

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB

# Limits of the S3 API (AWS documents them; every provider below shares them or is looser).
S3_MAX_PARTS = 10_000
S3_MIN_PART_SIZE = 5 * MiB  # every part but the last must be at least this big
S3_MAX_PART_SIZE = 5 * GiB
S3_MAX_OBJECT_SIZE = 5 * TiB
S3_MAX_DELETE_KEYS = 1000  # DeleteObjects takes at most 1000 keys per request

DEFAULT_MULTIPART_CHUNKSIZE_MB = 16
DEFAULT_MAX_CONCURRENCY = 4
MAX_CONCURRENCY_LIMIT = 64

# How an uploaded object was shown to hold the bytes we meant to send (UploadResult.verified_by).
VERIFIED_BY_CHECKSUM = "S3 SHA-256 checksum"
VERIFIED_BY_PART_CHECKSUMS = "S3 SHA-256 part checksums"
VERIFIED_BY_METADATA = "size and stored sha256"
VERIFIED_BY_READ_BACK = "read back and hashed"
VERIFIED_BY_SERVER_HASH = "sha256 computed on the server"
VERIFIED_BY_SIZE_AND_LOCAL_HASH = "size, and sha256 of the file sent"

STORAGE_S3 = "S3-compatible"
STORAGE_SFTP = "SFTP"
STORAGE_FOLDER = "Folder"
STORAGE_TYPES = (STORAGE_S3, STORAGE_SFTP, STORAGE_FOLDER)
DEFAULT_SFTP_PORT = 22

ADDRESSING_STYLES = ("auto", "path", "virtual")
SSE_NONE = ""
SSE_AES256 = "AES256"
SSE_KMS = "aws:kms"
SERVER_SIDE_ENCRYPTIONS = (SSE_NONE, SSE_AES256, SSE_KMS)

AMAZON_S3 = "Amazon S3"
WASABI = "Wasabi"
BACKBLAZE_B2 = "Backblaze B2"
CLOUDFLARE_R2 = "Cloudflare R2"
MINIO = "MinIO"
DIGITALOCEAN_SPACES = "DigitalOcean Spaces"
OTHER_S3_COMPATIBLE = "Other S3-compatible"


@dataclass(frozen=True)
class ProviderPreset:
	"""What a provider needs and supports; `endpoint_template` is filled by `endpoint_for`."""

	name: str
	endpoint_template: str
	default_region: str
	addressing_style: str
	supports_sha256_checksum: bool
	supports_object_lock: bool
	supports_sse_kms: bool
	quirks: str = ""


PROVIDER_PRESETS: dict[str, ProviderPreset] = {
	AMAZON_S3: ProviderPreset(
		name=AMAZON_S3,
		# Empty: boto3 resolves s3.<region>.amazonaws.com itself and follows region redirects.
		endpoint_template="",
		default_region="us-east-1",
		addressing_style="virtual",
		supports_sha256_checksum=True,
		supports_object_lock=True,
		supports_sse_kms=True,
		quirks="Buckets created after 2023 block ACLs; Object Lock needs a bucket created with it.",
	),
	WASABI: ProviderPreset(
		name=WASABI,
		endpoint_template="https://s3.{region}.wasabisys.com",
		default_region="us-east-1",
		# Wasabi answers both styles; path style also works for bucket names with dots.
		addressing_style="path",
		# Not documented as supporting x-amz-checksum-*: fall back to metadata + optional read-back.
		supports_sha256_checksum=False,
		supports_object_lock=True,
		# Wasabi always encrypts at rest (AES256); there is no KMS.
		supports_sse_kms=False,
		quirks="A bucket only answers on its own region's endpoint; a wrong region gives 301/403.",
	),
	BACKBLAZE_B2: ProviderPreset(
		name=BACKBLAZE_B2,
		endpoint_template="https://s3.{region}.backblazeb2.com",
		# An account lives in one region such as us-west-004; it is shown on the bucket page.
		default_region="us-west-004",
		addressing_style="virtual",
		# B2 rejects x-amz-sdk-checksum-algorithm ("Unsupported header"); it checks SHA-1 itself.
		supports_sha256_checksum=False,
		supports_object_lock=True,
		# B2 offers SSE-B2 (AES256) and SSE-C, but no SSE-KMS.
		supports_sse_kms=False,
		quirks="The master application key cannot use the S3 API: create an application key.",
	),
	CLOUDFLARE_R2: ProviderPreset(
		name=CLOUDFLARE_R2,
		endpoint_template="https://{account_id}.r2.cloudflarestorage.com",
		# R2 has one region, "auto"; us-east-1 and empty are accepted as aliases.
		default_region="auto",
		addressing_style="path",
		# R2 stores SHA-256 checksums (composite for multipart uploads, like S3).
		supports_sha256_checksum=True,
		# R2 "bucket locks" are rules set on the bucket, not the S3 Object Lock API.
		supports_object_lock=False,
		# R2 always encrypts at rest; the x-amz-server-side-encryption header is not supported.
		supports_sse_kms=False,
		quirks="Storage classes are STANDARD and STANDARD_IA only; SSE headers are rejected.",
	),
	MINIO: ProviderPreset(
		name=MINIO,
		endpoint_template="https://{host}:9000",
		default_region="us-east-1",
		# MinIO behind a plain host name has no wildcard DNS for virtual-hosted buckets.
		addressing_style="path",
		supports_sha256_checksum=True,
		supports_object_lock=True,
		# Only when MinIO runs with a KMS (KES) configured.
		supports_sse_kms=True,
		quirks="Object Lock needs a bucket created with --with-lock.",
	),
	DIGITALOCEAN_SPACES: ProviderPreset(
		name=DIGITALOCEAN_SPACES,
		endpoint_template="https://{region}.digitaloceanspaces.com",
		default_region="nyc3",
		addressing_style="virtual",
		supports_sha256_checksum=False,
		supports_object_lock=False,
		supports_sse_kms=False,
		quirks="Spaces encrypts at rest itself and has a single storage class.",
	),
	OTHER_S3_COMPATIBLE: ProviderPreset(
		name=OTHER_S3_COMPATIBLE,
		endpoint_template="",
		default_region="us-east-1",
		addressing_style="auto",
		# Unknown servers: do not send headers they may reject; verify by metadata / read-back.
		supports_sha256_checksum=False,
		supports_object_lock=True,
		supports_sse_kms=True,
		quirks="Set Endpoint URL. Turn on additional checksums only if the server supports them.",
	),
}


def endpoint_for(provider: str, region: str = "", **placeholders: str) -> str:
	"""Return the provider's endpoint URL for a region (and account_id/host where needed)."""
	preset = PROVIDER_PRESETS.get(provider)
	if preset is None:
		raise InvalidPolicy(
			"provider", f"Provider {provider!r} is unknown. Pick one of {', '.join(PROVIDER_PRESETS)}."
		)
	values = {"region": region or preset.default_region, **placeholders}
	try:
		return preset.endpoint_template.format(**values)
	except KeyError as exc:
		raise InvalidPolicy(
			"endpoint_url", f"{provider} needs {exc.args[0]} to build its endpoint URL; enter Endpoint URL."
		) from exc


@dataclass
class S3Config:
	"""Where and how to store offsite copies; secrets never show in repr()."""

	provider: str = OTHER_S3_COMPATIBLE
	endpoint_url: str = ""
	region: str = ""
	bucket: str = ""
	prefix: str = ""
	addressing_style: str = "auto"
	access_key_id: str = ""
	secret_access_key: str = field(default="", repr=False)
	session_token: str = field(default="", repr=False)
	storage_class: str = ""
	server_side_encryption: str = SSE_NONE
	kms_key_id: str = ""
	object_lock_days: int = 0
	max_concurrency: int = DEFAULT_MAX_CONCURRENCY
	multipart_chunksize_mb: int = DEFAULT_MULTIPART_CHUNKSIZE_MB
	read_back_verify: bool = False
	connect_timeout: float = 10.0
	read_timeout: float = 60.0
	# Attempts per HTTP request (botocore "standard" retry mode) for transient errors.
	max_attempts: int = 5
	# Attempts of a whole file upload, on top of the per-request retries, with backoff between.
	upload_attempts: int = 3
	retry_backoff_seconds: float = 2.0
	# None: what the provider preset says. True/False overrides it (e.g. a MinIO behind "Other").
	additional_checksums: bool | None = None

	@property
	def preset(self) -> ProviderPreset:
		return PROVIDER_PRESETS.get(self.provider, PROVIDER_PRESETS[OTHER_S3_COMPATIBLE])

	@property
	def resolved_region(self) -> str:
		return self.region or self.preset.default_region

	@property
	def resolved_addressing_style(self) -> str:
		return self.preset.addressing_style if self.addressing_style == "auto" else self.addressing_style

	def resolved_endpoint_url(self) -> str:
		"""Return Endpoint URL, or the preset's endpoint for the region ("" lets boto3 pick AWS's)."""
		if self.endpoint_url:
			return self.endpoint_url.rstrip("/")
		return endpoint_for(self.provider, self.resolved_region)

	@property
	def uses_additional_checksums(self) -> bool:
		if self.additional_checksums is not None:
			return self.additional_checksums
		return self.preset.supports_sha256_checksum

	def validate(self) -> None:
		"""Raise InvalidPolicy naming the field for a setting no upload could work with."""
		if self.provider not in PROVIDER_PRESETS:
			raise InvalidPolicy(
				"provider",
				f"Provider {self.provider!r} is unknown. Pick one of {', '.join(PROVIDER_PRESETS)}.",
			)
		if not self.bucket.strip():
			raise InvalidPolicy("bucket", "Bucket is required. Enter the name of an existing bucket.")
		if self.provider != AMAZON_S3 and not self.resolved_endpoint_url():
			raise InvalidPolicy(
				"endpoint_url", f"Endpoint URL is required for {self.provider}, e.g. https://s3.example.com."
			)
		if self.endpoint_url and not self.endpoint_url.startswith(("https://", "http://")):
			raise InvalidPolicy(
				"endpoint_url", f"Endpoint URL {self.endpoint_url!r} must start with https:// (or http://)."
			)
		if self.addressing_style not in ADDRESSING_STYLES:
			raise InvalidPolicy(
				"addressing_style",
				f"Addressing Style {self.addressing_style!r} must be one of {', '.join(ADDRESSING_STYLES)}.",
			)
		if self.server_side_encryption not in SERVER_SIDE_ENCRYPTIONS:
			raise InvalidPolicy(
				"server_side_encryption",
				f"Server-Side Encryption {self.server_side_encryption!r} must be empty, AES256 or aws:kms.",
			)
		if self.server_side_encryption == SSE_KMS and not self.preset.supports_sse_kms:
			raise InvalidPolicy(
				"server_side_encryption",
				f"{self.provider} does not support SSE-KMS. Use AES256 or leave Server-Side Encryption empty.",
			)
		if self.kms_key_id and self.server_side_encryption != SSE_KMS:
			raise InvalidPolicy("kms_key_id", "KMS Key ID is only used with Server-Side Encryption aws:kms.")
		if self.object_lock_days < 0:
			raise InvalidPolicy(
				"object_lock_days", "Object Lock Days cannot be negative. Use 0 to turn it off."
			)
		if self.object_lock_days and not self.preset.supports_object_lock:
			raise InvalidPolicy(
				"object_lock_days",
				f"{self.provider} does not support S3 Object Lock. Set Object Lock Days to 0.",
			)
		if not 1 <= self.max_concurrency <= MAX_CONCURRENCY_LIMIT:
			raise InvalidPolicy(
				"max_concurrency", f"Max Concurrency must be between 1 and {MAX_CONCURRENCY_LIMIT}."
			)
		if not S3_MIN_PART_SIZE // MiB <= self.multipart_chunksize_mb <= S3_MAX_PART_SIZE // MiB:
			raise InvalidPolicy(
				"multipart_chunksize_mb",
				f"Multipart Chunk Size must be between {S3_MIN_PART_SIZE // MiB} and "
				f"{S3_MAX_PART_SIZE // MiB} MB (S3 part size limits).",
			)
		if self.connect_timeout <= 0 or self.read_timeout <= 0:
			raise InvalidPolicy("read_timeout", "Timeouts must be more than 0 seconds.")
		if self.max_attempts < 1 or self.upload_attempts < 1:
			raise InvalidPolicy("upload_attempts", "Attempts must be at least 1.")


def _check_base_folder(value: str, field_name: str, label: str) -> None:
	if "\x00" in value or any(part == ".." for part in value.split("/")):
		raise InvalidPolicy(field_name, f"{label} {value!r} must not contain '..' or NUL characters.")


@dataclass
class SFTPConfig:
	"""An SSH server reached over SFTP; the host key is pinned, secrets never show in repr()."""

	host: str = ""
	port: int = DEFAULT_SFTP_PORT
	username: str = ""
	# The folder on the server that holds `<prefix>/<site>/...`; relative to the login folder
	# unless it starts with "/".
	base_folder: str = ""
	prefix: str = ""
	password: str = field(default="", repr=False)
	# An OpenSSH private key (PEM text), or the path of a key file only the bench user can read.
	private_key: str = field(default="", repr=False)
	private_key_file: str = ""
	private_key_passphrase: str = field(default="", repr=False)
	# The accepted host key as "<type> <base64>" (as in known_hosts); empty until accepted.
	host_key: str = ""
	read_back_verify: bool = False
	connect_timeout: float = 15.0
	# Seconds without an answer before an operation is given up (a dropped link must not hang a run).
	read_timeout: float = 120.0
	upload_attempts: int = 2
	retry_backoff_seconds: float = 2.0

	def validate(self, *, require_host_key: bool = False) -> None:
		"""Raise InvalidPolicy naming the field for a setting no upload could work with."""
		host = self.host.strip()
		if not host:
			raise InvalidPolicy("sftp_host", "Host is required: the SSH server's name or IP address.")
		if any(character in host for character in " /@\x00") or host.startswith("-"):
			raise InvalidPolicy(
				"sftp_host",
				f"Host {host!r} is not a host name: enter only the name or IP, e.g. backup.example.com.",
			)
		if not 1 <= int(self.port or 0) <= 65535:
			raise InvalidPolicy("sftp_port", "Port must be between 1 and 65535 (SSH uses 22).")
		if not self.username.strip():
			raise InvalidPolicy(
				"sftp_username", "User is required: the SSH user that owns the backup folder."
			)
		_check_base_folder(self.base_folder, "base_folder", "Base Folder")
		if self.private_key_file and not os.path.isabs(self.private_key_file):
			raise InvalidPolicy(
				"private_key_file",
				"Private Key File must be an absolute path, e.g. /home/frappe/.ssh/backup_key.",
			)
		if self.private_key and self.private_key_file:
			raise InvalidPolicy(
				"private_key_file", "Use either Private Key or Private Key File, not both: clear one of them."
			)
		if self.host_key and len(self.host_key.split()) < 2:
			raise InvalidPolicy(
				"host_key", "Host Key must look like 'ssh-ed25519 AAAA...': use Test Connection to fetch it."
			)
		if require_host_key and not self.host_key:
			raise InvalidPolicy(
				"host_key", "The server's host key is not accepted yet: use Test Connection and accept it."
			)
		if self.connect_timeout <= 0 or self.read_timeout <= 0:
			raise InvalidPolicy("read_timeout", "Timeouts must be more than 0 seconds.")
		if self.upload_attempts < 1:
			raise InvalidPolicy("upload_attempts", "Attempts must be at least 1.")


@dataclass
class FolderConfig:
	"""A folder on this server, usually a mounted disk (NFS, USB, a storage box)."""

	path: str = ""
	prefix: str = ""
	# Refuse to write unless `path` is a mount point, so that a dropped mount never fills the
	# root disk with backups written into the empty mount folder.
	must_be_mount_point: bool = True
	read_back_verify: bool = True

	def validate(self) -> None:
		"""Raise InvalidPolicy naming the field for a setting no upload could work with."""
		if not self.path.strip():
			raise InvalidPolicy("folder_path", "Folder is required, e.g. /mnt/backups.")
		if not os.path.isabs(self.path):
			raise InvalidPolicy(
				"folder_path", f"Folder {self.path!r} must be an absolute path, e.g. /mnt/backups."
			)
		_check_base_folder(self.path, "folder_path", "Folder")
		if posixpath.normpath(self.path) == "/":
			raise InvalidPolicy("folder_path", "Folder cannot be / : use a folder on the mounted disk.")


StorageConfig = S3Config | SFTPConfig | FolderConfig


@dataclass
class CheckResult:
	name: str
	ok: bool
	message: str
	skipped: bool = False


@dataclass
class ConnectionReport:
	"""The checks of `check_connection`, in the order they ran."""

	checks: list[CheckResult] = field(default_factory=list)
	# SFTP: the key the server offered ("<type> <base64>") and its SHA256 fingerprint, so that the
	# user can compare and accept it. Public, never a secret.
	host_key: str = ""
	host_key_fingerprint: str = ""

	@property
	def ok(self) -> bool:
		return bool(self.checks) and all(check.ok for check in self.checks)

	@property
	def first_failure(self) -> CheckResult | None:
		return next((check for check in self.checks if not check.ok and not check.skipped), None)

	def check(self, name: str) -> CheckResult | None:
		return next((check for check in self.checks if check.name == name), None)

	def summary(self) -> str:
		"""Return one line per check, e.g. 'write: failed - Access denied ...'."""
		lines = []
		for check in self.checks:
			state = "ok" if check.ok else ("skipped" if check.skipped else "failed")
			lines.append(f"{check.name}: {state} - {check.message}")
		return "\n".join(lines)


@dataclass
class UploadResult:
	key: str
	size: int
	sha256: str
	duration_seconds: float
	verified_by: str


@dataclass
class ObjectInfo:
	key: str
	size: int
	last_modified: datetime | None = None
	etag: str = ""
	storage_class: str = ""
	# Our own sha256, stored as x-amz-meta-sha256 (only filled by head()).
	sha256: str = ""
	# The provider's SHA-256 checksum, base64; "<base64>-<parts>" for a multipart upload.
	checksum_sha256: str = ""
	locked_until: datetime | None = None


class StorageBackend(abc.ABC):
	"""An offsite object store. Keys are full keys inside the bucket."""

	@abc.abstractmethod
	def describe(self) -> str:
		"""Return where objects go, for logs and messages (never a secret)."""

	@abc.abstractmethod
	def check_connection(self) -> ConnectionReport:
		"""Run the bucket/write/read/delete checks with a probe object; never raise for their failures."""

	@abc.abstractmethod
	def upload_file(
		self,
		local_path: str,
		key: str,
		*,
		size: int,
		sha256: str,
		metadata: dict[str, str] | None = None,
		progress: Callable[[int], None] | None = None,
	) -> UploadResult:
		"""Upload a file, verify the stored object against size and sha256, retrying transient failures.

		`progress`, if given, is called with the number of bytes sent since its last call (negative
		when a failed attempt starts over), from any thread.
		"""

	@abc.abstractmethod
	def upload_bytes(self, data: bytes, key: str, *, metadata: dict[str, str] | None = None) -> UploadResult:
		"""Upload a small object (the manifest) and verify it."""

	def upload_content(
		self, data: bytes, key: str, *, sha256: str, metadata: dict[str, str] | None = None
	) -> UploadResult:
		"""Upload content-addressed bytes whose sha256 the caller already knows, and verify them.

		Raises LocalFileChanged if `data` does not hash to `sha256`. Backends that can make the
		server check the bytes against `sha256` as it stores them do so and skip a second look.
		"""
		actual = hashlib.sha256(data).hexdigest()
		if actual != sha256:
			raise LocalFileChanged(
				f"The bytes read for {key} have sha256 {actual}, not {sha256}: the local archive "
				"changed while it was uploaded. Take a new backup."
			)
		return self.upload_bytes(data, key, metadata=metadata)

	@abc.abstractmethod
	def download_file(self, key: str, local_path: str) -> None:
		"""Download an object; `local_path` only appears once the whole object arrived."""

	@abc.abstractmethod
	def read_bytes(self, key: str) -> bytes:
		"""Return a small object's bytes; raise StorageError if it is missing."""

	@abc.abstractmethod
	def head(self, key: str) -> ObjectInfo | None:
		"""Return the object's size, checksums and lock, or None if there is no such object."""

	@abc.abstractmethod
	def list_objects(self, prefix: str) -> list[ObjectInfo]:
		"""Return every object under `prefix`; raise StorageError unless the listing is complete."""

	@abc.abstractmethod
	def delete_objects(self, keys: list[str]) -> None:
		"""Delete the objects; raise StorageError if any of them could not be deleted."""

	@abc.abstractmethod
	def verify_object(self, key: str, size: int, sha256: str, read_back: bool = False) -> str:
		"""Raise ChecksumMismatch/StorageError unless the object matches; return how it was verified."""

	@abc.abstractmethod
	def abort_incomplete_uploads(self, prefix: str, *, initiated_before: datetime | None = None) -> int:
		"""Abort unfinished multipart uploads under `prefix` (so they stop billing); return the count."""

	@abc.abstractmethod
	def object_locked_until(self, key: str) -> datetime | None:
		"""Return the Object Lock retain-until date (UTC) of the object, or None if it is not locked."""

	def close(self) -> None:
		"""Release connections (SFTP); the backend opens a new one if used again."""
		return None


def fetch_host_key(config: SFTPConfig) -> tuple[str, str]:
	"""Return the host key an SFTP server offers ('<type> <base64>') and its SHA256 fingerprint."""
	from backup_manager.core.storage.sftp import fingerprint, key_line, scan_host_key

	key = scan_host_key(config)
	return key_line(key), fingerprint(key)


def get_backend(config: StorageConfig) -> StorageBackend:
	"""Return the backend for a storage configuration."""
	if isinstance(config, S3Config):
		# Imported here so that importing core never loads boto3.
		from backup_manager.core.storage.s3 import S3Backend

		return S3Backend(config)
	if isinstance(config, SFTPConfig):
		# Imported here so that importing core never loads paramiko.
		from backup_manager.core.storage.sftp import SFTPBackend

		return SFTPBackend(config)
	if isinstance(config, FolderConfig):
		from backup_manager.core.storage.folder import FolderBackend

		return FolderBackend(config)
	raise TypeError(f"No storage backend for {type(config).__name__}")
