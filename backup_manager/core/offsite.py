"""Offsite copies of backups: upload, list, retention, verification and download over a backend.

The bucket holds `<prefix>/<site>/<backup id>/<file>` (core.layout). A backup is complete once
its manifest.json is there: it is written last, only after every artifact was uploaded and
verified, and retention deletes it first, so an interrupted run never leaves a backup that
looks complete but is not. Keys that do not parse into the layout are never touched.
"""

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from backup_manager.core import dedup_store, layout
from backup_manager.core.checksums import sha256_file
from backup_manager.core.dedup import FileIndex, index_name
from backup_manager.core.errors import (
	ArtifactError,
	BackupManagerError,
	ChecksumMismatch,
	StorageError,
	UnsafePath,
)
from backup_manager.core.manifest import (
	BAD_SIGNATURE,
	MANIFEST_FILE_NAME,
	PRIVATE_FILES,
	PUBLIC_FILES,
	VERIFIED,
	Artifact,
	Manifest,
	authenticate_manifest_data,
	describe_authentication,
	escape_control_characters,
	load_authenticated_manifest,
)
from backup_manager.core.private_files import (
	make_private_folder,
	remove_quietly,
	write_private_file,
)
from backup_manager.core.retention import (
	BackupRecord,
	RetentionRules,
	evaluate,
	prune_order,
)
from backup_manager.core.storage import ObjectInfo, StorageBackend

logger = logging.getLogger(__name__)

UPLOADED = "Uploaded"
FAILED = "Failed"
SKIPPED = "Skipped"
# ArtifactUploadResult.kind of the completion marker (artifact kinds come from core.manifest).
MANIFEST_KIND = "manifest"

KEEP = "keep"
DELETED = "deleted"
WOULD_DELETE = "would delete"
LOCKED = "locked"
DELETE_FAILED = "failed"
# Not written by this site (as far as can be proven): never counted, never deleted, reported.
UNRECOGNISED = "unrecognised"
# A backup id may be this far ahead of the clock (clock drift between servers) and still count.
FUTURE_SKEW = timedelta(minutes=10)

CHECK_EXISTS = "exists"
CHECK_SIZE = "size"
CHECK_CHECKSUM = "checksum"
CHECK_CONTENT = "content"

BACKUP_ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
DEFAULT_UPLOAD_WORKERS = 2


@dataclass
class ArtifactUploadResult:
	kind: str
	key: str
	status: str
	bytes: int
	duration_seconds: float
	error: str = ""
	verified_by: str = ""
	# The bytes this artifact stands for; more than `bytes` when deduplicated contents were skipped.
	represented_bytes: int = 0


@dataclass
class RemoteBackup:
	backup_id: str
	created_at: datetime
	objects: list[ObjectInfo] = field(default_factory=list)
	manifest: Manifest | None = None
	complete: bool = False
	# Why the backup is not complete, in plain words ("" when it is).
	problem: str = ""
	locked_until: datetime | None = None
	# core.manifest.VERIFIED, UNSIGNED, BAD_SIGNATURE or NO_KEY; "" without a readable manifest.
	authentication: str = ""

	@property
	def keys(self) -> list[str]:
		return [item.key for item in self.objects]

	@property
	def size(self) -> int:
		return sum(item.size for item in self.objects)


@dataclass
class OffsiteRetentionResult:
	backup_id: str
	created_at: datetime
	keep: bool
	# KEEP, DELETED, WOULD_DELETE (dry run), LOCKED or DELETE_FAILED.
	action: str
	reason: str
	complete: bool
	keys: list[str] = field(default_factory=list)
	size: int = 0
	error: str = ""


@dataclass
class RemoteCheck:
	kind: str
	key: str
	check: str
	ok: bool
	message: str


@dataclass
class StorageUsage:
	bytes: int
	backups: int
	# Deduplicated file contents, shared by backups.
	stored_files: int


def measure_usage(backend: StorageBackend, *, prefix: str, site: str) -> StorageUsage:
	"""What the site's backups take on a destination: one complete listing of its folder."""
	folder = layout.site_prefix(prefix, site)
	contents = layout.content_prefix(prefix, site)
	total, backup_ids, stored_files = 0, set(), 0
	for item in backend.list_objects(folder):
		parsed = layout.parse_backup_key(folder, item.key)
		if parsed:
			backup_ids.add(parsed[0])
		elif layout.parse_content_key(contents, item.key):
			stored_files += 1
		else:
			continue
		total += item.size
	return StorageUsage(bytes=total, backups=len(backup_ids), stored_files=stored_files)


