"""Deduplicated file archives: every attachment stored once offsite, by content hash.

A files archive (files.tar, private-files.tar) is split into the bytes that change rarely (the
content of each file) and the bytes that describe it (each member's tar header blocks, and the
end-of-archive blocks). Contents go to `<prefix>/<site>/files/sha256/<ab>/<sha256>`, once per
destination; the headers, with path, size, mode, mtime and sha256 of every file, go into a file
index (`<archive>.index.json.gz`) next to the backup's other objects. Concatenating the headers
and contents in index order gives back the archive byte for byte, so its sha256 is the one the
manifest recorded and `bench restore --with-public-files` takes it unchanged. An archive whose
bytes cannot be rebuilt exactly (compressed, encrypted, sparse members, non-zero padding) is
uploaded whole, as without deduplication.
"""

import base64
import gzip
import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from backup_manager.core.errors import ArtifactError, ChecksumMismatch
from backup_manager.core.private_files import open_new_private_file

INDEX_FORMAT = 1
INDEX_SUFFIX = ".index.json.gz"
BLOCK = 512
CHUNK_SIZE = 1024 * 1024
SHA256_HEX_LENGTH = 64


@dataclass
class IndexEntry:
	path: str
	size: int
	mode: int
	mtime: int
	# sha256 of the content ("" for a member without content: a folder, a link, an empty file).
	sha256: str
	# The member's header blocks as they are in the archive (base64).
	header: str

	@property
	def has_content(self) -> bool:
		return bool(self.sha256)


@dataclass
class FileIndex:
	archive: str
	archive_size: int
	archive_sha256: str
	entries: list[IndexEntry] = field(default_factory=list)
	# What follows the last member: end-of-archive blocks and record padding (zeros).
	trailer_zero_bytes: int = 0
	format: int = INDEX_FORMAT

	@property
	def content_hashes(self) -> set[str]:
		return {entry.sha256 for entry in self.entries if entry.has_content}

	@property
	def content_sizes(self) -> dict[str, int]:
		return {entry.sha256: entry.size for entry in self.entries if entry.has_content}

	def to_bytes(self) -> bytes:
		data = {
			"format": self.format,
			"archive": self.archive,
			"archive_size": self.archive_size,
			"archive_sha256": self.archive_sha256,
			"trailer_zero_bytes": self.trailer_zero_bytes,
			"entries": [entry.__dict__ for entry in self.entries],
		}
		# mtime=0: the same index gives the same bytes.
		return gzip.compress(json.dumps(data, separators=(",", ":")).encode(), mtime=0)

	@classmethod
	def from_bytes(cls, data: bytes) -> "FileIndex":
		"""Parse an index read from the store (untrusted: every field is checked)."""
		try:
			raw = json.loads(gzip.decompress(data))
			if raw.get("format", INDEX_FORMAT) > INDEX_FORMAT:
				raise ValueError(f"index format {raw['format']} is newer than this Backup Manager")
			index = cls(
				archive=str(raw["archive"]),
				archive_size=int(raw["archive_size"]),
				archive_sha256=str(raw["archive_sha256"]),
				trailer_zero_bytes=int(raw["trailer_zero_bytes"]),
				entries=[
					IndexEntry(
						path=str(item["path"]),
						size=int(item["size"]),
						mode=int(item["mode"]),
						mtime=int(item["mtime"]),
						sha256=str(item["sha256"]),
						header=str(item["header"]),
					)
					for item in raw["entries"]
				],
			)
		except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
			raise ArtifactError(f"The file index cannot be read: {exc}") from exc
		for entry in index.entries:
			if entry.sha256 and (
				len(entry.sha256) != SHA256_HEX_LENGTH
				or any(c not in "0123456789abcdef" for c in entry.sha256)
			):
				raise ArtifactError(f"The file index names {entry.path!r} with an invalid sha256.")
			if entry.size < 0 or (entry.size and not entry.sha256):
				raise ArtifactError(f"The file index records an invalid size for {entry.path!r}.")
		if index.trailer_zero_bytes < 0 or index.trailer_zero_bytes > 64 * BLOCK * 20:
			raise ArtifactError("The file index records an invalid archive trailer.")
		return index


def index_name(archive_file_name: str) -> str:
	return f"{archive_file_name}{INDEX_SUFFIX}"


def _padding(size: int) -> int:
	return (BLOCK - size % BLOCK) % BLOCK


def build_index(archive_path: str, archive_file_name: str, expected_sha256: str) -> FileIndex | None:
	"""Index an uncompressed tar so that it can be rebuilt byte for byte; None if it cannot be."""
	sha256, index = index_archive(archive_path, archive_file_name)
	return index if index is not None and sha256 == expected_sha256 else None


