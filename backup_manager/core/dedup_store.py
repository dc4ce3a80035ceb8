"""Deduplicated archives on a storage backend: store, check, rebuild and collect file contents.

Layout: each file content once at `<prefix>/<site>/files/sha256/<ab>/<sha256>`, each archive's
index at `<prefix>/<site>/<backup id>/<archive>.index.json.gz` (core.dedup). Order of an upload:
the index first (so a concurrent retention already sees every content this backup references),
then the contents the store does not hold, then a complete listing proving every referenced
content is there; only then may the manifest be written. Retention deletes a content only
when no index left in the store references it, after a complete listing and a complete read of
every index: any failure deletes nothing.
"""

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from backup_manager.core import layout
from backup_manager.core.checksums import sha256_file
from backup_manager.core.dedup import (
	INDEX_SUFFIX,
	FileIndex,
	IndexEntry,
	build_index,
	index_name,
	read_content,
	rebuild_archive,
)
from backup_manager.core.errors import ArtifactError, ChecksumMismatch, StorageError
from backup_manager.core.manifest import Artifact
from backup_manager.core.storage import StorageBackend

logger = logging.getLogger(__name__)

# Contents up to this size are read into memory and sent in one request; bigger ones go
# through a temporary file and the backend's (multipart, retried) file upload.
IN_MEMORY_LIMIT = 8 * 1024 * 1024
DOWNLOAD_WORKERS = 8
# Contents fetched ahead of the one being written, at most (one bigger content is fetched alone).
DOWNLOAD_WINDOW_BYTES = 64 * 1024 * 1024
# Small contents are many: more requests in flight than a whole-archive upload needs.
MIN_CONTENT_UPLOAD_WORKERS = 8
VERIFIED_BY_INDEX = "file index; every stored content listed with its size"


@dataclass
class StoredArchive:
	index_key: str
	index_size: int
	index_sha256: str
	files: int
	uploaded_files: int
	uploaded_bytes: int
	represented_bytes: int

	def manifest_record(self, index_file_name: str) -> dict:
		return {
			"index": index_file_name,
			"size": self.index_size,
			"sha256": self.index_sha256,
			"files": self.files,
		}


@dataclass
class ContentCollection:
	"""What retention did with stored contents."""

	referenced: int = 0
	deleted: list[str] = field(default_factory=list)
	error: str = ""


class StoredContents:
	"""The contents a destination holds (sha256 -> size), from one complete listing, shared by threads."""

	def __init__(self, backend: StorageBackend, prefix: str, site: str):
		self.backend = backend
		self.folder = layout.content_prefix(prefix, site)
		self._lock = threading.Lock()
		self._sizes: dict[str, int] | None = None

	def refresh(self) -> dict[str, int]:
		sizes = {}
		for item in self.backend.list_objects(self.folder):
			sha256 = layout.parse_content_key(self.folder, item.key)
			if sha256:
				sizes[sha256] = item.size
		with self._lock:
			self._sizes = sizes
		return dict(sizes)

	def sizes(self) -> dict[str, int]:
		with self._lock:
			if self._sizes is not None:
				return dict(self._sizes)
		return self.refresh()

	def claim(self, sha256: str, size: int) -> bool:
		"""True if this caller should upload the content (not stored, not being uploaded)."""
		with self._lock:
			if self._sizes is None:
				raise AssertionError("sizes() first")
			if self._sizes.get(sha256) == size:
				return False
			self._sizes[sha256] = size
			return True