def summarize_savings(results: list[ArtifactUploadResult]) -> tuple[int, int]:
	"""Return (bytes uploaded, bytes the uploaded artifacts represent) of one destination's results."""
	uploaded = sum(result.bytes for result in results if result.kind != MANIFEST_KIND)
	represented = sum(
		result.represented_bytes or result.bytes for result in results if result.kind != MANIFEST_KIND
	)
	return uploaded, represented


def backup_created_at(backup_id: str) -> datetime | None:
	"""Return the UTC time a backup id was taken at ("20261128T064500Z-..."), or None."""
	try:
		return datetime.strptime(backup_id[:16], BACKUP_ID_TIME_FORMAT).replace(tzinfo=timezone.utc)
	except ValueError:
		return None


class BackupUpload:
	"""One backup's upload to one destination: each artifact as soon as it is ready, the manifest last.

	`add` starts an artifact's upload at once (from any thread); `finish` adds whatever was not
	added yet, waits for every upload and writes the manifest only if every artifact verified.
	At most `max_workers` files are in flight, each streamed in bounded parts by the backend, so
	memory stays bounded whatever the backup size. A destination that could not even start
	(`error`) reports every artifact failed. `progress` (optional) is called with the bytes sent
	as they go, from the transfer threads.
	"""

	def __init__(
		self,
		backend: StorageBackend | None,
		*,
		prefix: str,
		site: str,
		backup_id: str,
		max_workers: int = DEFAULT_UPLOAD_WORKERS,
		error: str = "",
		progress: Callable[[int], None] | None = None,
		deduplicate: bool = False,
	):
		self.backend = backend
		self.progress = progress
		self.prefix = prefix
		self.site = site
		self.backup_id = backup_id
		self.max_workers = max_workers
		# Files archives stored as index + contents (core.dedup_store), by archive file name.
		self._contents = (
			dedup_store.StoredContents(backend, prefix, site) if deduplicate and backend is not None else None
		)
		self._stored: dict[str, dedup_store.StoredArchive] = {}
		self.error = error if backend is not None else error or "no storage backend"
		self._lock = threading.Lock()
		self._futures: dict[str, Future] = {}
		self._pool = (
			ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="backup-manager-upload")
			if backend is not None
			else None
		)

	@property
	def deduplicates(self) -> bool:
		"""True if files archives go to this destination as an index plus contents."""
		return self._contents is not None

	def add(self, artifact: Artifact, path: str, index: FileIndex | None = None) -> None:
		"""Start uploading an artifact (checked and hashed) from `path`, unless it already started.

		`index`: a files archive's index made while it was checked (saves reading it again).
		"""
		with self._lock:
			if self._pool is None or artifact.kind in self._futures:
				return
			if self._contents is not None and can_deduplicate(artifact):
				self._futures[artifact.kind] = self._pool.submit(
					_upload_deduplicated,
					self.backend,
					artifact,
					path,
					self.prefix,
					self.site,
					self.backup_id,
					self._contents,
					self.max_workers,
					self._stored,
					self.progress,
					index,
				)
				return
			self._futures[artifact.kind] = self._pool.submit(
				_upload_artifact,
				self.backend,
				artifact,
				path,
				self.prefix,
				self.site,
				self.backup_id,
				self.progress,
			)

	def wait(self) -> None:
		"""Wait until every upload started so far has ended (it no longer reads its file)."""
		with self._lock:
			futures = list(self._futures.values())
		for future in futures:
			future.exception()

	def finish(self, manifest: Manifest, local_dir: str) -> list[ArtifactUploadResult]:
		"""Upload what was not added yet from local_dir, wait, then write the manifest; report each."""
		artifacts = list(manifest.artifacts)
		if self._pool is None:
			return [
				ArtifactUploadResult(artifact.kind, "", FAILED, 0, 0.0, error=self.error)
				for artifact in artifacts
			]
		for artifact in artifacts:
			self.add(artifact, os.path.join(local_dir, artifact.file_name))
		results = [self._futures[artifact.kind].result() for artifact in artifacts]
		self._pool.shutdown()

		manifest_key = layout.manifest_key(self.prefix, self.site, manifest.backup_id)
		failed = [result for result in results if result.status != UPLOADED]
		if failed:
			results.append(
				ArtifactUploadResult(
					kind=MANIFEST_KIND,
					key=manifest_key,
					status=SKIPPED,
					bytes=0,
					duration_seconds=0.0,
					error=f"not written because {len(failed)} artifact(s) failed; this offsite copy stays incomplete",
				)
			)
			return results
		# A deduplicated archive is found by its index's name; the manifest (signed) stays as it is
		# and its sha256 of the archive authenticates the archive rebuilt from the index.
		results.append(_upload_manifest(self.backend, manifest, manifest_key))
		return results

	def close(self) -> None:
		"""Release the backend's connection (SFTP); call after finish or cancel."""
		if self.backend is not None:
			self.backend.close()

	def cancel(self) -> None:
		"""The backup failed: wait for uploads in flight, then delete what reached the store (best effort)."""
		if self._pool is None:
			return
		self.wait()
		self._pool.shutdown()
		keys = [
			future.result().key
			for future in self._futures.values()
			if future.exception() is None and future.result().status == UPLOADED
		]
		if not keys:
			return
		try:
			self.backend.delete_objects(keys)
		except Exception as exc:
			# Left without a manifest, they are an incomplete backup that retention prunes.
			logger.warning("Could not delete the uploads of failed backup %s: %s", self.backup_id, exc)


