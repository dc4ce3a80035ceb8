import gzip
import os
import shutil
import subprocess
import tempfile
import unittest

from backup_manager.core import compression
from backup_manager.core.compression import (
	BALANCED,
	FAST,
	GZIP,
	IGZIP,
	PIGZ,
	SMALL,
	Compressor,
	choose_compressor,
	compression_level,
	compressor_as_gzip,
	find_compressor,
	which_real,
)
from backup_manager.core.errors import InvalidPolicy

# Text shaped like a dump: repetitive enough that the level changes the size.
SAMPLE = b"".join(
	b"INSERT INTO `tabToDo` VALUES ('TD-%06d','2026-12-03 03:00:00','Administrator','Open','Call %d');\n"
	% (index, index * 7919 % 1000)
	for index in range(60_000)
)


def without_mtime(data: bytes) -> bytes:
	"""A gzip stream with its header's MTIME zeroed: pigz and igzip stamp the time when reading stdin."""
	return data[:4] + bytes(4) + data[8:]


class TestLevels(unittest.TestCase):
	def test_each_setting_has_its_level_and_empty_means_the_default(self):
		self.assertEqual(compression_level(FAST), 1)
		self.assertEqual(compression_level(BALANCED), 3)
		self.assertEqual(compression_level(SMALL), 9)
		self.assertEqual(compression_level(""), compression_level(compression.DEFAULT_SETTING))
		self.assertEqual(compression_level(None), 3)

	def test_unknown_setting_names_the_field_and_the_choices(self):
		with self.assertRaises(InvalidPolicy) as raised:
			compression_level("Turbo")
		self.assertEqual(raised.exception.field, "compression")
		self.assertIn("Fast, Balanced, Small", str(raised.exception))

	def test_pigz_on_every_core_when_installed_gzip_otherwise(self):
		pigz = choose_compressor(FAST, pigz_path="/usr/bin/pigz", gzip_path="/bin/gzip", cpu_count=8)
		self.assertEqual(pigz, Compressor(PIGZ, "/usr/bin/pigz", 1, threads=8))
		self.assertEqual(pigz.argv(), ["/usr/bin/pigz", "-1", "-p", "8"])
		plain = choose_compressor(SMALL, pigz_path=None, gzip_path="/bin/gzip", cpu_count=8)
		self.assertEqual(plain.argv(), ["/bin/gzip", "-9"])
		self.assertEqual(plain.threads, 1)
		with self.assertRaises(FileNotFoundError):
			choose_compressor(FAST, pigz_path=None, gzip_path=None, cpu_count=2)

	def test_igzip_serves_fast_and_balanced_on_its_own_scale_and_small_goes_to_pigz(self):
		paths = {"igzip_path": "/usr/bin/igzip", "pigz_path": "/usr/bin/pigz", "gzip_path": "/bin/gzip"}
		fast = choose_compressor(FAST, **paths, cpu_count=4)
		self.assertEqual(fast.argv(), ["/usr/bin/igzip", "-1", "-T", "4"])
		balanced = choose_compressor(None, **paths, cpu_count=4)
		self.assertEqual((balanced.program, balanced.level), (IGZIP, 3))
		# igzip stops at level 3: Small needs deflate's level 9.
		small = choose_compressor(SMALL, **paths, cpu_count=4)
		self.assertEqual(small.argv(), ["/usr/bin/pigz", "-9", "-p", "4"])
		small_without_pigz = choose_compressor(
			SMALL, igzip_path="/usr/bin/igzip", pigz_path=None, gzip_path="/bin/gzip", cpu_count=4
		)
		self.assertEqual(small_without_pigz.argv(), ["/bin/gzip", "-9"])

	def test_versions_are_read_from_each_programs_banner(self):
		folder = tempfile.mkdtemp()
		self.addCleanup(shutil.rmtree, folder)
		banners = {
			"igzip": "igzip command line interface 2.30.0",
			"pigz": "pigz 2.6",
			"gzip": "gzip 1.12\nCopyright (C) 2018 Free Software Foundation, Inc.",
			"silent": "",
		}
		for name, banner in banners.items():
			path = os.path.join(folder, name)
			with open(path, "w") as handle:
				handle.write(f"#!/bin/sh\nprintf '{banner}\\n'\n")
			os.chmod(path, 0o700)
		self.assertEqual(compression.read_version(os.path.join(folder, "igzip")), "2.30.0")
		self.assertEqual(compression.read_version(os.path.join(folder, "pigz")), "2.6")
		self.assertEqual(compression.read_version(os.path.join(folder, "gzip")), "1.12")
		self.assertEqual(compression.read_version(os.path.join(folder, "silent")), "")
		self.assertEqual(compression.read_version(os.path.join(folder, "missing")), "")

	def test_description_names_program_version_and_threads(self):
		self.assertEqual(Compressor(PIGZ, "/p", 3, 2, "2.6").describe(), "pigz 2.6, 2 threads")
		self.assertEqual(Compressor(PIGZ, "/p", 3, 1, "2.6").describe(), "pigz 2.6, 1 thread")
		self.assertEqual(Compressor(GZIP, "/g", 3, 1, "1.12").describe(), "gzip 1.12")
		self.assertEqual(Compressor(IGZIP, "/i", 3, 2, "2.30.0").describe(), "igzip 2.30.0, 2 threads")


