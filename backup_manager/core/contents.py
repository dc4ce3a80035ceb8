"""What a backup holds, read while its artifacts are checked: table row counts and file statistics.

A restore drill compares these figures, recorded at backup time, with what the restored site holds.

Row counts come from the dump itself, so they describe exactly the snapshot that was restored.
mariadb-dump writes every INSERT at the start of a line and escapes newlines inside strings
(\\n), so a string never spans lines: complete lines can have their quoted strings blanked in
one regex pass, after which a value tuple is the only thing that opens a parenthesis (numbers,
NULL and hex literals hold none). Both layouts are handled: one statement per line (MySQL and
older MariaDB) and one tuple per line (MariaDB 10.11+).
"""

import hashlib
import heapq
import re
import tarfile
from dataclasses import dataclass, field

# A single-quoted SQL string with backslash escapes, never crossing a line.
QUOTED_STRING = re.compile(rb"'[^'\\\n]*(?:\\.[^'\\\n]*)*'")
STATEMENT_START = re.compile(rb"^(INSERT INTO|CREATE TABLE) `((?:[^`]|``)+)`", re.M)
STATEMENT_END = b";\n"
VALUES_KEYWORD = b"VALUES"
# How much of each piece of a tuple-per-line INSERT is checked to have a tuple on every line.
LAYOUT_SAMPLE = 64 * 1024

# Files whose content is hashed: all of them in a small backup, else this many chosen by name.
FILE_SAMPLE_SIZE = 64


class DumpParseError(ValueError):
	"""The dump does not have the shape mariadb-dump writes; its row counts cannot be trusted."""


class RowCounter:
	"""Count the rows of every table in a SQL dump fed as decompressed chunks, in order."""

	def __init__(self):
		self.counts: dict[str, int] = {}
		self._pending = b""
		self._table: str | None = None
		self._tuple_per_line = False
		# Set on the first parse error: feeding never raises, so the read that hashes goes on.
		self.error = ""

	def feed(self, data: bytes) -> None:
		"""Take the next decompressed bytes; only complete lines are parsed, the rest waits.

		The chunk is parsed in place (bounds, not slices): only a line begun in an earlier chunk
		is joined to its end and parsed on its own.
		"""
		if self.error:
			return
		end = data.rfind(b"\n") + 1
		if not end:
			self._pending += data
			return
		start = 0
		if self._pending:
			start = data.find(b"\n") + 1
			line, self._pending = self._pending + data[:start], b""
			self._parse_safely(line, 0, len(line))
		self._parse_safely(data, start, end)
		self._pending = data[end:]

	def finish(self) -> dict[str, int]:
		"""Parse what is left and return {table: rows}; raises DumpParseError if the dump was odd."""
		if self._pending and not self.error:
			line, self._pending = self._pending + b"\n", b""
			self._parse_safely(line, 0, len(line))
		if self.error:
			raise DumpParseError(self.error)
		if self._table is not None:
			raise DumpParseError(f"The dump ends inside the INSERT statement of table {self._table}")
		return dict(self.counts)

	def _parse_safely(self, text: bytes, position: int, limit: int) -> None:
		if self.error:
			return
		try:
			self._parse_lines(text, position, limit)
		except DumpParseError as exc:
			self.error = str(exc)

	def _parse_lines(self, text: bytes, position: int, limit: int) -> None:
		# text[position:limit] is whole lines. A raw newline never falls inside a string, so a
		# line start is never inside one, and a statement's end is the first ";\n" after its start.
		while position < limit:
			if self._table is not None:
				if self._tuple_per_line:
					position = self._count_lines(text, position, limit)
				else:
					position = self._count_values(text, position, limit)
				continue
			match = STATEMENT_START.search(text, position, limit)
			if not match:
				return
			table = match.group(2).replace(b"``", b"`").decode("utf-8", "replace")
			self.counts.setdefault(table, 0)
			position = match.end()
			if match.group(1) == b"INSERT INTO":
				line_end = text.find(b"\n", position, limit)
				values_at = text.find(VALUES_KEYWORD, position, line_end)
				if values_at < 0:
					raise DumpParseError(f"INSERT INTO `{table}` has no VALUES on its first line")
				self._table = table
				position = values_at + len(VALUES_KEYWORD)
				# MariaDB 10.11+: "VALUES" ends its line and each tuple is a line of its own.
				self._tuple_per_line = not text[position:line_end].strip()
				if self._tuple_per_line:
					position = line_end + 1

	def _count_lines(self, text: bytes, position: int, limit: int) -> int:
		"""Count tuples that are one per line: no string is parsed, only lines are counted."""
		end = text.find(STATEMENT_END, position, limit)
		stop = limit if end < 0 else end
		lines = text.count(b"\n", position, stop) + (1 if end >= 0 else 0)
		# Every line of the statement opens a tuple; anything else is not the layout assumed. The
		# layout is the dump's, not a row's: the first LAYOUT_SAMPLE bytes of each piece show it.
		if lines and (text[position : position + 1] != b"(" or not _lines_open_tuples(text, position, stop)):
			raise DumpParseError(f"A line of the INSERT statement of table {self._table} is not a tuple")
		self.counts[self._table] += lines
		if end < 0:
			return limit
		self._table = None
		return end + len(STATEMENT_END)

	def _count_values(self, text: bytes, position: int, limit: int) -> int:
		"""Count tuples on shared lines: strings are blanked first, then each "(" opens a tuple."""
		end = text.find(STATEMENT_END, position, limit)
		stop = limit if end < 0 else end
		blanked = QUOTED_STRING.sub(b"''", text[position:stop])
		# Blanked strings leave quote pairs: an odd count is a quote the pattern could not close.
		if blanked.count(b"'") % 2:
			raise DumpParseError(f"An unterminated string in the INSERT statement of table {self._table}")
		self.counts[self._table] += blanked.count(b"(")
		if end < 0:
			return limit
		self._table = None
		return end + len(STATEMENT_END)