def upload_backup(
	backend: StorageBackend,
	manifest: Manifest,
	local_dir: str,
	*,
	prefix: str,
	site: str,
	max_workers: int = DEFAULT_UPLOAD_WORKERS,
	progress: Callable[[int], None] | None = None,
	deduplicate: bool = False,
) -> list[ArtifactUploadResult]:
	"""Upload and verify every artifact, then the manifest last; report each, never raise for one.

	With `deduplicate`, files archives are stored as a file index plus the file contents the
	destination does not hold yet (core.dedup_store); the offsite manifest records their indexes.
	"""
	upload = BackupUpload(
		backend,
		prefix=prefix,
		site=site,
		backup_id=manifest.backup_id,
		max_workers=max_workers,
		progress=progress,
		deduplicate=deduplicate,
	)
	return upload.finish(manifest, local_dir)


def can_deduplicate(artifact: Artifact) -> bool:
	"""Only plain tar archives of files: encrypted or compressed bytes cannot be rebuilt exactly."""
	return (
		artifact.kind in (PUBLIC_FILES, PRIVATE_FILES)
		and not artifact.encrypted
		and artifact.file_name.endswith(".tar")
	)


def _upload_deduplicated(
	backend: StorageBackend,
	artifact: Artifact,
	path: str,
	prefix: str,
	site: str,
	backup_id: str,
	contents: "dedup_store.StoredContents",
	max_workers: int,
	stored: dict,
	progress: Callable[[int], None] | None = None,
	index: FileIndex | None = None,
) -> ArtifactUploadResult:
	started = time.monotonic()
	index_key = layout.object_key(prefix, site, backup_id, index_name(artifact.file_name))
	# Progress counts the archive's bytes as its files are stored (or found stored already).
	counted = [0]

	def count(byte_count: int) -> None:
		counted[0] += byte_count
		if progress:
			progress(byte_count)

	try:
		archive = dedup_store.store_archive(
			backend,
			path,
			artifact,
			prefix=prefix,
			site=site,
			backup_id=backup_id,
			contents=contents,
			max_workers=max_workers,
			progress=count,
			index=index,
		)
	except Exception as exc:
		if progress and counted[0]:
			progress(-counted[0])
		error = _describe_failure(exc)
		logger.warning("Deduplicated upload of %s failed: %s", artifact.file_name, error)
		return ArtifactUploadResult(
			kind=artifact.kind,
			key=index_key,
			status=FAILED,
			bytes=0,
			duration_seconds=time.monotonic() - started,
			error=error,
			represented_bytes=artifact.size,
		)
	if archive is None:
		logger.info(
			"%s cannot be rebuilt byte for byte from an index; uploading it whole", artifact.file_name
		)
		return _upload_artifact(backend, artifact, path, prefix, site, backup_id, progress)
	# The tar headers and padding, which the index carries: the archive is wholly accounted for.
	count(artifact.size - counted[0])
	stored[artifact.file_name] = archive
	return ArtifactUploadResult(
		kind=artifact.kind,
		key=index_key,
		status=UPLOADED,
		bytes=archive.uploaded_bytes,
		duration_seconds=time.monotonic() - started,
		verified_by=(
			f"{dedup_store.VERIFIED_BY_INDEX} ({archive.files} files, {archive.uploaded_files} uploaded)"
		),
		represented_bytes=archive.represented_bytes,
	)


