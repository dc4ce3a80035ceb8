"""Compression settings in a real bench: plain `bench restore` reads every setting's backup, a cut-short
dump fails the run, and a plain `bench backup` taken during one of our runs keeps Frappe's gzip."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

import frappe
import pymysql

from backup_manager.core.compression import (
	BALANCED,
	FAST,
	IGZIP,
	SMALL,
	WRAPPER_DIR_PREFIX,
	Compressor,
	find_compressor,
	which_real,
)
from backup_manager.core.errors import ArtifactError
from backup_manager.core.manifest import DATABASE, PUBLIC_FILES
from backup_manager.local_backup import PARTIAL_SUFFIX, BackupRequest, get_backup_dir, take_backup
from backup_manager.tests.test_backup_run import BackupRunTestCase, run_now
from backup_manager.tests.utils import bench_argv, make_policy, sites_path

SCRATCH_SITE = "bm-compression-restore.localhost"
# gzip header XFL byte (RFC 1952) as pigz and gzip write it: 4 = fastest (level 1), 2 = maximum
# compression (level 9). igzip always writes 0.
EXPECTED_XFL = {FAST: 4, BALANCED: 0, SMALL: 2}


def expected_xfl(compressor: Compressor, setting: str) -> int:
	return 0 if compressor.program == IGZIP else EXPECTED_XFL[setting]


def command_in_sites(*argv: str, timeout: int = 900) -> subprocess.CompletedProcess:
	return subprocess.run(
		list(argv), cwd=sites_path(), capture_output=True, text=True, timeout=timeout, check=False
	)


def site_argv(site: str, *args: str) -> list[str]:
	return [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site, *args]


def drop_scratch_site():
	if not os.path.isdir(os.path.join(sites_path(), SCRATCH_SITE)):
		return
	archive = tempfile.mkdtemp(prefix="bm-compression-archived-")
	try:
		command_in_sites(
			sys.executable,
			"-m",
			"frappe.utils.bench_helper",
			"frappe",
			"drop-site",
			SCRATCH_SITE,
			"--force",
			"--no-backup",
			"--archived-sites-path",
			archive,
		)
	finally:
		shutil.rmtree(archive, ignore_errors=True)


def second_member_xfl(path: str) -> int:
	"""XFL of the dump's second gzip member: what the compressor of mariadb-dump's output wrote."""
	with open(path, "rb") as handle:
		data = handle.read(1 << 20)
	first = zlib.decompressobj(wbits=31)
	first.decompress(data)
	rest = first.unused_data
	assert rest[:2] == b"\x1f\x8b", "the dump has no second gzip member"
	return rest[8]


def read_todo_descriptions(site: str) -> set[str]:
	with open(os.path.join(sites_path(), site, "site_config.json")) as handle:
		config = json.load(handle)
	connection = pymysql.connect(
		host=frappe.conf.db_host or "127.0.0.1",
		port=int(frappe.conf.db_port or 3306),
		user=config["db_name"],
		password=config["db_password"],
		database=config["db_name"],
	)
	try:
		with connection.cursor() as cursor:
			cursor.execute("SELECT description FROM `tabToDo` WHERE description LIKE 'bm-compression-%%'")
			return {row[0] for row in cursor.fetchall()}
	finally:
		connection.close()


def process_tree() -> dict[int, int]:
	"""pid -> parent pid of every process."""
	parents = {}
	for entry in os.listdir("/proc"):
		if not entry.isdigit():
			continue
		try:
			with open(f"/proc/{entry}/stat") as handle:
				fields = handle.read().rsplit(")", 1)[1].split()
		except OSError:
			continue
		parents[int(entry)] = int(fields[1])
	return parents


def descendants_running(root: int, program: str) -> list[int]:
	"""Processes below `root` whose executable is named `program` (gzip, pigz, igzip)."""
	parents = process_tree()
	found = []
	for pid in parents:
		ancestor = parents.get(pid)
		while ancestor and ancestor != root:
			ancestor = parents.get(ancestor)
		if ancestor != root:
			continue
		try:
			if os.path.basename(os.readlink(f"/proc/{pid}/exe")) == program:
				found.append(pid)
		except OSError:
			continue
	return found


def wait_for_descendant(process: subprocess.Popen, program: str, timeout: float = 120) -> int:
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		found = descendants_running(process.pid, program)
		if found:
			return found[0]
		if process.poll() is not None:
			raise AssertionError(f"the process ended before running {program}: {process.communicate()}")
		time.sleep(0.05)
	raise AssertionError(f"no {program} process under {process.pid} after {timeout} s")


def read_environment(pid: int) -> dict[str, str]:
	with open(f"/proc/{pid}/environ", "rb") as handle:
		items = handle.read().split(b"\0")
	return dict(item.decode(errors="replace").split("=", 1) for item in items if b"=" in item)


class TestCompressionSettings(BackupRunTestCase):
	def mark(self, label: str) -> str:
		description = f"bm-compression-{label}-{frappe.generate_hash(length=8)}"
		todo = frappe.get_doc({"doctype": "ToDo", "description": description}).insert(ignore_permissions=True)
		frappe.db.commit()
		self.addCleanup(lambda: (frappe.delete_doc("ToDo", todo.name, force=True), frappe.db.commit()))
		return description

	def test_every_setting_restores_with_plain_bench_restore_and_passes_gzip_t(self):
		self.addCleanup(drop_scratch_site)
		drop_scratch_site()
		marker_file = f"bm-compression-{frappe.generate_hash(length=8)}.txt"
		marker_path = frappe.get_site_path("public", "files", marker_file)
		with open(marker_path, "w") as handle:
			handle.write("restored by plain bench restore\n")
		self.addCleanup(os.remove, marker_path)

		for setting in (FAST, BALANCED, SMALL):
			marker = self.mark(setting)
			with_files = setting == BALANCED
			policy = make_policy(
				f"compression {setting}", compression=setting, with_files=int(with_files), compress_files=1
			)
			expected = find_compressor(setting)
			log = run_now(policy.name)
			self.assertEqual(log.status, "Success", log.error_message)
			self.assertEqual(log.compression_level, expected.level)
			self.assertTrue(log.compressor.startswith(f"{expected.program} "), log.compressor)
			if setting == SMALL:
				self.assertNotEqual(expected.program, IGZIP)
			paths = {row.kind: row.local_path for row in log.artifacts}
			dump = paths[DATABASE]
			gzip_test = subprocess.run(["gzip", "-t", dump], capture_output=True, text=True, check=False)
			self.assertEqual(gzip_test.returncode, 0, gzip_test.stderr)
			# The level reached the compressor of mariadb-dump's output (not gzip's default).
			self.assertEqual(second_member_xfl(dump), expected_xfl(expected, setting))

			if setting == FAST:
				# The scratch site is created from the first dump by Frappe's own restore path.
				result = command_in_sites(
					*bench_argv_for_new_site(SCRATCH_SITE, dump),
				)
			else:
				restore = ["restore", dump, "--force"]
				if with_files:
					restore += ["--with-public-files", paths[PUBLIC_FILES]]
				result = command_in_sites(*site_argv(SCRATCH_SITE, *restore))
			self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr[-3000:])
			self.assertIn(marker, read_todo_descriptions(SCRATCH_SITE), setting)
			if with_files:
				self.assertTrue(
					os.path.isfile(os.path.join(sites_path(), SCRATCH_SITE, "public", "files", marker_file))
				)

	def test_a_cut_short_dump_fails_the_run_and_leaves_no_folder(self):
		folder = tempfile.mkdtemp(prefix="bm-truncating-compressor-")
		self.addCleanup(shutil.rmtree, folder, True)
		script = os.path.join(folder, "truncating-gzip")
		with open(script, "w") as handle:
			# A compressor that exits 0 but drops the end of its stream (a full disk, a killed pigz).
			handle.write(
				"#!/bin/sh\n"
				'tmp=$(mktemp)\n/bin/gzip -c "$@" > "$tmp"\n'
				'size=$(stat -c %s "$tmp")\nhead -c $((size - 64)) "$tmp"\nrm -f "$tmp"\n'
			)
		os.chmod(script, 0o700)
		backup_id = f"20261203T000000Z-truncated-{frappe.generate_hash(length=6)}"
		request = BackupRequest(
			backup_id=backup_id, with_files=False, compressor=Compressor("gzip", script, 1)
		)
		with self.assertRaises(ArtifactError) as raised:
			take_backup(request)
		self.assertIn("not a complete gzip file", str(raised.exception))
		self.assertFalse(os.path.exists(get_backup_dir(backup_id)))
		self.assertFalse(os.path.exists(get_backup_dir(backup_id) + PARTIAL_SUFFIX))

	def test_plain_bench_backup_during_our_run_still_uses_gzip(self):
		policy = make_policy("compression concurrent", compression=FAST, with_files=0)
		plain_dir = frappe.get_site_path("private", "backups")
		before = set(os.listdir(plain_dir)) if os.path.isdir(plain_dir) else set()
		# Hold a write lock on ToDo: both dumps block on that table with their pipelines running.
		blocker = pymysql.connect(
			host=frappe.conf.db_host or "127.0.0.1",
			port=int(frappe.conf.db_port or 3306),
			user=frappe.conf.db_name,
			password=frappe.conf.db_password,
			database=frappe.conf.db_name,
		)
		ours = plain = None
		try:
			with blocker.cursor() as cursor:
				cursor.execute("LOCK TABLES `tabToDo` WRITE")
			ours = subprocess.Popen(
				bench_argv("backup-manager", "run", "--policy", policy.name),
				cwd=sites_path(),
				stdout=subprocess.PIPE,
				stderr=subprocess.PIPE,
				text=True,
			)
			program = find_compressor(FAST).program
			ours_compressor = wait_for_descendant(ours, program)
			with open(f"/proc/{ours_compressor}/cmdline", "rb") as handle:
				self.assertIn(b"\0-1\0", handle.read(), "our run's compressor must get the Fast level")

			plain = subprocess.Popen(
				bench_argv("backup"),
				cwd=sites_path(),
				stdout=subprocess.PIPE,
				stderr=subprocess.PIPE,
				text=True,
			)
			compressor = wait_for_descendant(plain, "gzip")
			self.assertEqual(
				os.path.realpath(f"/proc/{compressor}/exe"), os.path.realpath(which_real("gzip"))
			)
			self.assertFalse(descendants_running(plain.pid, "pigz"))
			self.assertFalse(descendants_running(plain.pid, IGZIP))
			self.assertNotIn(WRAPPER_DIR_PREFIX, read_environment(compressor).get("PATH", ""))
		finally:
			blocker.close()  # releases the table lock
			for process in (ours, plain):
				if process is not None:
					process.communicate(timeout=600)
			after = set(os.listdir(plain_dir)) if os.path.isdir(plain_dir) else set()
			for name in after - before:
				os.remove(os.path.join(plain_dir, name))
		self.assertEqual(ours.returncode, 0)
		self.assertEqual(plain.returncode, 0)
		new_dumps = [name for name in after - before if name.endswith(".sql.gz")]
		self.assertTrue(new_dumps, "the plain bench backup wrote no dump")


def bench_argv_for_new_site(site: str, dump: str) -> list[str]:
	return [
		sys.executable,
		"-m",
		"frappe.utils.bench_helper",
		"frappe",
		"new-site",
		site,
		"--source-sql",
		dump,
		"--admin-password",
		frappe.generate_hash(length=16),
	]