def index_archive(archive_path: str, archive_file_name: str) -> tuple[str, FileIndex | None]:
	"""Hash a files archive and, in the same read, index it: (sha256 of the file, index or None).

	The index is None when the archive cannot be rebuilt byte for byte (compressed, encrypted,
	sparse members, non-zero padding); the sha256 is the whole file's in every case.
	"""
	whole = hashlib.sha256()
	with open(archive_path, "rb") as raw:
		index = _index_while_hashing(raw, archive_path, archive_file_name, whole)
		# Whatever the index did not read (all of it, for an archive that cannot be indexed).
		while chunk := raw.read(CHUNK_SIZE):
			whole.update(chunk)
	sha256 = whole.hexdigest()
	if index is not None:
		index.archive_sha256 = sha256
	return sha256, index


def _index_while_hashing(raw, archive_path: str, archive_file_name: str, whole) -> FileIndex | None:
	"""Read the tar from `raw` in order, feeding `whole`; stop (returning None) where it is not indexable."""
	entries = []
	try:
		with tarfile.open(archive_path, mode="r:") as archive:
			position = 0
			for member in archive:
				if member.sparse is not None or member.offset != position:
					return None
				header = raw.read(member.offset_data - member.offset)
				whole.update(header)
				content_hash = ""
				if member.isreg() and member.size:
					digest = hashlib.sha256()
					remaining = member.size
					while remaining:
						chunk = raw.read(min(CHUNK_SIZE, remaining))
						if not chunk:
							return None
						digest.update(chunk)
						whole.update(chunk)
						remaining -= len(chunk)
					content_hash = digest.hexdigest()
					padding = raw.read(_padding(member.size))
					whole.update(padding)
					if padding.strip(b"\0"):
						return None
				elif member.size and not member.isreg():
					return None
				position = member.offset_data + member.size + (_padding(member.size) if member.size else 0)
				entries.append(
					IndexEntry(
						path=member.name,
						size=member.size if member.isreg() else 0,
						mode=member.mode,
						mtime=int(member.mtime),
						sha256=content_hash,
						header=base64.b64encode(header).decode(),
					)
				)
	except (tarfile.TarError, OSError):
		return None
	if raw.tell() != position:
		return None
	trailer = raw.read()
	whole.update(trailer)
	if trailer.strip(b"\0"):
		return None
	return FileIndex(
		archive=archive_file_name,
		archive_size=position + len(trailer),
		archive_sha256="",
		entries=entries,
		trailer_zero_bytes=len(trailer),
	)


def read_content(archive_path: str, index: FileIndex) -> Iterator[tuple[IndexEntry, int]]:
	"""Yield (entry, offset of its content in the archive) for every entry with content."""
	position = 0
	for entry in index.entries:
		position += len(base64.b64decode(entry.header))
		if entry.has_content:
			yield entry, position
		position += entry.size + (_padding(entry.size) if entry.size else 0)


def rebuild_archive(
	index: FileIndex, content: Callable[[str], bytes | str], target_path: str, *, expected_sha256: str
) -> None:
	"""Write the archive from the index and the stored contents; its sha256 must be `expected_sha256`.

	`content(sha256)` returns that content, already checked against its size and sha256 by the
	caller: its bytes, or the path of a local copy. The whole archive is hashed as it is written,
	so a wrong header in the index cannot pass either. `expected_sha256` comes from a trusted
	manifest (the index itself is untrusted).
	"""
	if index.archive_sha256 != expected_sha256:
		raise ChecksumMismatch(
			f"The file index of {index.archive} describes an archive with sha256 {index.archive_sha256}, "
			f"the backup recorded {expected_sha256}: it belongs to another backup or was altered."
		)
	whole = hashlib.sha256()
	# Opened exclusively, without following symlinks, 0600 (core.private_files).
	with open_new_private_file(target_path) as target:
		for entry in index.entries:
			header = base64.b64decode(entry.header)
			target.write(header)
			whole.update(header)
			if not entry.has_content:
				continue
			found = content(entry.sha256)
			if isinstance(found, bytes):
				whole.update(found)
				target.write(found)
			else:
				with open(found, "rb") as copy:
					while chunk := copy.read(CHUNK_SIZE):
						whole.update(chunk)
						target.write(chunk)
			padding = b"\0" * _padding(entry.size)
			target.write(padding)
			whole.update(padding)
		trailer = b"\0" * index.trailer_zero_bytes
		target.write(trailer)
		whole.update(trailer)
	if whole.hexdigest() != expected_sha256:
		raise ChecksumMismatch(
			f"{index.archive} rebuilt from its file index has sha256 {whole.hexdigest()}, the backup "
			f"recorded {expected_sha256}."
		)