def _upload_artifact(
	backend: StorageBackend,
	artifact: Artifact,
	path: str,
	prefix: str,
	site: str,
	backup_id: str,
	progress: Callable[[int], None] | None = None,
) -> ArtifactUploadResult:
	key = layout.object_key(prefix, site, backup_id, artifact.file_name)
	started = time.monotonic()
	try:
		upload = backend.upload_file(
			path,
			key,
			size=artifact.size,
			sha256=artifact.sha256,
			metadata={"backup-id": backup_id, "kind": artifact.kind},
			progress=progress,
		)
	except Exception as exc:
		error = _describe_failure(exc)
		logger.warning("Offsite upload of %s failed: %s", key, error)
		return ArtifactUploadResult(
			kind=artifact.kind,
			key=key,
			status=FAILED,
			bytes=0,
			duration_seconds=time.monotonic() - started,
			error=error,
		)
	return ArtifactUploadResult(
		kind=artifact.kind,
		key=key,
		status=UPLOADED,
		bytes=upload.size,
		duration_seconds=upload.duration_seconds,
		verified_by=upload.verified_by,
		represented_bytes=artifact.size,
	)


def _upload_manifest(backend: StorageBackend, manifest: Manifest, key: str) -> ArtifactUploadResult:
	started = time.monotonic()
	try:
		upload = backend.upload_bytes(
			manifest.to_json().encode(), key, metadata={"backup-id": manifest.backup_id}
		)
	except Exception as exc:
		error = _describe_failure(exc)
		logger.warning("Writing the offsite manifest %s failed: %s", key, error)
		return ArtifactUploadResult(MANIFEST_KIND, key, FAILED, 0, time.monotonic() - started, error)
	return ArtifactUploadResult(
		MANIFEST_KIND, key, UPLOADED, upload.size, upload.duration_seconds, verified_by=upload.verified_by
	)


def _describe_failure(exc: BaseException) -> str:
	# Our own errors carry checked, secret-free messages; anything else only names its type,
	# since a library's text could quote a request.
	if isinstance(exc, BackupManagerError):
		return str(exc)
	logger.exception("Unexpected error during an offsite operation")
	return f"unexpected {type(exc).__name__}; see the error log"


def list_remote_backups(
	backend: StorageBackend,
	*,
	prefix: str,
	site: str,
	check_locks: bool = True,
	hmac_key: str | None = None,
) -> list[RemoteBackup]:
	"""Return the site's offsite backups, newest first; raise StorageError if listing or reading fails.

	With the site's manifest key (hmac_key) each backup's `authentication` says whether its
	manifest is one this site signed.
	"""
	folder = layout.site_prefix(prefix, site)
	grouped: dict[str, list[ObjectInfo]] = {}
	for item in backend.list_objects(folder):
		parsed = layout.parse_backup_key(folder, item.key)
		if parsed is None:
			continue
		backup_id, _file_name = parsed
		if backup_created_at(backup_id) is None:
			continue
		grouped.setdefault(backup_id, []).append(item)

	backups = []
	for backup_id, objects in grouped.items():
		backup = RemoteBackup(
			backup_id=backup_id,
			created_at=backup_created_at(backup_id),
			objects=sorted(objects, key=lambda item: item.key),
		)
		_read_manifest(backend, backup, folder, site, hmac_key)
		if check_locks:
			lock_key = layout.manifest_key(prefix, site, backup_id)
			backup.locked_until = backend.object_locked_until(
				lock_key if lock_key in backup.keys else backup.keys[0]
			)
		backups.append(backup)
	return sorted(backups, key=lambda backup: (backup.created_at, backup.backup_id), reverse=True)


def _read_manifest(
	backend: StorageBackend, backup: RemoteBackup, folder: str, site: str, hmac_key: str | None
) -> None:
	"""Fill manifest/complete/problem; a read failure raises (a missed manifest could get a backup pruned)."""
	manifest_key = f"{folder}{backup.backup_id}/{MANIFEST_FILE_NAME}"
	if manifest_key not in backup.keys:
		backup.problem = "no manifest.json: the upload did not finish"
		return
	data = backend.read_bytes(manifest_key)
	try:
		raw = json.loads(data.decode())
		if not isinstance(raw, dict):
			raise ValueError("not a JSON object")
		manifest = Manifest.from_dict(raw)
	except (ValueError, TypeError, UnicodeDecodeError) as exc:
		backup.problem = f"manifest.json cannot be read: {escape_control_characters(str(exc))}"
		return
	backup.manifest = manifest
	backup.authentication = authenticate_manifest_data(raw, hmac_key)
	if manifest.backup_id != backup.backup_id:
		backup.problem = (
			f"manifest.json belongs to backup {escape_control_characters(str(manifest.backup_id))}"
		)
		return
	if manifest.site != site:
		backup.problem = f"manifest.json belongs to site {escape_control_characters(str(manifest.site))}"
		return
	sizes = {item.key: item.size for item in backup.objects}
	for artifact in manifest.artifacts:
		key = f"{folder}{backup.backup_id}/{artifact.file_name}"
		index_key = f"{folder}{backup.backup_id}/{index_name(artifact.file_name)}"
		if key not in sizes and can_deduplicate(artifact) and index_key in sizes:
			# Stored as a file index plus deduplicated contents (checked by verify and download).
			continue
		if key not in sizes:
			backup.problem = f"{escape_control_characters(str(artifact.file_name))} is missing"
			return
		if sizes[key] != artifact.size:
			backup.problem = (
				f"{escape_control_characters(str(artifact.file_name))} is {sizes[key]} bytes, the manifest "
				f"records {artifact.size}"
			)
			return
	backup.complete = True