def _lines_open_tuples(text: bytes, position: int, stop: int) -> bool:
	"""True if, in the first LAYOUT_SAMPLE bytes of text[position:stop], every line after a newline opens a tuple."""
	sample_stop = min(stop, position + LAYOUT_SAMPLE)
	# A newline in the sample's last byte has no next byte in it: neither count sees it.
	return text.count(b"\n", position, sample_stop - 1) == text.count(b"\n(", position, sample_stop)


@dataclass
class FileStats:
	"""The regular files of one files archive: how many, their total bytes, a sample of hashes."""

	count: int = 0
	total_bytes: int = 0
	samples: dict[str, str] = field(default_factory=dict)


def files_relative_path(member_name: str) -> str:
	"""A tar member's path below its files folder: './site/public/files/a/b.pdf' -> 'a/b.pdf'."""
	parts = [part for part in member_name.split("/") if part not in ("", ".")]
	for index in range(1, len(parts)):
		if parts[index] == "files" and parts[index - 1] in ("public", "private"):
			return "/".join(parts[index + 1 :])
	return "/".join(parts)


def sample_key(relative_path: str) -> str:
	"""The order samples are chosen in: by hash of the name, so any copy of the set picks the same."""
	return hashlib.sha256(relative_path.encode("utf-8", "surrogateescape")).hexdigest()


class FileStatsCollector:
	"""Collect FileStats from tar members as they are read: every file counted, a sample hashed.

	The sample is the FILE_SAMPLE_SIZE files with the smallest sample_key: the same files
	whatever order the archive lists them in, and every file when there are fewer.
	"""

	def __init__(self, sample_size: int = FILE_SAMPLE_SIZE):
		self.sample_size = sample_size
		self.stats = FileStats()
		# Max-heap by key (negated) of (key, path, sha256): the current smallest keys.
		self._heap: list[tuple[str, str, str]] = []

	def add_member(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
		if not member.isfile():
			return
		relative_path = files_relative_path(member.name)
		self.stats.count += 1
		self.stats.total_bytes += member.size
		key = _negate(sample_key(relative_path))
		if len(self._heap) >= self.sample_size and key <= self._heap[0][0]:
			return
		digest = hashlib.sha256()
		handle = archive.extractfile(member)
		while chunk := handle.read(1024 * 1024):
			digest.update(chunk)
		entry = (key, relative_path, digest.hexdigest())
		if len(self._heap) >= self.sample_size:
			heapq.heapreplace(self._heap, entry)
		else:
			heapq.heappush(self._heap, entry)

	def finish(self) -> FileStats:
		self.stats.samples = {path: sha256 for _key, path, sha256 in sorted(self._heap, key=lambda e: e[1])}
		return self.stats


def _negate(hex_key: str) -> str:
	# heapq is a min-heap; the complement of each hex digit reverses the order of equal-length keys.
	return hex_key.translate(str.maketrans("0123456789abcdef", "fedcba9876543210"))