@unittest.skipUnless(shutil.which("gzip"), "needs gzip")
class TestGzipSwap(unittest.TestCase):
	def setUp(self):
		self.dir = tempfile.mkdtemp()
		self.addCleanup(shutil.rmtree, self.dir)
		self.path_before = os.environ.get("PATH")

	def compress_with_gzip_on_path(self) -> bytes:
		"""What Frappe does: a shell pipeline calling plain `gzip`."""
		source = os.path.join(self.dir, "dump.sql")
		with open(source, "wb") as handle:
			handle.write(SAMPLE)
		result = subprocess.run(
			["bash", "-c", 'set -o pipefail; cat "$1" | gzip', "bash", source],
			capture_output=True,
			check=True,
		)
		return result.stdout

	def test_wrapper_is_what_which_finds_only_inside_the_block_and_path_is_restored(self):
		compressor = find_compressor(FAST)
		with compressor_as_gzip(compressor) as wrapper:
			self.assertEqual(shutil.which("gzip"), wrapper)
			folder = os.path.dirname(wrapper)
			self.assertEqual(os.stat(folder).st_mode & 0o777, 0o700)
			self.assertEqual(os.stat(wrapper).st_mode & 0o777, 0o700)
			# A lookup for the real program skips the wrapper, so a wrapper never runs itself.
			self.assertNotEqual(which_real("gzip"), wrapper)
		self.assertEqual(os.environ.get("PATH"), self.path_before)
		self.assertFalse(os.path.exists(folder))
		self.assertNotEqual(shutil.which("gzip"), wrapper)

	def test_the_chosen_level_is_applied_and_the_output_is_standard_gzip(self):
		sizes = {}
		for setting in (FAST, SMALL):
			with compressor_as_gzip(find_compressor(setting)):
				output = self.compress_with_gzip_on_path()
			self.assertEqual(gzip.decompress(output), SAMPLE)
			sizes[setting] = len(output)
		plain = self.compress_with_gzip_on_path()
		self.assertEqual(gzip.decompress(plain), SAMPLE)
		# Level 1 output is larger than level 9: the level reached the compressor.
		self.assertGreater(sizes[FAST], sizes[SMALL])
		self.assertEqual(os.environ.get("PATH"), self.path_before)

	def assert_runs_in_place_of_gzip(self, compressor: Compressor, thread_option: str):
		self.assertTrue(compressor.version)
		with compressor_as_gzip(compressor) as wrapper:
			with open(wrapper) as handle:
				script = handle.read()
			swapped = self.compress_with_gzip_on_path()
		self.assertIn(
			f'exec {compressor.path} -{compressor.level} {thread_option} {compressor.threads} "$@"', script
		)
		self.assertEqual(gzip.decompress(swapped), SAMPLE)
		return swapped

	@unittest.skipUnless(shutil.which("pigz"), "needs pigz")
	def test_pigz_runs_with_the_level_and_threads_in_place_of_gzip(self):
		compressor = find_compressor(SMALL)
		self.assertEqual(compressor.program, PIGZ)
		swapped = self.assert_runs_in_place_of_gzip(compressor, "-p")
		direct = subprocess.run(compressor.argv(), input=SAMPLE, capture_output=True, check=True).stdout
		self.assertEqual(without_mtime(swapped), without_mtime(direct))

	@unittest.skipUnless(shutil.which("igzip"), "needs igzip (apt-get install isal)")
	def test_igzip_runs_in_place_of_gzip_and_its_levels_differ(self):
		outputs = {}
		for setting in (FAST, BALANCED):
			compressor = find_compressor(setting)
			self.assertEqual(compressor.program, IGZIP)
			swapped = self.assert_runs_in_place_of_gzip(compressor, "-T")
			direct = subprocess.run(compressor.argv(), input=SAMPLE, capture_output=True, check=True)
			self.assertEqual(without_mtime(swapped), without_mtime(direct.stdout))
			outputs[setting] = without_mtime(swapped)
			tested = subprocess.run(["gzip", "-t"], input=swapped, capture_output=True, check=False)
			self.assertEqual(tested.returncode, 0, tested.stderr)
		# The two levels write different streams: the level reached igzip.
		self.assertNotEqual(outputs[FAST], outputs[BALANCED])

	def test_a_path_change_made_meanwhile_is_kept(self):
		with compressor_as_gzip(find_compressor(FAST)) as wrapper:
			os.environ["PATH"] = os.environ["PATH"] + os.pathsep + "/opt/extra-bin"
		self.addCleanup(os.environ.__setitem__, "PATH", self.path_before)
		self.assertEqual(os.environ["PATH"], self.path_before + os.pathsep + "/opt/extra-bin")
		self.assertNotIn(os.path.dirname(wrapper), os.environ["PATH"])


if __name__ == "__main__":
	unittest.main()