def apply_offsite_retention(
	backend: StorageBackend,
	*,
	prefix: str,
	site: str,
	rules: RetentionRules,
	pinned_ids: Iterable[str] = (),
	now: datetime,
	dry_run: bool = False,
	hmac_key: str | None = None,
	known_ids: Iterable[str] = (),
) -> list[OffsiteRetentionResult]:
	"""Decide and (unless dry_run) delete offsite backups oldest first; return a result per backup.

	Only backups this site wrote take part: a manifest that verifies with hmac_key, or a backup id
	in known_ids (the site's Backup Logs). Anything else in the folder, and any backup dated in
	the future, is never counted and never deleted: its result is UNRECOGNISED.
	"""
	rules.validate()
	now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
	pinned = set(pinned_ids)
	known = set(known_ids)
	# A failed listing raises here, before anything is decided or deleted.
	listed = list_remote_backups(backend, prefix=prefix, site=site, check_locks=False, hmac_key=hmac_key)
	unrecognised: list[OffsiteRetentionResult] = []
	backups = []
	for backup in listed:
		distrust = describe_distrust(backup, known, now)
		if not distrust:
			backups.append(backup)
			continue
		logger.warning("Offsite retention ignores %s: %s", backup.backup_id, distrust)
		unrecognised.append(
			OffsiteRetentionResult(
				backup_id=backup.backup_id,
				created_at=backup.created_at,
				keep=True,
				action=UNRECOGNISED,
				reason=f"never counted or deleted: {distrust}",
				complete=backup.complete,
				keys=backup.keys,
				size=backup.size,
			)
		)
	by_id = {backup.backup_id: backup for backup in backups}
	verdicts = evaluate(
		[
			BackupRecord(
				id=backup.backup_id,
				created_at=backup.created_at,
				good=backup.complete,
				pinned=backup.backup_id in pinned,
			)
			for backup in backups
		],
		rules,
	)
	results: dict[str, OffsiteRetentionResult] = {}
	for verdict in verdicts:
		backup = by_id[verdict.backup.id]
		reason = verdict.reason if backup.complete else f"{verdict.reason} ({backup.problem})"
		results[backup.backup_id] = OffsiteRetentionResult(
			backup_id=backup.backup_id,
			created_at=backup.created_at,
			keep=verdict.keep,
			action=KEEP if verdict.keep else WOULD_DELETE,
			reason=reason,
			complete=backup.complete,
			keys=backup.keys,
			size=backup.size,
		)

	newest_complete = next((backup.backup_id for backup in backups if backup.complete), None)
	for verdict in prune_order(verdicts):
		backup = by_id[verdict.backup.id]
		result = results[backup.backup_id]
		# evaluate() already keeps these; checked again because a wrong delete cannot be undone.
		if backup.backup_id == newest_complete or backup.backup_id in pinned:
			result.keep = True
			result.action = KEEP
			continue
		try:
			locked_until = _latest_lock(backend, backup)
		except StorageError as exc:
			result.keep = True
			result.action = DELETE_FAILED
			result.error = f"kept, since its Object Lock could not be read: {exc}"
			continue
		if locked_until and locked_until > now:
			result.keep = True
			result.action = LOCKED
			lock = f"locked until {locked_until:%Y-%m-%d %H:%M} UTC (Object Lock)"
			result.reason = f"{lock}; without the lock: {result.reason}"
			continue
		if dry_run:
			continue
		try:
			_delete_backup(backend, backup, layout.site_prefix(prefix, site))
		except StorageError as exc:
			result.action, result.error = DELETE_FAILED, str(exc)
			logger.warning("Deleting offsite backup %s failed: %s", backup.backup_id, exc)
			continue
		result.action = DELETED
		logger.info("Deleted offsite backup %s (%s)", backup.backup_id, result.reason)
	if not dry_run:
		# Deduplicated file contents go once no remaining backup's index references them.
		dedup_store.collect_unreferenced_contents(backend, prefix=prefix, site=site)
	decided = [results[verdict.backup.id] for verdict in verdicts]
	return sorted(decided + unrecognised, key=lambda item: (item.created_at, item.backup_id), reverse=True)