def store_archive(
	backend: StorageBackend,
	archive_path: str,
	artifact: Artifact,
	*,
	prefix: str,
	site: str,
	backup_id: str,
	contents: StoredContents,
	max_workers: int = 4,
	progress: Callable[[int], None] | None = None,
	index: FileIndex | None = None,
) -> StoredArchive | None:
	"""Store an archive as index + contents the store lacks; None if it cannot be rebuilt exactly.

	`index`: the archive's index made while the backup checked it (core.dedup.index_archive), so
	that the archive is not read twice; built here when absent or not this archive's.
	`progress`, if given, is called with the bytes of each content once it is stored, and at
	once with those the store already holds (from the upload threads).
	"""
	if index is None or index.archive_sha256 != artifact.sha256 or index.archive_size != artifact.size:
		index = build_index(archive_path, artifact.file_name, artifact.sha256)
	if index is None:
		return None
	data = index.to_bytes()
	index_key = layout.object_key(prefix, site, backup_id, index_name(artifact.file_name))
	backend.upload_bytes(data, index_key, metadata={"backup-id": backup_id, "kind": f"{artifact.kind}-index"})
	contents.sizes()
	todo, held = [], 0
	for entry, offset in read_content(archive_path, index):
		if contents.claim(entry.sha256, entry.size):
			todo.append((entry, offset))
		else:
			held += entry.size
	if progress and held:
		progress(held)

	def upload(item: tuple[IndexEntry, int]) -> int:
		entry, offset = item
		key = layout.content_key(prefix, site, entry.sha256)
		_upload_content(backend, archive_path, entry, offset, key)
		if progress:
			progress(entry.size)
		return entry.size

	with ThreadPoolExecutor(
		max_workers=max(MIN_CONTENT_UPLOAD_WORKERS, max_workers), thread_name_prefix="backup-manager-dedup"
	) as pool:
		uploaded = list(pool.map(upload, todo))
	# A concurrent retention could have removed a content we found stored: check them all.
	present = contents.refresh()
	missing = [
		entry for entry in index.entries if entry.has_content and present.get(entry.sha256) != entry.size
	]
	if missing:
		raise StorageError(
			f"{len(missing)} file(s) of {artifact.file_name} are not in the store after the upload, e.g. "
			f"{missing[0].path} (sha256 {missing[0].sha256}); this offsite copy stays incomplete."
		)
	return StoredArchive(
		index_key=index_key,
		index_size=len(data),
		index_sha256=hashlib.sha256(data).hexdigest(),
		files=sum(1 for entry in index.entries if entry.has_content),
		uploaded_files=len(uploaded),
		uploaded_bytes=sum(uploaded) + len(data),
		represented_bytes=artifact.size,
	)


def _upload_content(
	backend: StorageBackend, archive_path: str, entry: IndexEntry, offset: int, key: str
) -> None:
	with open(archive_path, "rb") as archive:
		archive.seek(offset)
		if entry.size <= IN_MEMORY_LIMIT:
			# The backend checks the bytes against the index's sha256 (the server itself, on S3).
			backend.upload_content(
				archive.read(entry.size), key, sha256=entry.sha256, metadata={"kind": "file-content"}
			)
			return
		with tempfile.NamedTemporaryFile(prefix="bm-content-", delete=False) as copy:
			remaining = entry.size
			while remaining:
				chunk = archive.read(min(1024 * 1024, remaining))
				if not chunk:
					raise ArtifactError(f"{archive_path} ends inside {entry.path}.")
				copy.write(chunk)
				remaining -= len(chunk)
	try:
		backend.upload_file(
			copy.name, key, size=entry.size, sha256=entry.sha256, metadata={"kind": "file-content"}
		)
	finally:
		os.remove(copy.name)


def read_index(backend: StorageBackend, key: str) -> FileIndex:
	"""Read an index from the store (untrusted: the archive rebuilt from it must match the manifest)."""
	return FileIndex.from_bytes(backend.read_bytes(key))


def check_contents(index: FileIndex, present: dict[str, int]) -> list[IndexEntry]:
	"""Return the index entries whose content is missing from the store or has another size."""
	return [entry for entry in index.entries if entry.has_content and present.get(entry.sha256) != entry.size]


