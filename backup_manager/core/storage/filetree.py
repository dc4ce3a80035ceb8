"""What SFTP servers and mounted folders share: object keys stored as files below a base folder.

A key `a/b/c` is the file `<base>/a/b/c`. A file is written under a hidden temporary name in
its final folder (`.c.partial-<random>`) and renamed only once all of its bytes arrived, so a
dropped connection or a full disk never leaves a file that looks complete; the listing skips
temporary names, and `abort_incomplete_uploads` removes the ones a killed run left behind.
Subclasses provide the file operations (`_open_write`, `_rename`, `_stat`, ...); the decisions
(key checks, verification, retries, listing, deletion) live here once.
"""

import abc
import hashlib
import io
import logging
import posixpath
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import BinaryIO, TypeVar

from backup_manager.core.errors import (
	ArtifactError,
	BackupManagerError,
	ChecksumMismatch,
	LocalFileChanged,
	StorageError,
)
from backup_manager.core.private_files import open_new_private_file, remove_quietly
from backup_manager.core.storage import (
	VERIFIED_BY_READ_BACK,
	VERIFIED_BY_SERVER_HASH,
	VERIFIED_BY_SIZE_AND_LOCAL_HASH,
	CheckResult,
	ConnectionReport,
	ObjectInfo,
	StorageBackend,
	UploadResult,
)

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
PARTIAL_MARKER = ".partial-"
PARTIAL_PATTERN = re.compile(r"\..+\.partial-[0-9a-f]{32}", re.ASCII)
PROBE_NAME = ".backup-manager-connection-check"

CHECK_FOLDER = "folder"
CHECK_WRITE = "write"
CHECK_READ = "read"
CHECK_DELETE = "delete"

Result = TypeVar("Result")


class StoredFileMismatch(ChecksumMismatch):
	"""The stored file differs from what was sent; worth another attempt."""


class IncompleteWrite(OSError):
	"""The storage accepted fewer bytes than were sent (typically a full disk)."""


def is_partial_name(name: str) -> bool:
	"""True for the temporary name of a file still being written."""
	return bool(PARTIAL_PATTERN.fullmatch(name))


def partial_name_for(path: str) -> str:
	folder, name = posixpath.split(path)
	return posixpath.join(folder, f".{name}{PARTIAL_MARKER}{uuid.uuid4().hex}")


def check_key(key: str) -> str:
	"""Return the key if it is a plain relative path; keys come from manifests, so check them."""
	parts = key.split("/")
	if (
		not key
		or key.startswith("/")
		or "\x00" in key
		or "\\" in key
		or any(part in ("", ".", "..") for part in parts)
	):
		raise StorageError(
			f"{key!r} is not a valid object key (an empty, '.' or '..' part); nothing was touched."
		)
	return key