def describe_distrust(backup: RemoteBackup, known_ids: set[str], now: datetime) -> str:
	"""Why retention must not act on a backup ("" when this site provably wrote it)."""
	if backup.created_at > now + FUTURE_SKEW:
		return (
			f"dated {backup.created_at:%Y-%m-%d %H:%M} UTC, in the future: it cannot be a backup this "
			"site took, and must not displace real ones"
		)
	if backup.authentication == VERIFIED:
		return ""
	if backup.authentication == BAD_SIGNATURE:
		return f"its manifest.json is not authentic ({describe_authentication(BAD_SIGNATURE)})"
	if backup.backup_id in known_ids:
		# A backup of this site's own Backup Logs: unsigned (older) or without a manifest (incomplete).
		return ""
	if backup.manifest is None:
		return "not in this site's Backup Logs, and it has no readable manifest.json"
	return f"not in this site's Backup Logs, and {describe_authentication(backup.authentication)}"


def _latest_lock(backend: StorageBackend, backup: RemoteBackup) -> datetime | None:
	dates = [date for date in (backend.object_locked_until(key) for key in backup.keys) if date]
	return max(dates) if dates else None


def _delete_backup(backend: StorageBackend, backup: RemoteBackup, folder: str) -> None:
	# The manifest goes first: if the run stops halfway, what is left is visibly incomplete.
	manifest_key = f"{folder}{backup.backup_id}/{MANIFEST_FILE_NAME}"
	if manifest_key in backup.keys:
		backend.delete_objects([manifest_key])
	rest = [key for key in backup.keys if key != manifest_key]
	if rest:
		backend.delete_objects(rest)


def verify_remote_backup(
	backend: StorageBackend, manifest: Manifest, *, prefix: str, site: str, read_back: bool = False
) -> list[RemoteCheck]:
	"""Check that the manifest and every artifact are offsite, with the right size and checksum."""
	checks: list[RemoteCheck] = []
	manifest_key = layout.manifest_key(prefix, site, manifest.backup_id)
	remote_manifest = manifest
	try:
		remote_manifest = Manifest.from_json(backend.read_bytes(manifest_key).decode())
	except StorageError as exc:
		checks.append(RemoteCheck(MANIFEST_KIND, manifest_key, CHECK_EXISTS, False, str(exc)))
	except (ValueError, TypeError, UnicodeDecodeError) as exc:
		checks.append(
			RemoteCheck(MANIFEST_KIND, manifest_key, CHECK_CONTENT, False, f"cannot be read: {exc}")
		)
	else:
		checks.append(RemoteCheck(MANIFEST_KIND, manifest_key, CHECK_EXISTS, True, "present"))
		same = _artifact_fingerprint(remote_manifest) == _artifact_fingerprint(manifest)
		checks.append(
			RemoteCheck(
				MANIFEST_KIND,
				manifest_key,
				CHECK_CONTENT,
				same,
				"lists the same artifacts" if same else "lists other artifacts than this backup's manifest",
			)
		)

	for artifact in manifest.artifacts:
		key = layout.object_key(prefix, site, manifest.backup_id, artifact.file_name)
		try:
			index_key = _deduplicated_index_key(backend, artifact, key, prefix, site, manifest.backup_id)
		except StorageError as exc:
			checks.append(RemoteCheck(artifact.kind, key, CHECK_EXISTS, False, str(exc)))
			continue
		if index_key:
			checks += _verify_deduplicated(
				backend, artifact, index_key, prefix=prefix, site=site, read_back=read_back
			)
			continue
		try:
			info = backend.head(key)
		except StorageError as exc:
			checks.append(RemoteCheck(artifact.kind, key, CHECK_EXISTS, False, str(exc)))
			continue
		if info is None:
			checks.append(RemoteCheck(artifact.kind, key, CHECK_EXISTS, False, "missing offsite"))
			continue
		checks.append(RemoteCheck(artifact.kind, key, CHECK_EXISTS, True, "present"))
		if info.size != artifact.size:
			checks.append(
				RemoteCheck(
					artifact.kind,
					key,
					CHECK_SIZE,
					False,
					f"{info.size} bytes offsite, {artifact.size} recorded",
				)
			)
			continue
		checks.append(RemoteCheck(artifact.kind, key, CHECK_SIZE, True, f"{info.size} bytes"))
		try:
			verified_by = backend.verify_object(key, artifact.size, artifact.sha256, read_back=read_back)
		except (ChecksumMismatch, StorageError) as exc:
			checks.append(RemoteCheck(artifact.kind, key, CHECK_CHECKSUM, False, str(exc)))
			continue
		checks.append(RemoteCheck(artifact.kind, key, CHECK_CHECKSUM, True, f"verified by {verified_by}"))
	return checks


