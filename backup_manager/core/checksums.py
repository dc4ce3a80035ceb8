"""Streaming checksums and integrity checks for backup artifacts."""

import gzip
import hashlib
import os
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable
from typing import BinaryIO

from backup_manager.core.errors import ArtifactError, ChecksumMismatch

try:
	# ISA-L's inflate (package isal): zlib's results and errors in about half of zlib's CPU, with
	# the GIL released. A backup's dump is decompressed while it is written, beside the dump itself.
	from isal import isal_zlib as inflate_zlib
except ImportError:  # pragma: no cover - isal is in requirements.txt; zlib does the same, slower
	inflate_zlib = zlib

INFLATE_ERRORS = (zlib.error, inflate_zlib.error)
# 1 MiB reads keep memory flat whatever the artifact size.
CHUNK_SIZE = 1024 * 1024


def sha256_file(path: str) -> str:
	"""Return the hex sha256 of a file, read in fixed-size chunks."""
	digest = hashlib.sha256()
	with open(path, "rb") as handle:
		while chunk := handle.read(CHUNK_SIZE):
			digest.update(chunk)
	return digest.hexdigest()


def verify_size_and_sha256(path: str, expected_size: int, expected_sha256: str) -> None:
	"""Raise unless the file exists with exactly the recorded size and sha256."""
	if not os.path.isfile(path):
		raise ArtifactError(f"{path} is missing")
	size = os.path.getsize(path)
	if size != expected_size:
		raise ChecksumMismatch(f"{path} is {size} bytes, the backup recorded {expected_size}")
	actual = sha256_file(path)
	if actual != expected_sha256:
		raise ChecksumMismatch(f"{path} has sha256 {actual}, the backup recorded {expected_sha256}")


def verify_gzip_complete(path: str, consumers: Iterable[Callable[[bytes], None]] = ()) -> None:
	"""Raise unless the file is a gzip stream that decompresses to its end (not truncated).

	Each of `consumers` gets the decompressed bytes in order (to count rows in the same read).
	"""
	consumers = list(consumers)
	try:
		with gzip.open(path, "rb") as handle:
			while data := handle.read(CHUNK_SIZE):
				for consumer in consumers:
					consumer(data)
	except (OSError, EOFError, zlib.error) as exc:
		raise ArtifactError(f"{os.path.basename(path)} is not a complete gzip file: {exc}") from exc


def sha256_gzip_file(path: str, consumers: Iterable[Callable[[bytes], None]] = ()) -> str:
	"""Hash a gzip file and check that it decompresses to its end, in a single read.

	Frappe writes a database dump as two gzip members (its header, then mysqldump's output),
	so every member is followed. Decompressed output is bounded to CHUNK_SIZE at a time; each
	of `consumers` is called with every decompressed chunk in order (the text gunzip would
	print), so another check of the dump can share this one read.
	"""
	with open(path, "rb") as handle:
		return sha256_gzip_stream(handle, os.path.basename(path), consumers)


def sha256_gzip_stream(handle: BinaryIO, name: str, consumers: Iterable[Callable[[bytes], None]] = ()) -> str:
	"""sha256_gzip_file over an open binary stream (a file, or a GrowingFile still being written)."""
	consumers = list(consumers)
	digest = hashlib.sha256()
	decompressor, fed = inflate_zlib.decompressobj(wbits=31), False
	try:
		while chunk := handle.read(CHUNK_SIZE):
			digest.update(chunk)
			pending = chunk
			while pending:
				fed = True
				output = decompressor.decompress(pending, CHUNK_SIZE)
				for consumer in consumers:
					consumer(output)
				pending = decompressor.unconsumed_tail
				if decompressor.eof:
					pending = decompressor.unused_data + pending
					decompressor, fed = inflate_zlib.decompressobj(wbits=31), False
	except INFLATE_ERRORS as exc:
		raise ArtifactError(f"{name} is not a complete gzip file: {exc}") from exc
	if fed and not decompressor.eof:
		raise ArtifactError(f"{name} is not a complete gzip file: it ends in the middle of a stream")
	return digest.hexdigest()


class GrowingFile:
	"""A binary file read while another process still appends to it, to its end once `finished` is set.

	read() waits (polling) for more bytes until the writer is done, so a check can read a dump as
	it is written instead of after. Bytes read after `finished` complete the file: an empty read
	then is its true end.
	"""

	def __init__(self, path: str, finished: threading.Event, poll_seconds: float = 0.05):
		self.path = path
		self.finished = finished
		self.poll_seconds = poll_seconds
		self._handle: BinaryIO | None = None

	def __enter__(self) -> "GrowingFile":
		return self

	def __exit__(self, *_exc) -> None:
		if self._handle is not None:
			self._handle.close()

	def _open(self) -> BinaryIO | None:
		if self._handle is None:
			try:
				self._handle = open(self.path, "rb")  # noqa: SIM115 - closed by __exit__
			except FileNotFoundError:
				return None
		return self._handle

	def read(self, size: int) -> bytes:
		while True:
			# Read `finished` before reading the file: bytes written before it was set are seen.
			done = self.finished.is_set()
			handle = self._open()
			if handle is None:
				if done:
					raise ArtifactError(f"{os.path.basename(self.path)} was not written")
			else:
				chunk = handle.read(size)
				if chunk or done:
					return chunk
			self.finished.wait(self.poll_seconds)


def verify_tar_readable(
	path: str, on_member: Callable[[tarfile.TarFile, tarfile.TarInfo], None] | None = None
) -> int:
	"""Raise unless every member header of the tar (plain or gzipped) can be read; return the count.

	`on_member`, if given, sees each member as it is read (to count and sample files in the same pass).
	"""
	count = 0
	try:
		with tarfile.open(path, "r:*") as archive:
			for member in archive:
				count += 1
				if on_member:
					on_member(archive, member)
		return count
	except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
		raise ArtifactError(f"{os.path.basename(path)} is not a readable tar archive: {exc}") from exc


def format_size(size: int) -> str:
	"""Return a byte count in human units (1024-based), e.g. 1.5 MiB."""
	value = float(size)
	for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
		if value < 1024 or unit == "TiB":
			return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
		value /= 1024
	return f"{size} B"
