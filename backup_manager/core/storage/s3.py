"""S3-compatible offsite storage through boto3; the only module of Backup Manager importing boto3.

How an upload is shown to be right, strongest first:
- the provider supports S3 additional checksums: we ask for SHA-256 (ChecksumAlgorithm). A
  single-part object then carries the SHA-256 of its bytes, compared with the manifest. A
  multipart object carries a composite checksum (SHA-256 of the parts' SHA-256s, "-<parts>"),
  compared with the same composite computed from the local file, whose whole-file sha256 must
  match the manifest. The provider itself rejects a part whose bytes do not match its checksum.
- otherwise: the size, and our sha256 stored as x-amz-meta-sha256 (proves the object is the
  one we wrote, not its bytes; SigV4 payload signing or TLS protected them in transit).
- read-back (policy option, or when an object carries neither): stream the object and hash it.
"""

import base64
import binascii
import hashlib
import inspect
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import (
	BotoCoreError,
	ClientError,
	ConnectionClosedError,
	EndpointConnectionError,
	NoCredentialsError,
	ParamValidationError,
	PartialCredentialsError,
	ReadTimeoutError,
	SSLError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from backup_manager.core.errors import (
	ArtifactError,
	BackupManagerError,
	ChecksumMismatch,
	LocalFileChanged,
	StorageError,
)
from backup_manager.core.private_files import open_new_private_file, remove_quietly
from backup_manager.core.storage import (
	AMAZON_S3,
	S3_MAX_DELETE_KEYS,
	S3_MAX_OBJECT_SIZE,
	S3_MAX_PART_SIZE,
	S3_MAX_PARTS,
	S3_MIN_PART_SIZE,
	SSE_KMS,
	VERIFIED_BY_CHECKSUM,
	VERIFIED_BY_METADATA,
	VERIFIED_BY_PART_CHECKSUMS,
	VERIFIED_BY_READ_BACK,
	CheckResult,
	ConnectionReport,
	MiB,
	ObjectInfo,
	S3Config,
	StorageBackend,
	UploadResult,
)
from backup_manager.core.storage.s3_direct import DirectRequests, FallBack

logger = logging.getLogger(__name__)

# GOVERNANCE, not COMPLIANCE: ordinary deletes (our retention, a leaked app key, a mistaken
# script) are refused until the date, but an administrator holding s3:BypassGovernanceRetention
# can still lift it. COMPLIANCE cannot be shortened by anyone, not even the account root, so a
# typo in Object Lock Days (3650 instead of 365) would become years of unremovable storage bills.
OBJECT_LOCK_MODE = "GOVERNANCE"
# A legal hold has no end date; it lasts until someone removes it.
LEGAL_HOLD_UNTIL = datetime.max.replace(tzinfo=timezone.utc)

# Stored as x-amz-meta-sha256 (boto3 adds the x-amz-meta- prefix).
METADATA_SHA256 = "sha256"
CHECKSUM_ALGORITHM = "SHA256"
READ_CHUNK_SIZE = 1024 * 1024
MIN_REDACTED_LENGTH = 4
PROBE_NAME = ".backup-manager-connection-check"
# Archive classes cannot be read back straight away, so the probe object is written without them.
ARCHIVE_STORAGE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")

CHECK_BUCKET = "bucket exists"
CHECK_OBJECT_LOCK = "object lock"
CHECK_WRITE = "write"
CHECK_READ = "read"
CHECK_DELETE = "delete"

# Error codes worth another attempt of the whole upload (botocore already retried the request).
TRANSIENT_ERROR_CODES = {
	"BadDigest",
	"XAmzContentSHA256Mismatch",
	"RequestTimeout",
	"RequestTimeoutException",
	"SlowDown",
	"ServiceUnavailable",
	"InternalError",
	"OperationAborted",
}
# DeleteObjects needs a Content-MD5 (botocore < 1.36) or a CRC32 checksum (botocore >= 1.36);
# some S3-compatible servers accept only one of them and answer with these codes.
BULK_DELETE_UNSUPPORTED_CODES = {"MissingContentMD5", "NotImplemented", "InvalidArgument", "InvalidRequest"}

Result = TypeVar("Result")


class RemoteChecksumMismatch(ChecksumMismatch):
	"""The stored object differs from what was sent; worth another attempt."""


class TransientStorageError(StorageError):
	"""A failure another attempt may fix."""


@dataclass
class LocalDigest:
	sha256: str
	# SHA-256 digests of each multipart part, in order; empty for a single-part upload.
	part_digests: list[bytes] = field(default_factory=list)


def choose_part_size(size: int, requested: int) -> int:
	"""Return a part size of at least `requested` that keeps `size` within S3's part limits."""
	if size > S3_MAX_OBJECT_SIZE:
		raise StorageError(
			f"The file is {size} bytes; S3 objects can be at most {S3_MAX_OBJECT_SIZE} bytes (5 TiB)."
		)
	part_size = min(max(requested, S3_MIN_PART_SIZE), S3_MAX_PART_SIZE)
	# Doubling is what s3transfer's ChunksizeAdjuster does, so the part boundaries we hash locally
	# are exactly the ones the transfer manager sends (it leaves a size within limits unchanged).
	while math.ceil(size / part_size) > S3_MAX_PARTS:
		part_size *= 2
	return part_size


def hash_local_file(path: str, part_size: int | None = None) -> LocalDigest:
	"""Return the file's sha256 and, with `part_size`, the SHA-256 of each part, in one read."""
	whole = hashlib.sha256()
	parts: list[bytes] = []
	with open(path, "rb") as handle:
		if part_size is None:
			while chunk := handle.read(READ_CHUNK_SIZE):
				whole.update(chunk)
			return LocalDigest(whole.hexdigest())
		while True:
			part = hashlib.sha256()
			remaining = part_size
			while remaining:
				chunk = handle.read(min(READ_CHUNK_SIZE, remaining))
				if not chunk:
					break
				whole.update(chunk)
				part.update(chunk)
				remaining -= len(chunk)
			if remaining == part_size:
				break
			parts.append(part.digest())
			if remaining:
				break
	return LocalDigest(whole.hexdigest(), parts)


def composite_checksum(part_digests: list[bytes]) -> str:
	"""Return the S3 composite SHA-256 of a multipart upload: base64(sha256(digests)) + '-<parts>'."""
	combined = hashlib.sha256(b"".join(part_digests)).digest()
	return f"{base64.b64encode(combined).decode()}-{len(part_digests)}"


def sha256_hex_from_checksum(checksum: str) -> str:
	"""Turn a full-object ChecksumSHA256 (base64) into hex; '' if it is not one."""
	try:
		raw = base64.b64decode(checksum, validate=True)
	except (binascii.Error, ValueError):
		return ""
	return raw.hex() if len(raw) == 32 else ""


def _botocore_checksum_options() -> dict:
	# botocore 1.36 started sending CRC32 checksums on every upload by default; many
	# S3-compatible servers (B2, older MinIO, Ceph) reject them. "when_required" restores the
	# 1.34 behaviour Frappe v15 pins; we ask for SHA-256 ourselves where the provider supports it.
	if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
		return {
			"request_checksum_calculation": "when_required",
			"response_checksum_validation": "when_required",
		}
	return {}


def _transfer_config(part_size: int, max_concurrency: int) -> TransferConfig:
	options = {
		# Files up to one part go in a single PUT; larger ones in parts of exactly part_size.
		"multipart_threshold": part_size + 1,
		"multipart_chunksize": part_size,
		"max_concurrency": max_concurrency,
		"use_threads": True,
	}
	# Newer boto3 may pick the CRT transfer client, whose part sizes we could not predict.
	if "preferred_transfer_client" in inspect.signature(TransferConfig.__init__).parameters:
		options["preferred_transfer_client"] = "classic"
	return TransferConfig(**options)


def _as_utc(moment: datetime | None) -> datetime | None:
	if moment is None:
		return None
	if moment.tzinfo is None:
		return moment.replace(tzinfo=timezone.utc)
	return moment.astimezone(timezone.utc)


def _error_parts(exc: ClientError) -> tuple[str, int, str, dict]:
	response = exc.response or {}
	error = response.get("Error", {})
	metadata = response.get("ResponseMetadata", {})
	code = str(error.get("Code", ""))
	status = int(metadata.get("HTTPStatusCode") or 0)
	message = str(error.get("Message", ""))
	headers = {str(name).lower(): value for name, value in (metadata.get("HTTPHeaders") or {}).items()}
	return code, status, message, {**headers, "_region": error.get("Region", "")}


def _underlying(exc: BaseException) -> BaseException:
	# boto3's upload_file turns a ClientError into S3UploadFailedError inside `except`, so the
	# original (with its code and status) is the context.
	if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, (ClientError, BotoCoreError)):
		return exc.__context__
	return exc