def _deduplicated_index_key(
	backend: StorageBackend, artifact: Artifact, key: str, prefix: str, site: str, backup_id: str
) -> str:
	"""The key of the artifact's file index if it is stored deduplicated (no archive, an index), else ""."""
	if not can_deduplicate(artifact) or backend.head(key) is not None:
		return ""
	index_key = layout.object_key(prefix, site, backup_id, index_name(artifact.file_name))
	return index_key if backend.head(index_key) is not None else ""


def _find_index(
	backend: StorageBackend, artifact: Artifact, key: str, *, prefix: str, site: str, backup_id: str
):
	"""The file index of an archive stored deduplicated, checked to describe that archive; else None."""
	index_key = _deduplicated_index_key(backend, artifact, key, prefix, site, backup_id)
	if not index_key:
		return None
	index = dedup_store.read_index(backend, index_key)
	if index.archive_sha256 != artifact.sha256 or index.archive_size != artifact.size:
		raise ChecksumMismatch(
			f"{index_key} describes another archive than {artifact.file_name}; nothing was kept."
		)
	return index


def _verify_deduplicated(
	backend: StorageBackend,
	artifact: Artifact,
	index_key: str,
	*,
	prefix: str,
	site: str,
	read_back: bool,
) -> list[RemoteCheck]:
	"""Check a deduplicated archive: its index, and every file content it references."""
	try:
		index = dedup_store.read_index(backend, index_key)
	except (StorageError, ArtifactError) as exc:
		return [RemoteCheck(artifact.kind, index_key, CHECK_EXISTS, False, f"file index: {exc}")]
	if index.archive_sha256 != artifact.sha256 or index.archive_size != artifact.size:
		return [
			RemoteCheck(
				artifact.kind, index_key, CHECK_CONTENT, False, "file index describes another archive"
			)
		]
	checks = [
		RemoteCheck(
			artifact.kind, index_key, CHECK_EXISTS, True, f"file index of {len(index.entries)} entries"
		)
	]
	try:
		present = dedup_store.StoredContents(backend, prefix, site).refresh()
	except StorageError as exc:
		return [*checks, RemoteCheck(artifact.kind, index_key, CHECK_EXISTS, False, str(exc))]
	missing = dedup_store.check_contents(index, present)
	for entry in missing:
		checks.append(
			RemoteCheck(
				artifact.kind,
				layout.content_key(prefix, site, entry.sha256),
				CHECK_EXISTS,
				False,
				f"{entry.path} (sha256 {entry.sha256}, {entry.size} bytes) is missing offsite",
			)
		)
	if missing:
		return checks
	checks.append(
		RemoteCheck(
			artifact.kind,
			index_key,
			CHECK_SIZE,
			True,
			f"{len(index.content_hashes)} stored files present with their sizes",
		)
	)
	if read_back:
		for entry in index.entries:
			if not entry.has_content:
				continue
			key = layout.content_key(prefix, site, entry.sha256)
			try:
				backend.verify_object(key, entry.size, entry.sha256, read_back=True)
			except (ChecksumMismatch, StorageError) as exc:
				checks.append(RemoteCheck(artifact.kind, key, CHECK_CHECKSUM, False, f"{entry.path}: {exc}"))
	return checks


def _artifact_fingerprint(manifest: Manifest) -> list[tuple]:
	return sorted((item.kind, item.file_name, item.size, item.sha256) for item in manifest.artifacts)


@dataclass
class TrustedManifest:
	manifest: Manifest
	# core.manifest.VERIFIED, or (only with trust_unverified) UNSIGNED, BAD_SIGNATURE or NO_KEY.
	authentication: str
	raw: bytes