def download_archive(
	backend: StorageBackend,
	index: FileIndex,
	*,
	prefix: str,
	site: str,
	target_path: str,
	expected_sha256: str,
	max_workers: int = DOWNLOAD_WORKERS,
) -> None:
	"""Rebuild an archive at target_path from its index and the stored contents, verifying each.

	Contents are fetched and checked (size, sha256) ahead by a few threads, in index order, while
	the archive is written in order and hashed whole against `expected_sha256` (from a trusted
	manifest). The window ahead is bounded in bytes: small contents wait in memory, larger ones
	in a private temporary folder, and each is dropped once its last use is written.
	"""
	work_dir = tempfile.mkdtemp(prefix="bm-contents-", dir=os.path.dirname(os.path.abspath(target_path)))
	uses: dict[str, int] = {}
	entries: dict[str, IndexEntry] = {}
	for entry in index.entries:
		if entry.has_content:
			uses[entry.sha256] = uses.get(entry.sha256, 0) + 1
			entries.setdefault(entry.sha256, entry)
	order = list(uses)
	futures: dict[str, Future] = {}
	pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="backup-manager-fetch")
	queued = 0
	window_bytes = 0

	def download(sha256: str) -> bytes | str:
		entry = entries[sha256]
		key = layout.content_key(prefix, site, sha256)
		try:
			if entry.size <= IN_MEMORY_LIMIT:
				data = backend.read_bytes(key)
				_check_content(entry, index, len(data), hashlib.sha256(data).hexdigest())
				return data
			path = os.path.join(work_dir, sha256)
			backend.download_file(key, path)
			_check_content(entry, index, os.path.getsize(path), sha256_file(path))
			return path
		except StorageError as exc:
			raise StorageError(
				f"{entry.path} of {index.archive} cannot be read from the store (content sha256 {sha256}): {exc}"
			) from exc

	def fill_window() -> None:
		nonlocal queued, window_bytes
		while queued < len(order) and len(futures) < max_workers * 4:
			size = entries[order[queued]].size
			if futures and window_bytes + size > DOWNLOAD_WINDOW_BYTES:
				return
			futures[order[queued]] = pool.submit(download, order[queued])
			window_bytes += size
			queued += 1

	ready: dict[str, bytes | str] = {}
	last_used: list[str] = []

	def fetch(sha256: str) -> bytes | str:
		nonlocal window_bytes
		for used in last_used:
			uses[used] -= 1
			if uses[used] == 0:
				found = ready.pop(used)
				window_bytes -= entries[used].size
				if isinstance(found, str):
					os.remove(found)
		last_used.clear()
		if sha256 not in ready:
			fill_window()
			ready[sha256] = futures.pop(sha256).result()
			fill_window()
		last_used.append(sha256)
		return ready[sha256]

	try:
		fill_window()
		rebuild_archive(index, fetch, target_path, expected_sha256=expected_sha256)
	finally:
		for future in futures.values():
			future.cancel()
		pool.shutdown(wait=True)
		shutil.rmtree(work_dir, ignore_errors=True)


def _check_content(entry: IndexEntry, index: FileIndex, size: int, sha256: str) -> None:
	if size != entry.size or sha256 != entry.sha256:
		raise ChecksumMismatch(
			f"The stored content of {entry.path} in {index.archive} (sha256 {entry.sha256}) is "
			f"damaged: it has {size} bytes and sha256 {sha256}."
		)


def collect_unreferenced_contents(
	backend: StorageBackend, *, prefix: str, site: str, dry_run: bool = False
) -> ContentCollection:
	"""Delete contents no index in the store references; a failed listing or index read deletes nothing.

	Contents are listed before indexes: an upload writes its index before its contents, so any
	content seen here belongs to an index the second listing sees.
	"""
	result = ContentCollection()
	contents = StoredContents(backend, prefix, site)
	folder = layout.site_prefix(prefix, site)
	try:
		present = contents.refresh()
		if not present:
			return result
		index_keys = []
		for item in backend.list_objects(folder):
			parsed = layout.parse_backup_key(folder, item.key)
			if parsed and parsed[1].endswith(INDEX_SUFFIX):
				index_keys.append(item.key)
		referenced: set[str] = set()
		for key in index_keys:
			referenced |= read_index(backend, key).content_hashes
	except (StorageError, ArtifactError) as exc:
		result.error = f"stored files were not collected, since {exc}"
		logger.warning("Offsite file collection on %s skipped: %s", backend.describe(), exc)
		return result
	result.referenced = len(referenced)
	unreferenced = sorted(sha256 for sha256 in present if sha256 not in referenced)
	keys = [layout.content_key(prefix, site, sha256) for sha256 in unreferenced]
	if keys and not dry_run:
		try:
			backend.delete_objects(keys)
		except StorageError as exc:
			result.error = str(exc)
			return result
		logger.info("Deleted %d stored file(s) no kept backup references", len(keys))
	result.deleted = keys
	return result
