"""A failed run stops the commands still writing into its backup folder (core.processes)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from backup_manager.core.processes import _processes, terminate_children_naming


@unittest.skipUnless(os.path.isdir("/proc/self"), "needs Linux /proc")
class TestTerminateChildrenNaming(unittest.TestCase):
	def setUp(self):
		self.folder = tempfile.mkdtemp(prefix="bm-partial-")
		self.addCleanup(shutil.rmtree, self.folder, True)

	def spawn(self, argv: list[str]) -> subprocess.Popen:
		process = subprocess.Popen(argv)
		# Cleanups run last-added first: kill, then reap.
		self.addCleanup(process.wait)
		self.addCleanup(lambda: process.poll() is None and process.kill())
		return process

	def test_a_direct_child_naming_the_folder_is_stopped_and_others_are_not(self):
		writer = self.spawn([sys.executable, "-c", "import time; time.sleep(30)", self.folder + "/x.tar"])
		bystander = self.spawn([sys.executable, "-c", "import time; time.sleep(30)", "/elsewhere"])
		time.sleep(0.2)
		self.assertEqual(terminate_children_naming(self.folder), [writer.pid])
		self.assertIsNotNone(writer.wait(timeout=5))
		self.assertIsNone(bystander.poll(), "a child that names another folder is left running")

	def test_a_shell_and_the_commands_it_started_are_stopped(self):
		# Like Frappe's `bash -c "set -o pipefail; tar cf - files | gzip > folder/x.tgz"`.
		shell = self.spawn(["bash", "-c", f"sleep 31.4159 | cat > {self.folder}/x.tgz; true"])
		deadline = time.monotonic() + 5
		while time.monotonic() < deadline and not self.grandchildren(shell.pid):
			time.sleep(0.05)
		grandchildren = self.grandchildren(shell.pid)
		self.assertTrue(grandchildren)
		signalled = terminate_children_naming(self.folder)
		self.assertIn(shell.pid, signalled)
		self.assertTrue(set(grandchildren) <= set(signalled), (grandchildren, signalled))
		shell.wait(timeout=5)
		deadline = time.monotonic() + 5
		while time.monotonic() < deadline and set(grandchildren) & set(_processes()):
			time.sleep(0.05)
		self.assertFalse(set(grandchildren) & set(_processes()), "the pipeline's commands ended too")

	@staticmethod
	def grandchildren(pid: int) -> list[int]:
		return [child for child, (parent, _command) in _processes().items() if parent == pid]

	def test_nothing_to_stop(self):
		self.assertEqual(terminate_children_naming(self.folder), [])


if __name__ == "__main__":
	unittest.main()
