"""Row counts read from real mariadb-dump output, and file statistics read from real tars."""

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import unittest

from backup_manager.core import checksums
from backup_manager.core.contents import (
	DumpParseError,
	FileStatsCollector,
	RowCounter,
	files_relative_path,
	sample_key,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
# What the fixture databases hold (see the INSERTs that made them in the fixtures themselves).
TUPLE_FIXTURE_COUNTS = {"__Auth": 2, "tabEmpty": 0, "tabNote": 6}


def read_fixture(name: str) -> bytes:
	with open(os.path.join(FIXTURES, name), "rb") as handle:
		return handle.read()


def count_in_chunks(data: bytes, size: int) -> dict[str, int]:
	counter = RowCounter()
	for start in range(0, len(data), size):
		counter.feed(data[start : start + size])
	return counter.finish()


class TestRowCounter(unittest.TestCase):
	def test_mariadb_tuple_per_line_dump_is_counted_per_table(self):
		data = read_fixture("mariadb-dump-tuple-per-line.sql")
		self.assertEqual(count_in_chunks(data, len(data)), TUPLE_FIXTURE_COUNTS)

	def test_counts_do_not_depend_on_where_chunks_split(self):
		data = read_fixture("mariadb-dump-tuple-per-line.sql")
		for size in (1, 2, 3, 7, 64, 1000):
			self.assertEqual(count_in_chunks(data, size), TUPLE_FIXTURE_COUNTS, size)

	def test_small_net_buffer_dump_counts_the_same(self):
		data = read_fixture("mariadb-dump-small-buffer.sql")
		self.assertEqual(count_in_chunks(data, 5), TUPLE_FIXTURE_COUNTS)

	def test_quotes_escapes_and_statements_inside_strings_are_not_rows(self):
		# One statement per row; a value holds an escaped quote, ");" and a whole INSERT statement.
		data = read_fixture("mariadb-dump-one-row-per-statement.sql")
		self.assertEqual(count_in_chunks(data, 11), {"tab Semi`colon": 2})

	def test_single_line_extended_insert(self):
		data = (
			b"CREATE TABLE `tabA` (\n  `x` text\n);\n"
			b"INSERT INTO `tabA` VALUES ('a\\'),(b'),('c'),(NULL),(0x28);\n"
			b"INSERT INTO `tabA` VALUES ('d');\n"
		)
		self.assertEqual(count_in_chunks(data, 4), {"tabA": 5})

	def test_a_dump_cut_inside_an_insert_is_an_error(self):
		data = read_fixture("mariadb-dump-tuple-per-line.sql")
		cut = data[: data.index(b"('c',")]
		with self.assertRaises(DumpParseError):
			count_in_chunks(cut, 100)

	def test_an_unterminated_string_is_an_error(self):
		data = b"INSERT INTO `tabA` VALUES ('a'),('b);\nINSERT INTO `tabB` VALUES (1);\n"
		with self.assertRaises(DumpParseError):
			count_in_chunks(data, len(data))

	def test_a_long_tuple_per_line_statement_is_counted_across_any_chunking(self):
		rows = [f"({index},'{'x' * (index % 97)}\\n;'),".encode() for index in range(20_000)]
		rows[-1] = rows[-1][:-1] + b";"
		data = b"INSERT INTO `tabBig` VALUES\n" + b"\n".join(rows) + b"\nINSERT INTO `tabB` VALUES (1),(2);\n"
		self.assertGreater(len(data), 10 * 64 * 1024)
		for size in (1000, 65_536, 100_003, len(data)):
			self.assertEqual(count_in_chunks(data, size), {"tabBig": 20_000, "tabB": 2}, size)

	def test_a_line_that_is_not_a_tuple_is_an_error(self):
		data = read_fixture("mariadb-dump-tuple-per-line.sql")
		first_tuple = data.index(b"INSERT INTO `tabNote` VALUES\n(") + len(b"INSERT INTO `tabNote` VALUES\n")
		second_tuple = data.index(b"\n(", first_tuple) + 1
		broken = data[:second_tuple] + b"-- not a tuple\n" + data[second_tuple:]
		for size in (7, len(broken)):
			with self.assertRaises(DumpParseError):
				count_in_chunks(broken, size)

	def test_gzip_pass_hashes_checks_and_counts_in_one_read(self):
		data = read_fixture("mariadb-dump-tuple-per-line.sql")
		# Frappe writes its header and the dump as two gzip members.
		payload = gzip.compress(b"-- begin frappe metadata\n") + gzip.compress(data)
		directory = tempfile.mkdtemp()
		self.addCleanup(shutil.rmtree, directory)
		path = os.path.join(directory, "db.sql.gz")
		with open(path, "wb") as handle:
			handle.write(payload)
		counter = RowCounter()
		digest = checksums.sha256_gzip_file(path, consumers=[counter.feed])
		self.assertEqual(digest, hashlib.sha256(payload).hexdigest())
		self.assertEqual(counter.finish(), TUPLE_FIXTURE_COUNTS)
		counter = RowCounter()
		checksums.verify_gzip_complete(path, consumers=[counter.feed])
		self.assertEqual(counter.finish(), TUPLE_FIXTURE_COUNTS)


class TestFileStats(unittest.TestCase):
	def setUp(self):
		self.dir = tempfile.mkdtemp()
		self.addCleanup(shutil.rmtree, self.dir)

	def make_tar(self, files: dict[str, bytes], name="files.tar", mode="w") -> str:
		path = os.path.join(self.dir, name)
		with tarfile.open(path, mode) as archive:
			folder = tarfile.TarInfo("./site.localhost/public/files/sub")
			folder.type = tarfile.DIRTYPE
			archive.addfile(folder)
			for member_name, content in files.items():
				info = tarfile.TarInfo(f"./site.localhost/public/files/{member_name}")
				info.size = len(content)
				archive.addfile(info, io.BytesIO(content))
		return path

	def test_small_set_is_counted_and_every_file_hashed(self):
		files = {"a.txt": b"alpha", "sub/b.bin": os.urandom(3000), "c": b""}
		path = self.make_tar(files, "files.tgz", "w:gz")
		collector = FileStatsCollector()
		self.assertEqual(checksums.verify_tar_readable(path, on_member=collector.add_member), 4)
		stats = collector.finish()
		self.assertEqual(stats.count, 3)
		self.assertEqual(stats.total_bytes, sum(len(content) for content in files.values()))
		self.assertEqual(
			stats.samples, {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
		)

	def test_large_set_samples_the_same_files_whatever_the_order(self):
		files = {f"f{index}.txt": str(index).encode() for index in range(40)}
		forward = FileStatsCollector(sample_size=8)
		checksums.verify_tar_readable(self.make_tar(files, "a.tar"), on_member=forward.add_member)
		backward = FileStatsCollector(sample_size=8)
		reversed_files = dict(reversed(list(files.items())))
		checksums.verify_tar_readable(self.make_tar(reversed_files, "b.tar"), on_member=backward.add_member)
		forward_stats, backward_stats = forward.finish(), backward.finish()
		self.assertEqual(len(forward_stats.samples), 8)
		self.assertEqual(forward_stats.samples, backward_stats.samples)
		self.assertEqual(forward_stats.count, 40)
		# The sample is the files whose names hash lowest.
		self.assertEqual(set(forward_stats.samples), set(sorted(files, key=sample_key)[:8]))
		for name, sha256 in forward_stats.samples.items():
			self.assertEqual(sha256, hashlib.sha256(files[name]).hexdigest())

	def test_member_paths_are_relative_to_the_files_folder(self):
		self.assertEqual(files_relative_path("./s.localhost/private/files/a/b.pdf"), "a/b.pdf")
		self.assertEqual(files_relative_path("s/public/files/x"), "x")