def is_transient(exc: BaseException) -> bool:
	"""True for failures another attempt may fix: network trouble, 5xx, throttling, bad digests."""
	exc = _underlying(exc)
	if isinstance(exc, (RemoteChecksumMismatch, TransientStorageError)):
		return True
	if isinstance(exc, ClientError):
		code, status, _message, _headers = _error_parts(exc)
		return status >= 500 or status in (408, 429) or code in TRANSIENT_ERROR_CODES
	if isinstance(exc, (NoCredentialsError, PartialCredentialsError, ParamValidationError)):
		return False
	return isinstance(exc, BotoCoreError)


_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
	# One session for every backend: a new session loads the S3 service model again (~0.15 s).
	# Sessions are not thread safe, so clients are only created under _SESSION_LOCK; the clients
	# themselves are thread safe. Keys are passed per client, never stored on the session.
	global _SESSION
	if _SESSION is None:
		_SESSION = boto3.session.Session()
	return _SESSION


class S3Backend(StorageBackend):
	"""An S3 bucket reached through boto3's client and managed transfers."""

	def __init__(self, config: S3Config):
		config.validate()
		self.config = config
		self._client = None
		self._client_lock = threading.Lock()
		# Signed single requests for small objects (core.storage.s3_direct); False once refused.
		self._direct: DirectRequests | None | bool = None

	# --- client and messages -------------------------------------------------------------

	@property
	def client(self):
		with self._client_lock:
			if self._client is None:
				self._client = self._build_client()
			return self._client

	def _build_client(self):
		config = self.config
		options = {
			"connect_timeout": config.connect_timeout,
			"read_timeout": config.read_timeout,
			"retries": {"mode": "standard", "max_attempts": config.max_attempts},
			# Each artifact upload runs max_concurrency part uploads; several artifacts run at once.
			"max_pool_connections": max(10, config.max_concurrency * 4),
			"signature_version": "s3v4",
			"s3": {"addressing_style": config.resolved_addressing_style},
			**_botocore_checksum_options(),
		}
		with _SESSION_LOCK:
			return _shared_session().client(
				"s3",
				endpoint_url=config.resolved_endpoint_url() or None,
				region_name=config.resolved_region or None,
				# Empty keys fall back to boto3's usual chain (environment, instance role).
				aws_access_key_id=config.access_key_id or None,
				aws_secret_access_key=config.secret_access_key or None,
				aws_session_token=config.session_token or None,
				config=Config(**options),
			)

	def _direct_requests(self) -> DirectRequests | None:
		"""The direct path for single-object PUTs and GETs, or None where it cannot serve."""
		client = self.client
		with self._client_lock:
			if self._direct is None:
				try:
					self._direct = DirectRequests(
						client, self.config.bucket, self._credentials(), max_attempts=self.config.max_attempts
					)
				except (FallBack, BotoCoreError, ValueError) as exc:
					logger.info("Single-object requests to %s go through boto3: %s", self.describe(), exc)
					self._direct = False
			return self._direct or None

	def _disable_direct(self, reason: BaseException) -> None:
		logger.info("Single-object requests to %s go through boto3 from now on: %s", self.describe(), reason)
		with self._client_lock:
			self._direct = False

	def _credentials(self):
		config = self.config
		if config.access_key_id and config.secret_access_key:
			return Credentials(config.access_key_id, config.secret_access_key, config.session_token or None)
		with _SESSION_LOCK:
			return _shared_session().get_credentials()  # the usual chain, as the client uses

	def describe(self) -> str:
		prefix = self.config.prefix.strip("/")
		location = f"s3://{self.config.bucket}/{prefix + '/' if prefix else ''}"
		return f"{location} at {self._endpoint_label()}"

	def _endpoint_label(self) -> str:
		endpoint = self.config.resolved_endpoint_url()
		if endpoint:
			return endpoint
		return f"{AMAZON_S3} ({self.config.resolved_region})"

	def _redact(self, text: str) -> str:
		"""Remove the secret key and session token from a message, whatever produced it."""
		for secret in (self.config.secret_access_key, self.config.session_token):
			# A secret of a few characters would blank out ordinary words; real keys are 40+.
			if secret and len(secret) >= MIN_REDACTED_LENGTH:
				text = text.replace(secret, "***")
		return text

	def explain(self, exc: BaseException, action: str, key: str = "") -> str:
		"""Return a plain-words reason for a boto3/botocore failure, without any secret."""
		return self._redact(self._explain(_underlying(exc), action, key))

	def _explain(self, exc: BaseException, action: str, key: str) -> str:
		bucket = self.config.bucket
		endpoint = self._endpoint_label()
		where = f"{key} in bucket {bucket}" if key else f"bucket {bucket}"
		if isinstance(exc, ClientError):
			return self._explain_client_error(exc, action, key, where)
		if isinstance(exc, SSLError):
			return (
				f"TLS error talking to {endpoint}: {exc}. Check that Endpoint URL uses the right scheme "
				"(https:// or http://) and that the server's certificate is valid."
			)
		if isinstance(exc, ReadTimeoutError):
			return (
				f"{endpoint} did not answer within {self.config.read_timeout:g} s while trying to {action} "
				f"{where}. The connection is slow or the server is overloaded; try again later."
			)
		if isinstance(exc, (BotocoreConnectionError, ConnectionClosedError, EndpointConnectionError)):
			return (
				f"Endpoint unreachable: could not connect to {endpoint} ({type(exc).__name__}). Check Endpoint "
				"URL and Region, and that this server can reach it (DNS, firewall, proxy)."
			)
		if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
			return "No credentials: set Access Key ID and Secret Access Key."
		if isinstance(exc, BotoCoreError):
			return f"Could not {action} {where}: {exc}"
		return f"Could not {action} {where}: {type(exc).__name__}: {exc}"

	def _explain_client_error(self, exc: ClientError, action: str, key: str, where: str) -> str:
		config = self.config
		bucket = config.bucket
		code, status, message, headers = _error_parts(exc)
		detail = f"{code or status}" + (f": {message}" if message else "")
		region = headers.get("x-amz-bucket-region") or headers.get("_region") or ""
		if not region:
			found = re.search(r"expecting '([a-z0-9-]+)'", message)
			region = found.group(1) if found else ""
		if code == "NoSuchBucket" or (status == 404 and action == "check bucket"):
			return (
				f"Bucket {bucket!r} does not exist at {self._endpoint_label()} (404 No Such Bucket). "
				"Check Bucket, Region and Endpoint URL."
			)
		if code in ("NoSuchKey", "NotFound", "404") or status == 404:
			return f"{key or 'The object'} does not exist in bucket {bucket} (404)."
		if (
			status == 301
			or code in ("PermanentRedirect", "IllegalLocationConstraintException", "301")
			or (code == "AuthorizationHeaderMalformed" and region)
		):
			actual = region or "another region"
			return (
				f"Wrong region: bucket {bucket!r} is in {actual}, not {config.resolved_region}. "
				f"Set Region to {actual} and use that region's Endpoint URL."
			)
		if code == "InvalidAccessKeyId":
			return (
				"Access denied (403): the provider does not know this Access Key ID. Check Access Key ID, "
				"or create a new key."
			)
		if code == "SignatureDoesNotMatch":
			return (
				"Access denied (403): the Secret Access Key does not match the Access Key ID. "
				"Enter the Secret Access Key again."
			)
		if (
			code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem")
			or status == 403
		):
			if code == "403" and action == "check bucket":
				# HeadBucket answers without a body, so a bad key and a missing permission look alike.
				return (
					f"Access denied (403) to bucket {bucket}: the Access Key ID or Secret Access Key is wrong, "
					"or the key may not use this bucket. Check both keys and the key's bucket permissions."
				)
			return (
				f"Access denied (403) to {action} {where}: the key is not allowed to do this ({detail}). "
				"Give the key that permission, or check Access Key ID and Secret Access Key."
			)
		if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
			return f"The provider received other bytes than were sent for {where} ({code}); it is retried."
		if "object lock" in message.lower() or code == "ObjectLockConfigurationNotFoundError":
			return (
				f"Bucket {bucket} cannot take Object Lock ({detail}). Use a bucket created with Object Lock "
				"enabled, or set Object Lock Days to 0."
			)
		if "checksum" in message.lower() or "unsupported header" in message.lower():
			return (
				f"{config.provider} rejected the S3 checksum header for {where} ({detail}). "
				"Turn additional checksums off for this storage."
			)
		if code == "InvalidStorageClass":
			return (
				f"{config.provider} does not offer Storage Class {config.storage_class!r}. Pick another one."
			)
		if code.startswith("KMS") or (config.server_side_encryption == SSE_KMS and "kms" in message.lower()):
			return (
				f"The KMS key could not be used for {where} ({detail}). Check KMS Key ID and its key policy."
			)
		if status >= 500 or code in TRANSIENT_ERROR_CODES:
			return f"{config.provider} failed to {action} {where} ({detail}, HTTP {status}); this is usually temporary."
		return f"{config.provider} refused to {action} {where} ({detail}, HTTP {status})."

	def _storage_error(self, exc: BaseException, action: str, key: str = "") -> StorageError:
		return StorageError(self.explain(exc, action, key))

	# --- connection check ----------------------------------------------------------------

	def check_connection(self) -> ConnectionReport:
		report = ConnectionReport()
		prefix = self.config.prefix.strip("/")
		probe_key = f"{prefix + '/' if prefix else ''}{PROBE_NAME}-{uuid.uuid4().hex}"
		probe_body = f"Backup Manager connection check {uuid.uuid4().hex}\n".encode()

		if not self._run_check(report, CHECK_BUCKET, "check bucket", lambda: self._check_bucket(probe_key)):
			_skip_checks(report, [CHECK_WRITE, CHECK_READ, CHECK_DELETE], CHECK_BUCKET)
			return report
		if self.config.object_lock_days:
			self._run_check(
				report, CHECK_OBJECT_LOCK, "read the Object Lock setting of", self._check_object_lock
			)
		write = lambda: self._write_probe(probe_key, probe_body)  # noqa: E731
		if not self._run_check(report, CHECK_WRITE, "write", write, probe_key):
			_skip_checks(report, [CHECK_READ, CHECK_DELETE], CHECK_WRITE)
			return report
		self._run_check(
			report, CHECK_READ, "read", lambda: self._read_probe(probe_key, probe_body), probe_key
		)
		# Even when the read failed: the probe must not stay behind.
		self._run_check(report, CHECK_DELETE, "delete", lambda: self._delete_probe(probe_key), probe_key)
		return report

	def _run_check(
		self, report: ConnectionReport, name: str, action: str, step: Callable[[], str], key: str = ""
	) -> bool:
		"""Run one connection check and record it; every failure becomes a plain message."""
		try:
			report.checks.append(CheckResult(name, True, step()))
			return True
		except BackupManagerError as exc:
			report.checks.append(CheckResult(name, False, self._redact(str(exc))))
		except Exception as exc:
			report.checks.append(CheckResult(name, False, self.explain(exc, action, key)))
		return False

	def _check_bucket(self, probe_key: str) -> str:
		bucket = self.config.bucket
		try:
			response = self.client.head_bucket(Bucket=bucket)
		except ClientError as exc:
			if _error_parts(exc)[0] != "403":
				raise
			# HeadBucket's 403 has no body; a one-key listing names the cause
			# (InvalidAccessKeyId, SignatureDoesNotMatch or AccessDenied).
			self.client.list_objects_v2(Bucket=bucket, MaxKeys=1, Prefix=probe_key)
			raise
		headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
		actual = headers.get("x-amz-bucket-region", "")
		if actual and actual != self.config.resolved_region and self.config.provider == AMAZON_S3:
			return f"bucket {bucket} exists in region {actual}; set Region to {actual} to avoid redirects"
		return f"bucket {bucket} exists and the key may use it"

	def _check_object_lock(self) -> str:
		bucket = self.config.bucket
		not_enabled = StorageError(
			f"Bucket {bucket} does not have Object Lock enabled. Use a bucket created with Object Lock, "
			"or set Object Lock Days to 0."
		)
		try:
			response = self.client.get_object_lock_configuration(Bucket=bucket)
		except ClientError as exc:
			code, status, _message, _headers = _error_parts(exc)
			# A bucket without Object Lock answers 404 ObjectLockConfigurationNotFoundError.
			if status == 404 or "ObjectLockConfiguration" in code:
				raise not_enabled from exc
			raise
		if response.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
			raise not_enabled
		return f"bucket {bucket} has Object Lock enabled ({OBJECT_LOCK_MODE} mode is used)"

	def _write_probe(self, probe_key: str, probe_body: bytes) -> str:
		arguments = self._put_arguments(hashlib.sha256(probe_body).hexdigest(), None, lock=False)
		if arguments.get("StorageClass") in ARCHIVE_STORAGE_CLASSES:
			del arguments["StorageClass"]
		self.client.put_object(Bucket=self.config.bucket, Key=probe_key, Body=probe_body, **arguments)
		return f"wrote {probe_key}"

	def _read_probe(self, probe_key: str, probe_body: bytes) -> str:
		data = self.client.get_object(Bucket=self.config.bucket, Key=probe_key)["Body"].read()
		if data != probe_body:
			raise ChecksumMismatch(f"{probe_key} read back different bytes than were written.")
		return f"read {probe_key} back unchanged"

	def _delete_probe(self, probe_key: str) -> str:
		self.client.delete_object(Bucket=self.config.bucket, Key=probe_key)
		return f"deleted {probe_key}"

	# --- uploads -------------------------------------------------------------------------

	def _put_arguments(self, sha256: str, metadata: dict[str, str] | None, *, lock: bool = True) -> dict:
		config = self.config
		stored_metadata = {str(name).lower(): str(value) for name, value in (metadata or {}).items()}
		stored_metadata[METADATA_SHA256] = sha256
		arguments: dict = {"Metadata": stored_metadata}
		if config.uses_additional_checksums:
			arguments["ChecksumAlgorithm"] = CHECKSUM_ALGORITHM
		if config.storage_class:
			arguments["StorageClass"] = config.storage_class
		if config.server_side_encryption:
			arguments["ServerSideEncryption"] = config.server_side_encryption
			if config.server_side_encryption == SSE_KMS and config.kms_key_id:
				arguments["SSEKMSKeyId"] = config.kms_key_id
		if lock and config.object_lock_days:
			arguments["ObjectLockMode"] = OBJECT_LOCK_MODE
			arguments["ObjectLockRetainUntilDate"] = datetime.now(timezone.utc) + timedelta(
				days=config.object_lock_days
			)
		return arguments

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
		if not os.path.isfile(local_path):
			raise ArtifactError(f"{local_path} is missing, so it cannot be uploaded to {key}.")
		actual_size = os.path.getsize(local_path)
		if actual_size != size:
			raise LocalFileChanged(
				f"{local_path} is {actual_size} bytes but the backup recorded {size}; take a new backup."
			)
		part_size = choose_part_size(size, self.config.multipart_chunksize_mb * MiB)
		multipart = size > part_size
		transfer = _transfer_config(part_size, self.config.max_concurrency)
		started = time.monotonic()
		# The local hash runs beside the upload (hashlib releases the GIL), so it costs no wall time.
		with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-manager-hash") as hasher:
			local_future = hasher.submit(hash_local_file, local_path, part_size if multipart else None)

			sent = [0]

			def count_sent(byte_count: int) -> None:
				sent[0] += byte_count
				progress(byte_count)

			def attempt() -> str:
				if progress and sent[0]:
					# A retry sends the whole file again: take back what the failed attempt counted.
					progress(-sent[0])
					sent[0] = 0
				self.client.upload_file(
					local_path,
					self.config.bucket,
					key,
					ExtraArgs=self._put_arguments(sha256, metadata),
					Config=transfer,
					Callback=count_sent if progress else None,
				)
				local = local_future.result()
				if local.sha256 != sha256:
					raise LocalFileChanged(
						f"{local_path} has sha256 {local.sha256} but the backup recorded {sha256}; "
						f"the uploaded {key} is not a valid copy. Take a new backup."
					)
				return self._verify_stored(key, size, sha256, local, self.config.read_back_verify)

			verified_by = self._run_attempts(attempt, key)
		duration = time.monotonic() - started
		logger.info("Uploaded %s (%d bytes) in %.1f s, verified by %s", key, size, duration, verified_by)
		return UploadResult(
			key=key, size=size, sha256=sha256, duration_seconds=duration, verified_by=verified_by
		)

	def upload_bytes(self, data: bytes, key: str, *, metadata: dict[str, str] | None = None) -> UploadResult:
		return self._put_data(data, key, hashlib.sha256(data).hexdigest(), metadata, server_checks=False)

	def upload_content(
		self, data: bytes, key: str, *, sha256: str, metadata: dict[str, str] | None = None
	) -> UploadResult:
		"""Send `sha256` as the object's SHA-256 checksum: the provider refuses bytes that differ.

		A provider that confirms the checksum in its answer has checked the stored bytes, so no
		HEAD follows (the many small contents of a deduplicated archive would pay one each).
		"""
		if not self.config.uses_additional_checksums or self.config.read_back_verify:
			return super().upload_content(data, key, sha256=sha256, metadata=metadata)
		return self._put_data(data, key, sha256, metadata, server_checks=True)

	def _put_data(
		self, data: bytes, key: str, sha256: str, metadata: dict[str, str] | None, *, server_checks: bool
	) -> UploadResult:
		"""Put bytes in one request and verify them, retrying transient failures.

		With `server_checks`, `sha256` goes as the object's checksum, so the provider checks the
		bytes as it stores them; otherwise botocore computes the checksum (where supported).
		"""
		arguments = self._put_arguments(sha256, metadata)
		checksum = ""
		if server_checks:
			checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
			arguments.pop("ChecksumAlgorithm", None)
			arguments["ChecksumSHA256"] = checksum
		started = time.monotonic()

		def attempt() -> str:
			try:
				confirmed = self._put_object(key, data, sha256, arguments, direct=bool(checksum))
			except ClientError as exc:
				if checksum and _error_parts(exc)[0] in ("BadDigest", "XAmzContentSHA256Mismatch"):
					raise LocalFileChanged(
						f"The bytes read for {key} do not have sha256 {sha256}: the local archive "
						"changed while it was uploaded. Take a new backup."
					) from exc
				raise
			if checksum and confirmed == checksum:
				return VERIFIED_BY_CHECKSUM
			return self._verify_stored(
				key, len(data), sha256, LocalDigest(sha256), self.config.read_back_verify
			)

		verified_by = self._run_attempts(attempt, key)
		return UploadResult(
			key=key,
			size=len(data),
			sha256=sha256,
			duration_seconds=time.monotonic() - started,
			verified_by=verified_by,
		)

	def _put_object(self, key: str, data: bytes, sha256: str, arguments: dict, *, direct: bool) -> str:
		"""PUT one object; return the SHA-256 checksum the server confirmed ("" for none).

		`direct`: `sha256` is the checksum the server is asked to check, so the request can go
		on the direct path (signed with that payload hash) instead of through the client.
		"""
		requests = self._direct_requests() if direct else None
		if requests is not None:
			try:
				return requests.put(key, data, sha256=sha256, arguments=arguments).get(
					"x-amz-checksum-sha256", ""
				)
			except FallBack as exc:
				self._disable_direct(exc)
		response = self.client.put_object(Bucket=self.config.bucket, Key=key, Body=data, **arguments)
		return response.get("ChecksumSHA256", "") or ""

	def _run_attempts(self, attempt: Callable[[], Result], key: str) -> Result:
		"""Run a whole upload up to upload_attempts times, aborting its multipart leftovers each time."""
		attempts = self.config.upload_attempts
		for number in range(1, attempts + 1):
			try:
				result = attempt()
			except LocalFileChanged:
				raise
			except Exception as exc:
				# A failed multipart upload keeps its parts (and bills for them) until aborted.
				self._abort_uploads_for_key(key)
				if isinstance(exc, ChecksumMismatch):
					error: Exception = exc
				elif isinstance(exc, StorageError):
					error = exc
				elif isinstance(exc, (ClientError, BotoCoreError, S3UploadFailedError)):
					error = self._storage_error(exc, "upload", key)
				elif isinstance(exc, OSError):
					raise ArtifactError(f"Could not read the file for {key}: {exc}") from exc
				else:
					raise
				if number == attempts or not is_transient(exc):
					if number > 1:
						error.args = (f"{error} (after {number} attempts)",)
					raise error from exc
				delay = self.config.retry_backoff_seconds * 2 ** (number - 1)
				logger.warning(
					"Upload of %s failed (attempt %d of %d): %s. Retrying in %.1f s.",
					key,
					number,
					attempts,
					error,
					delay,
				)
				time.sleep(delay)
			else:
				if number > 1:
					# An abort that failed while the server was away can succeed now.
					self._abort_uploads_for_key(key)
				return result
		raise AssertionError("unreachable")  # the loop always returns or raises

	def _abort_uploads_for_key(self, key: str) -> int:
		"""Abort every unfinished multipart upload of exactly `key`; never raise."""
		# The key holds a unique backup id, so an unfinished upload of it can only be ours.
		aborted = 0
		try:
			paginator = self.client.get_paginator("list_multipart_uploads")
			for page in paginator.paginate(Bucket=self.config.bucket, Prefix=key):
				for upload in page.get("Uploads", []):
					if upload.get("Key") != key:
						continue
					self.client.abort_multipart_upload(
						Bucket=self.config.bucket, Key=key, UploadId=upload["UploadId"]
					)
					aborted += 1
		except Exception as exc:
			logger.warning(
				"Could not abort unfinished uploads of %s: %s",
				key,
				self.explain(exc, "abort uploads of", key),
			)
		if aborted:
			logger.info("Aborted %d unfinished multipart upload(s) of %s", aborted, key)
		return aborted

	def abort_incomplete_uploads(self, prefix: str, *, initiated_before: datetime | None = None) -> int:
		cutoff = _as_utc(initiated_before)
		aborted = 0
		try:
			paginator = self.client.get_paginator("list_multipart_uploads")
			for page in paginator.paginate(Bucket=self.config.bucket, Prefix=prefix):
				for upload in page.get("Uploads", []):
					initiated = _as_utc(upload.get("Initiated"))
					if cutoff and initiated and initiated >= cutoff:
						continue
					self.client.abort_multipart_upload(
						Bucket=self.config.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
					)
					aborted += 1
		except (ClientError, BotoCoreError) as exc:
			raise self._storage_error(exc, "abort unfinished uploads under", prefix) from exc
		return aborted

	# --- verification --------------------------------------------------------------------

	def _verify_stored(self, key: str, size: int, sha256: str, local: LocalDigest, read_back: bool) -> str:
		info = self.head(key)
		if info is None:
			raise TransientStorageError(
				f"{key} is missing from bucket {self.config.bucket} right after its upload."
			)
		methods = self._compare(info, size, sha256, local, RemoteChecksumMismatch)
		if read_back or not methods:
			self._read_back(key, size, sha256, RemoteChecksumMismatch)
			methods.append(VERIFIED_BY_READ_BACK)
		return " + ".join(methods)

	def verify_object(self, key: str, size: int, sha256: str, read_back: bool = False) -> str:
		info = self.head(key)
		if info is None:
			raise StorageError(f"{key} is missing from bucket {self.config.bucket}.")
		methods = self._compare(info, size, sha256, None, ChecksumMismatch)
		# Nothing on the object vouches for its bytes (e.g. it was overwritten): hash them.
		if read_back or not methods:
			self._read_back(key, size, sha256, ChecksumMismatch)
			methods.append(VERIFIED_BY_READ_BACK)
		return " + ".join(methods)

	def _compare(
		self,
		info: ObjectInfo,
		size: int,
		sha256: str,
		local: LocalDigest | None,
		mismatch: type[ChecksumMismatch],
	) -> list[str]:
		"""Compare what the provider reports with what we expect; return the methods that held."""
		key = info.key
		if info.size != size:
			raise mismatch(f"{key} is {info.size} bytes offsite, the backup recorded {size}.")
		methods = []
		checksum = info.checksum_sha256
		if checksum:
			_value, _separator, parts = checksum.partition("-")
			if not parts:
				remote = sha256_hex_from_checksum(checksum)
				if remote and remote != sha256:
					raise mismatch(f"{key} has SHA-256 {remote} offsite, the backup recorded {sha256}.")
				if remote:
					methods.append(VERIFIED_BY_CHECKSUM)
			elif local is not None and local.part_digests:
				expected = composite_checksum(local.part_digests)
				if checksum != expected:
					raise mismatch(
						f"{key} has part checksum {checksum} offsite, the local file's parts give {expected}."
					)
				methods.append(VERIFIED_BY_PART_CHECKSUMS)
		if info.sha256:
			if info.sha256 != sha256:
				raise mismatch(f"{key} carries sha256 {info.sha256} offsite, the backup recorded {sha256}.")
			if not methods:
				methods.append(VERIFIED_BY_METADATA)
		return methods

	def _read_back(self, key: str, size: int, sha256: str, mismatch: type[ChecksumMismatch]) -> None:
		digest = hashlib.sha256()
		total = 0
		try:
			body = self.client.get_object(Bucket=self.config.bucket, Key=key)["Body"]
			for chunk in body.iter_chunks(READ_CHUNK_SIZE):
				digest.update(chunk)
				total += len(chunk)
		except (ClientError, BotoCoreError) as exc:
			raise self._storage_error(exc, "read back", key) from exc
		if total != size:
			raise mismatch(f"{key} read back {total} bytes, the backup recorded {size}.")
		if digest.hexdigest() != sha256:
			raise mismatch(f"{key} read back with sha256 {digest.hexdigest()}, the backup recorded {sha256}.")

	# --- reading, listing, deleting ------------------------------------------------------

	def head(self, key: str) -> ObjectInfo | None:
		arguments = {"Bucket": self.config.bucket, "Key": key}
		if self.config.uses_additional_checksums:
			# Only where supported: some providers reject the x-amz-checksum-mode header.
			arguments["ChecksumMode"] = "ENABLED"
		try:
			response = self.client.head_object(**arguments)
		except ClientError as exc:
			code, status, _message, _headers = _error_parts(exc)
			if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
				return None
			raise self._storage_error(exc, "read", key) from exc
		except BotoCoreError as exc:
			raise self._storage_error(exc, "read", key) from exc
		return ObjectInfo(
			key=key,
			size=int(response.get("ContentLength", 0)),
			last_modified=_as_utc(response.get("LastModified")),
			etag=str(response.get("ETag", "")).strip('"'),
			storage_class=response.get("StorageClass", "") or "STANDARD",
			sha256=(response.get("Metadata") or {}).get(METADATA_SHA256, ""),
			checksum_sha256=response.get("ChecksumSHA256", "") or "",
			locked_until=self._locked_until(response),
		)

	@staticmethod
	def _locked_until(response: dict) -> datetime | None:
		if response.get("ObjectLockLegalHoldStatus") == "ON":
			return LEGAL_HOLD_UNTIL
		return _as_utc(response.get("ObjectLockRetainUntilDate"))

	def object_locked_until(self, key: str) -> datetime | None:
		info = self.head(key)
		return info.locked_until if info else None

	def read_bytes(self, key: str) -> bytes:
		try:
			requests = self._direct_requests()
			if requests is not None:
				try:
					return requests.get(key)
				except FallBack as exc:
					self._disable_direct(exc)
			return self.client.get_object(Bucket=self.config.bucket, Key=key)["Body"].read()
		except (ClientError, BotoCoreError) as exc:
			raise self._storage_error(exc, "read", key) from exc

	def download_file(self, key: str, local_path: str) -> None:
		part_size = self.config.multipart_chunksize_mb * MiB
		# Opened here exclusively, without following symlinks, 0600 (s3transfer's download_file would
		# open a predictable temporary name next to it with the umask). On failure it is removed.
		handle = open_new_private_file(local_path)
		try:
			with handle:
				self.client.download_fileobj(
					self.config.bucket,
					key,
					handle,
					Config=_transfer_config(part_size, self.config.max_concurrency),
				)
		except (ClientError, BotoCoreError) as exc:
			remove_quietly(local_path)
			raise self._storage_error(exc, "download", key) from exc
		except BaseException:
			remove_quietly(local_path)
			raise

	def list_objects(self, prefix: str) -> list[ObjectInfo]:
		objects = []
		try:
			paginator = self.client.get_paginator("list_objects_v2")
			for page in paginator.paginate(Bucket=self.config.bucket, Prefix=prefix):
				if page.get("IsTruncated") and not page.get("NextContinuationToken"):
					raise StorageError(
						f"Listing {prefix} in bucket {self.config.bucket} stopped early (a truncated page "
						"without a continuation token); nothing is decided from a partial listing."
					)
				for item in page.get("Contents", []):
					objects.append(
						ObjectInfo(
							key=item["Key"],
							size=int(item.get("Size", 0)),
							last_modified=_as_utc(item.get("LastModified")),
							etag=str(item.get("ETag", "")).strip('"'),
							storage_class=item.get("StorageClass", "") or "STANDARD",
						)
					)
		except (ClientError, BotoCoreError) as exc:
			raise StorageError(
				f"Listing {prefix} failed, so nothing is decided from it: {self.explain(exc, 'list', prefix)}"
			) from exc
		return objects

	def delete_objects(self, keys: list[str]) -> None:
		keys = list(dict.fromkeys(keys))
		failures: list[str] = []
		for start in range(0, len(keys), S3_MAX_DELETE_KEYS):
			batch = keys[start : start + S3_MAX_DELETE_KEYS]
			try:
				response = self.client.delete_objects(
					Bucket=self.config.bucket,
					Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
				)
			except ClientError as exc:
				code, _status, _message, _headers = _error_parts(exc)
				if code not in BULK_DELETE_UNSUPPORTED_CODES:
					raise self._storage_error(exc, "delete objects from", "") from exc
				failures.extend(self._delete_one_by_one(batch))
				continue
			except BotoCoreError as exc:
				raise self._storage_error(exc, "delete objects from", "") from exc
			for error in response.get("Errors", []):
				failures.append(f"{error.get('Key')}: {error.get('Code')} {error.get('Message', '')}".strip())
		if failures:
			shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
			raise StorageError(
				self._redact(
					f"Could not delete {len(failures)} object(s) from bucket {self.config.bucket}: {shown}"
				)
			)

	def _delete_one_by_one(self, keys: list[str]) -> list[str]:
		failures = []
		for key in keys:
			try:
				self.client.delete_object(Bucket=self.config.bucket, Key=key)
			except (ClientError, BotoCoreError) as exc:
				failures.append(self.explain(exc, "delete", key))
		return failures


def _skip_checks(report: ConnectionReport, names: list[str], because: str) -> None:
	for name in names:
		report.checks.append(CheckResult(name, False, f"not tried because {because!r} failed", skipped=True))