def read_trusted_manifest(
	backend: StorageBackend,
	*,
	prefix: str,
	site: str,
	backup_id: str,
	hmac_key: str | None,
	trust_unverified: bool = False,
) -> TrustedManifest:
	"""Read a backup's manifest from the bucket; raise ManifestNotAuthentic unless this site signed it.

	With trust_unverified a readable manifest is returned anyway (its `authentication` says how
	far it can be trusted); the caller must warn loudly.
	"""
	manifest_key = layout.manifest_key(prefix, site, backup_id)
	try:
		data = backend.read_bytes(manifest_key)
	except StorageError as exc:
		raise StorageError(
			f"Backup {backup_id} of {site} has no readable manifest ({exc}). It is incomplete or the id is "
			"wrong; list the backups to see the complete ones."
		) from exc
	manifest, status = load_authenticated_manifest(
		data, hmac_key, site=site, backup_id=backup_id, trust_unverified=trust_unverified
	)
	return TrustedManifest(manifest, status, data)


def download_backup(
	backend: StorageBackend,
	*,
	prefix: str,
	site: str,
	backup_id: str,
	to_dir: str,
	hmac_key: str | None = None,
	trust_unverified: bool = False,
	manifest: Manifest | None = None,
) -> Manifest:
	"""Download a backup's artifacts into to_dir (0700), each verified against a trusted sha256.

	The sha256 values come from `manifest` when the caller holds a trusted one (the site's Backup
	Log), else from the bucket's manifest, which must verify with hmac_key (or trust_unverified).
	Files are written through `.part` names opened exclusively without following symlinks, end
	0600, and nothing unverified is left behind.
	"""
	if manifest is None:
		manifest = read_trusted_manifest(
			backend,
			prefix=prefix,
			site=site,
			backup_id=backup_id,
			hmac_key=hmac_key,
			trust_unverified=trust_unverified,
		).manifest
	if manifest.backup_id != backup_id:
		raise ArtifactError(f"The manifest describes backup {manifest.backup_id}, not {backup_id}.")
	for artifact in manifest.artifacts:
		# The manifest may come from the bucket: a file name must not lead outside to_dir.
		name = artifact.file_name
		if (
			not isinstance(name, str)
			or not name
			or os.path.basename(name) != name
			or name in (".", "..")
			or "\\" in name
			or name == MANIFEST_FILE_NAME
			or escape_control_characters(name) != name
		):
			raise ArtifactError(
				f"The manifest of {backup_id} names an unsafe file {name!r}; nothing was downloaded."
			)

	to_dir = make_private_folder(to_dir)
	for artifact in manifest.artifacts:
		key = layout.object_key(prefix, site, backup_id, artifact.file_name)
		final_path = os.path.join(to_dir, artifact.file_name)
		part_path = f"{final_path}.part"
		try:
			# Backends open part_path with core.private_files: a planted symlink is refused, never followed.
			index = _find_index(backend, artifact, key, prefix=prefix, site=site, backup_id=backup_id)
			if index is not None:
				# Hashed whole against the manifest's sha256 while it is rebuilt: no second pass.
				dedup_store.download_archive(
					backend,
					index,
					prefix=prefix,
					site=site,
					target_path=part_path,
					expected_sha256=artifact.sha256,
				)
				_verify_download_size(part_path, artifact.file_name, key, artifact.size)
			else:
				backend.download_file(key, part_path)
				_verify_download(part_path, artifact.file_name, key, artifact.size, artifact.sha256)
			os.replace(part_path, final_path)
		except UnsafePath:
			raise
		except BaseException:
			remove_quietly(part_path)
			raise
		logger.info("Downloaded and verified %s", key)

	write_private_file(os.path.join(to_dir, MANIFEST_FILE_NAME), manifest.to_json().encode())
	return manifest


def _verify_download_size(path: str, file_name: str, key: str, size: int) -> None:
	actual_size = os.path.getsize(path)
	if actual_size != size:
		raise ChecksumMismatch(
			f"Downloaded {file_name} is {actual_size} bytes, the manifest records {size}: the offsite copy "
			f"{key} is damaged. Nothing was kept; use another backup."
		)


def _verify_download(path: str, file_name: str, key: str, size: int, sha256: str) -> None:
	_verify_download_size(path, file_name, key, size)
	actual = sha256_file(path)
	if actual != sha256:
		raise ChecksumMismatch(
			f"Downloaded {file_name} has sha256 {actual}, the manifest records {sha256}: the "
			f"offsite copy {key} is damaged. Nothing was kept; use another backup."
		)