class FileTreeBackend(StorageBackend):
	"""Objects as files below a base folder; subclasses supply the file operations."""

	# How many whole-file attempts an upload gets (SFTP reconnects between them).
	upload_attempts = 1
	retry_backoff_seconds = 0.0
	read_back_verify = False

	# --- what a subclass provides -----------------------------------------------------------

	@abc.abstractmethod
	def _path(self, key: str) -> str:
		"""Return the path of a (checked) key on the storage."""

	@abc.abstractmethod
	def _prepare(self) -> None:
		"""Make sure the storage can be used now (connected, mounted); raise StorageError if not."""

	@abc.abstractmethod
	def _makedirs(self, folder: str) -> None:
		"""Create a folder and its parents if missing."""

	@abc.abstractmethod
	def _open_write(self, path: str) -> BinaryIO:
		"""Open a new file for writing."""

	@abc.abstractmethod
	def _open_read(self, path: str) -> BinaryIO:
		"""Open a file for reading; raise FileNotFoundError if missing."""

	@abc.abstractmethod
	def _rename(self, source: str, target: str) -> None:
		"""Rename, replacing target if it exists."""

	@abc.abstractmethod
	def _stat(self, path: str) -> tuple[int, float] | None:
		"""Return (size, mtime) of a regular file, or None if there is none."""

	@abc.abstractmethod
	def _remove(self, path: str) -> None:
		"""Remove a file; FileNotFoundError if missing."""

	@abc.abstractmethod
	def _remove_empty_folder(self, folder: str) -> None:
		"""Remove a folder if it is empty; never raise."""

	@abc.abstractmethod
	def _walk(self, folder: str) -> Iterator[tuple[str, int, float]]:
		"""Yield (path, size, mtime) of every regular file below folder; raise OSError if a read fails."""

	@abc.abstractmethod
	def _error(self, exc: BaseException, action: str, key: str) -> StorageError:
		"""Turn a library or OS error into a StorageError with a plain message (no secret)."""

	def _server_sha256(self, path: str) -> str | None:
		"""Return the file's sha256 computed where it is stored, or None if the server cannot."""
		return None

	def _finish_write(self, handle: BinaryIO) -> None:
		"""Push the written bytes to stable storage before the rename."""

	# --- uploads ------------------------------------------------------------------------------

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
		check_key(key)
		started = time.monotonic()
		sent = [0]

		def count_sent(byte_count: int) -> None:
			sent[0] += byte_count
			progress(byte_count)

		def attempt() -> str:
			if progress and sent[0]:
				# A retry writes the whole file again: take back what the failed attempt counted.
				progress(-sent[0])
				sent[0] = 0
			try:
				source = open(local_path, "rb")  # noqa: SIM115 - closed below, read by _write
			except OSError as exc:
				raise ArtifactError(
					f"{local_path} cannot be read, so it cannot be uploaded to {key}: {exc}"
				) from exc
			with source:
				sent_size, sent_sha256 = self._write(source, key, count_sent if progress else None)
			if sent_size != size or sent_sha256 != sha256:
				self._discard(key)
				raise LocalFileChanged(
					f"{local_path} is {sent_size} bytes with sha256 {sent_sha256}, the backup recorded {size} "
					f"bytes and {sha256}; take a new backup."
				)
			return self._verify_stored(key, size, sha256, self.read_back_verify, StoredFileMismatch)

		verified_by = self._run_attempts(attempt, key)
		duration = time.monotonic() - started
		logger.info("Stored %s (%d bytes) in %.1f s, verified by %s", key, size, duration, verified_by)
		return UploadResult(
			key=key, size=size, sha256=sha256, duration_seconds=duration, verified_by=verified_by
		)

	def upload_bytes(self, data: bytes, key: str, *, metadata: dict[str, str] | None = None) -> UploadResult:
		check_key(key)
		sha256 = hashlib.sha256(data).hexdigest()
		started = time.monotonic()

		def attempt() -> str:
			self._write(io.BytesIO(data), key)
			return self._verify_stored(key, len(data), sha256, self.read_back_verify, StoredFileMismatch)

		verified_by = self._run_attempts(attempt, key)
		return UploadResult(
			key=key,
			size=len(data),
			sha256=sha256,
			duration_seconds=time.monotonic() - started,
			verified_by=verified_by,
		)

	def _write(
		self, source: BinaryIO, key: str, on_chunk: Callable[[int], None] | None = None
	) -> tuple[int, str]:
		"""Copy source to a temporary name next to the key, then rename; return (size, sha256) sent."""
		self._prepare()
		path = self._path(key)
		partial = partial_name_for(path)
		digest = hashlib.sha256()
		total = 0
		try:
			self._makedirs(posixpath.dirname(path))
			with self._open_write(partial) as handle:
				while chunk := source.read(CHUNK_SIZE):
					digest.update(chunk)
					handle.write(chunk)
					total += len(chunk)
					if on_chunk:
						on_chunk(len(chunk))
				self._finish_write(handle)
			# Pipelined SFTP writes can fail without close() saying so (paramiko keeps the error
			# for a next write): only a temporary file holding every byte may take the final name.
			stored = self._stat(partial)
			if stored is None or stored[0] != total:
				raise IncompleteWrite(f"{stored[0] if stored else 0} of {total} bytes were stored")
			self._rename(partial, path)
		except BaseException as exc:
			# Explained before the clean-up, which may open a new connection.
			error = exc if isinstance(exc, BackupManagerError) else self._error(exc, "write", key)
			self._remove_quietly(partial)
			if error is exc or not isinstance(exc, Exception):
				raise
			raise error from exc
		return total, digest.hexdigest()

	def _remove_quietly(self, path: str) -> None:
		try:
			self._remove(path)
		except Exception:
			# The connection may be gone; abort_incomplete_uploads removes it later.
			logger.info("Could not remove the temporary file %s now; a later run cleans it up", path)

	def _discard(self, key: str) -> None:
		try:
			self._remove(self._path(key))
		except Exception:
			logger.warning("Could not remove %s, which does not match the backup", key)

	def _run_attempts(self, attempt: Callable[[], Result], key: str) -> Result:
		attempts = max(1, self.upload_attempts)
		for number in range(1, attempts + 1):
			try:
				return attempt()
			except (LocalFileChanged, ArtifactError) as exc:
				if not isinstance(exc, StoredFileMismatch):
					raise
				error: BackupManagerError = exc
			except StorageError as exc:
				error = exc
			if number == attempts:
				if number > 1:
					error.args = (f"{error} (after {number} attempts)",)
				raise error
			delay = self.retry_backoff_seconds * 2 ** (number - 1)
			logger.warning(
				"Upload of %s failed (attempt %d of %d): %s. Retrying.", key, number, attempts, error
			)
			self._reset()
			time.sleep(delay)
		raise AssertionError("unreachable")  # the loop always returns or raises

	def _reset(self) -> None:
		"""Forget a connection that failed, so the next attempt opens a new one."""

	# --- verification -------------------------------------------------------------------------

	def _verify_stored(
		self, key: str, size: int, sha256: str, read_back: bool, mismatch: type[ChecksumMismatch]
	) -> str:
		self._prepare()
		path = self._path(key)
		try:
			stat = self._stat(path)
		except Exception as exc:
			raise self._error(exc, "read", key) from exc
		if stat is None:
			raise StorageError(f"{key} is missing from {self.describe()}.")
		if stat[0] != size:
			raise mismatch(f"{key} is {stat[0]} bytes in {self.describe()}, the backup recorded {size}.")
		if not read_back:
			remote = self._server_sha256(path)
			if remote:
				if remote != sha256:
					raise mismatch(f"{key} has sha256 {remote} on the server, the backup recorded {sha256}.")
				return VERIFIED_BY_SERVER_HASH
			if mismatch is StoredFileMismatch:
				# Just written by us from bytes whose sha256 we computed while sending them.
				return VERIFIED_BY_SIZE_AND_LOCAL_HASH
		self._read_back(key, size, sha256, mismatch)
		return VERIFIED_BY_READ_BACK

	def verify_object(self, key: str, size: int, sha256: str, read_back: bool = False) -> str:
		check_key(key)
		return self._verify_stored(key, size, sha256, read_back, ChecksumMismatch)

	def _read_back(self, key: str, size: int, sha256: str, mismatch: type[ChecksumMismatch]) -> None:
		digest = hashlib.sha256()
		total = 0
		try:
			with self._open_read(self._path(key)) as handle:
				while chunk := handle.read(CHUNK_SIZE):
					digest.update(chunk)
					total += len(chunk)
		except Exception as exc:
			raise self._error(exc, "read back", key) from exc
		if total != size:
			raise mismatch(f"{key} read back {total} bytes, the backup recorded {size}.")
		if digest.hexdigest() != sha256:
			raise mismatch(f"{key} read back with sha256 {digest.hexdigest()}, the backup recorded {sha256}.")

	# --- reading, listing, deleting -------------------------------------------------------------

	def head(self, key: str) -> ObjectInfo | None:
		check_key(key)
		self._prepare()
		try:
			stat = self._stat(self._path(key))
		except Exception as exc:
			raise self._error(exc, "read", key) from exc
		if stat is None:
			return None
		return ObjectInfo(key=key, size=stat[0], last_modified=_utc(stat[1]))

	def object_locked_until(self, key: str) -> datetime | None:
		# Files have no Object Lock.
		return None

	def read_bytes(self, key: str) -> bytes:
		check_key(key)
		self._prepare()
		try:
			with self._open_read(self._path(key)) as handle:
				return handle.read()
		except Exception as exc:
			raise self._error(exc, "read", key) from exc

	def download_file(self, key: str, local_path: str) -> None:
		check_key(key)
		self._prepare()
		# Opened exclusively, without following symlinks, 0600 (core.private_files); removed on failure.
		target = open_new_private_file(local_path)
		try:
			with self._open_read(self._path(key)) as source, target:
				while chunk := source.read(CHUNK_SIZE):
					target.write(chunk)
		except Exception as exc:
			remove_quietly(local_path)
			if isinstance(exc, BackupManagerError):
				raise
			raise self._error(exc, "download", key) from exc

	def list_objects(self, prefix: str) -> list[ObjectInfo]:
		self._prepare()
		# A prefix is a folder here (the layout's prefixes end in "/"); a partial one lists its folder.
		folder_key = prefix.rstrip("/")
		if folder_key:
			check_key(folder_key)
		base = self._path("")
		folder = self._path(folder_key) if folder_key else base
		objects = []
		try:
			for path, size, mtime in self._walk(folder):
				name = posixpath.basename(path)
				if is_partial_name(name):
					continue
				key = posixpath.relpath(path, base)
				if key.startswith(prefix):
					objects.append(ObjectInfo(key=key, size=size, last_modified=_utc(mtime)))
		except Exception as exc:
			raise StorageError(
				f"Listing {prefix} failed, so nothing is decided from it: {self._error(exc, 'list', prefix)}"
			) from exc
		return sorted(objects, key=lambda item: item.key)

	def delete_objects(self, keys: list[str]) -> None:
		self._prepare()
		failures = []
		folders = set()
		for key in dict.fromkeys(keys):
			check_key(key)
			path = self._path(key)
			try:
				self._remove(path)
			except FileNotFoundError:
				pass
			except Exception as exc:
				failures.append(str(self._error(exc, "delete", key)))
				continue
			folders.add(posixpath.dirname(path))
		for folder in sorted(folders, reverse=True):
			self._remove_empty_folder(folder)
		if failures:
			shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
			raise StorageError(f"Could not delete {len(failures)} file(s) from {self.describe()}: {shown}")

	def abort_incomplete_uploads(self, prefix: str, *, initiated_before: datetime | None = None) -> int:
		"""Remove temporary files a dropped run left under prefix (older than initiated_before)."""
		self._prepare()
		folder_key = prefix.rstrip("/")
		folder = self._path(check_key(folder_key)) if folder_key else self._path("")
		cutoff = initiated_before.timestamp() if initiated_before else None
		removed = 0
		try:
			for path, _size, mtime in list(self._walk(folder)):
				if not is_partial_name(posixpath.basename(path)):
					continue
				if cutoff is not None and mtime >= cutoff:
					continue
				self._remove(path)
				removed += 1
		except Exception as exc:
			raise self._error(exc, "remove unfinished uploads under", prefix) from exc
		return removed

	# --- connection check -------------------------------------------------------------------------

	def check_connection(self) -> ConnectionReport:
		report = ConnectionReport()
		probe_key = f"{PROBE_NAME}-{uuid.uuid4().hex}"
		body = f"Backup Manager connection check {uuid.uuid4().hex}\n".encode()
		if not self._run_check(report, CHECK_FOLDER, self._check_folder):
			return report
		if not self._run_check(report, CHECK_WRITE, lambda: self._write_probe(probe_key, body)):
			return report
		self._run_check(report, CHECK_READ, lambda: self._read_probe(probe_key, body))
		self._run_check(report, CHECK_DELETE, lambda: self._delete_probe(probe_key))
		return report

	def _run_check(self, report: ConnectionReport, name: str, step: Callable[[], str]) -> bool:
		try:
			report.checks.append(CheckResult(name, True, step()))
			return True
		except BackupManagerError as exc:
			report.checks.append(CheckResult(name, False, str(exc)))
		except Exception as exc:
			report.checks.append(CheckResult(name, False, str(self._error(exc, name, ""))))
		return False

	def _check_folder(self) -> str:
		self._prepare()
		try:
			self._makedirs(self._path(""))
		except Exception as exc:
			raise self._error(exc, "create the base folder", "") from exc
		return f"{self.describe()} is reachable"

	def _write_probe(self, probe_key: str, body: bytes) -> str:
		self.upload_bytes(body, probe_key)
		return f"wrote {probe_key}"

	def _read_probe(self, probe_key: str, body: bytes) -> str:
		if self.read_bytes(probe_key) != body:
			raise ChecksumMismatch(f"{probe_key} read back different bytes than were written.")
		return f"read {probe_key} back unchanged"

	def _delete_probe(self, probe_key: str) -> str:
		self.delete_objects([probe_key])
		return f"deleted {probe_key}"


def _utc(timestamp: float | None) -> datetime | None:
	return datetime.fromtimestamp(timestamp, tz=timezone.utc) if timestamp is not None else None
