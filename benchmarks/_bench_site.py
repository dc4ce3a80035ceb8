"""Shared helpers for the bench benchmarks: a site filled with generated data, timed bench calls.

Run the scripts with the bench's Python (it has pymysql), e.g.
~/frappe-bench/env/bin/python benchmarks/backup_benchmark.py
"""

import base64
import contextlib
import fcntl
import glob
import json
import os
import resource
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

DEFAULT_BENCH = os.environ.get("BENCH_PATH", os.path.expanduser("~/frappe-bench"))
DEFAULT_SITE = "bm-bench.localhost"
POLICY = "Benchmark"
MiB = 1024 * 1024
DATA_TABLE = "bm_benchmark_payload"
# Rows of ~4 KiB of random base64 text: about as many rows as a busy Comment/Version table, and
# text that gzip shrinks only to ~75%, so the dump stays about as large as the table.
ROW_TEXT_BYTES = 4096
# ~800 KiB per INSERT: below pymysql's 1 MB statement split and MariaDB's 16 MiB max_allowed_packet.
INSERT_BATCH_ROWS = 200
# Files: half the bytes in large attachments, half in many small ones (tar cost depends on both).
LARGE_FILE_BYTES = 8 * MiB
SMALL_FILE_BYTES = 256 * 1024
FILES_FOLDER = "bm-benchmark"
# Another restore plan running on this bench keeps its saved copy of the common config here.
SAVED_COMMON_CONFIG_GLOB = "sites/.common_site_config.json.*"
OUTPUT_TAIL_CHARACTERS = 4000


class StepFailed(Exception):
	"""A bench command or script that the benchmark depends on failed."""


@dataclass
class Measurement:
	"""Wall-clock and CPU seconds (this process's children: bench, mysqldump, gzip, tar) of one step."""

	label: str
	seconds: float
	cpu_seconds: float
	load_average: float
	output: str = ""
	steps: dict[str, float] = field(default_factory=dict)


def get_children_cpu_seconds() -> float:
	usage = resource.getrusage(resource.RUSAGE_CHILDREN)
	return usage.ru_utime + usage.ru_stime


def run_command(
	command: list[str], *, cwd: str, env: dict | None = None, label: str = ""
) -> subprocess.CompletedProcess:
	"""Run a command (argument list); raise StepFailed with the output's tail when it fails."""
	result = subprocess.run(
		command,
		cwd=cwd,
		capture_output=True,
		text=True,
		stdin=subprocess.DEVNULL,
		env={**os.environ, **(env or {})},
	)
	if result.returncode != 0:
		raise StepFailed(
			f"{label or ' '.join(command)} failed with exit code {result.returncode}:\n"
			f"{result.stdout[-OUTPUT_TAIL_CHARACTERS:]}\n{result.stderr[-OUTPUT_TAIL_CHARACTERS:]}"
		)
	return result


def run_bench(bench_path: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
	return run_command(["bench", *args], cwd=bench_path, env=env, label="bench " + " ".join(args))


def run_bench_with_peak_rss(bench_path: str, *args: str, env: dict | None = None) -> tuple[str, float]:
	"""Run a bench command; return its stdout and its peak RSS in MiB (the largest of its processes)."""
	with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
		process = subprocess.Popen(
			["bench", *args],
			cwd=bench_path,
			stdout=stdout,
			stderr=stderr,
			stdin=subprocess.DEVNULL,
			env={**os.environ, **(env or {})},
		)
		# wait4 gives this child's own rusage (ru_maxrss in KiB: the largest of it and its waited children).
		_pid, status, usage = os.wait4(process.pid, 0)
		process.returncode = os.waitstatus_to_exitcode(status)
		stdout.seek(0)
		stderr.seek(0)
		out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
	if process.returncode != 0:
		raise StepFailed(
			f"bench {' '.join(args)} failed with exit code {process.returncode}:\n"
			f"{out[-OUTPUT_TAIL_CHARACTERS:]}\n{err[-OUTPUT_TAIL_CHARACTERS:]}"
		)
	return out, usage.ru_maxrss / 1024


def compressor_versions() -> str:
	"""The versions of igzip, pigz and gzip on this machine, e.g. "pigz 2.6, gzip 1.12"."""
	versions = []
	for program in ("igzip", "pigz", "gzip"):
		path = shutil.which(program)
		if not path:
			versions.append(f"{program}: not installed")
			continue
		result = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
		versions.append(((result.stdout or result.stderr).strip().splitlines() or [program])[0])
	return ", ".join(versions)


def measure(label: str, function, *args, **kwargs) -> Measurement:
	"""Call function (which runs subprocesses) and measure it; its return value becomes .output."""
	load_average = os.getloadavg()[0]
	cpu_before = get_children_cpu_seconds()
	started = time.perf_counter()
	output = function(*args, **kwargs)
	seconds = time.perf_counter() - started
	measurement = Measurement(label, seconds, get_children_cpu_seconds() - cpu_before, load_average)
	if isinstance(output, dict):
		measurement.steps = output
	elif output is not None:
		measurement.output = str(output)
	return measurement


def median(values: list[float]) -> float:
	ordered = sorted(values)
	middle = len(ordered) // 2
	return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def format_mib(size: int | float) -> str:
	return f"{size / MiB:,.1f} MiB"


def format_overhead(app_seconds: float, plain_seconds: float) -> str:
	return (
		f"ratio {app_seconds / plain_seconds:.3f}, overhead {(app_seconds / plain_seconds - 1) * 100:+.1f}%"
	)


@contextlib.contextmanager
def benchmark_lock(site: str, timeout_seconds: float = 1800):
	"""Hold a per-site lock: two benchmarks on one site would time each other and share its data."""
	path = os.path.join(tempfile.gettempdir(), f"bm-benchmark-{site}.lock")
	with open(path, "w") as handle:
		started = time.monotonic()
		while True:
			try:
				fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
				break
			except BlockingIOError:
				if time.monotonic() - started > timeout_seconds:
					raise StepFailed(
						f"another benchmark still holds {path} after {timeout_seconds:.0f} s"
					) from None
				if time.monotonic() - started < 1:
					print(f"Waiting for another benchmark on {site} to finish ({path}) ...", flush=True)
				time.sleep(5)
		yield


def settle_disk() -> None:
	"""Flush dirty pages before a timed step, so that neither side pays for the other's writeback."""
	os.sync()
	time.sleep(1)


# Site --------------------------------------------------------------------------------------------


def get_site_path(bench_path: str, site: str, *parts: str) -> str:
	return os.path.join(bench_path, "sites", site, *parts)


def site_exists(bench_path: str, site: str) -> bool:
	return os.path.isfile(get_site_path(bench_path, site, "site_config.json"))


def ensure_site(bench_path: str, site: str) -> None:
	"""Create the benchmark site with Backup Manager installed, unless it exists."""
	if not site_exists(bench_path, site):
		print(
			f"Creating site {site} (database root password from sites/common_site_config.json) ...",
			flush=True,
		)
		# A throwaway Administrator password for a local benchmark site; it is never printed.
		run_bench(bench_path, "new-site", site, "--admin-password", secrets.token_urlsafe(16))
	installed = run_bench(bench_path, "--site", site, "list-apps").stdout
	if "backup_manager" not in installed:
		print(f"Installing backup_manager on {site} ...", flush=True)
		run_bench(bench_path, "--site", site, "install-app", "backup_manager")


POLICY_VALUES = {
	"enabled": 0,
	"compression": "Balanced",
	"with_files": 1,
	"compress_files": 0,
	"backup_before_migrate": 0,
	"keep_last": 1,
	"keep_hourly": 0,
	"keep_daily": 0,
	"keep_weekly": 0,
	"keep_monthly": 0,
	"keep_yearly": 0,
}
# Runs under the bench's python in sites/: sets the policy's values and its destinations (none,
# or the benchmark's S3 destination, whose keys come from the environment, never from argv).
POLICY_SNIPPET = """\
import json, os, sys
import frappe

site, policy_name, values, destination_names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
frappe.init(site=site, sites_path=".")
frappe.connect()
try:
	policy = frappe.get_doc("Backup Policy", policy_name)
	policy.update(values)
	policy.set("destinations", [])
	# Comma-separated destination names; a name ending in " Dedup" stores deduplicated files, the
	# others whole archives (what the benchmarks compare against a plain upload).
	for destination_name in filter(None, destination_names.split(",")):
		destination_values = {
			"provider": "MinIO",
			"endpoint_url": os.environ["BM_BENCH_S3_ENDPOINT"],
			"region": "us-east-1",
			"bucket": os.environ["BM_BENCH_S3_BUCKET"],
			"path_prefix": "bm-bench",
			"addressing_style": "path",
			"access_key_id": os.environ["BM_BENCH_S3_ACCESS_KEY"],
			"secret_access_key": os.environ["BM_BENCH_S3_SECRET_KEY"],
			"deduplicate_files": int(destination_name.endswith(" Dedup")),
		}
		if frappe.db.exists("Backup Destination", destination_name):
			destination = frappe.get_doc("Backup Destination", destination_name)
			destination.update(destination_values)
			destination.save(ignore_permissions=True)
		else:
			frappe.get_doc(
				{"doctype": "Backup Destination", "destination_name": destination_name, **destination_values}
			).insert(ignore_permissions=True)
		policy.append("destinations", {"destination": destination_name})
	policy.save(ignore_permissions=True)
	frappe.db.commit()
finally:
	frappe.destroy()
"""


def ensure_policy(
	bench_path: str,
	site: str,
	name: str = POLICY,
	destination: str = "",
	destination_env: dict[str, str] | None = None,
	values: dict | None = None,
) -> None:
	"""A policy with files and keep_last 1 (repeated runs do not fill the disk), and no destination
	unless one is given (a run killed while it had one attached leaves nothing behind).

	It is disabled so that the scheduler never starts it between rounds; `backup-manager run`
	runs disabled policies too.
	"""
	run_bench(bench_path, "--site", site, "backup-manager", "init", "--name", name)
	run_command(
		[
			os.path.join(bench_path, "env", "bin", "python"),
			"-c",
			POLICY_SNIPPET,
			site,
			name,
			json.dumps({**POLICY_VALUES, **(values or {})}),
			destination,
		],
		cwd=os.path.join(bench_path, "sites"),
		env=destination_env,
		label=f"setting up Backup Policy {name}"
		+ (f" with destination {destination}" if destination else ""),
	)


def read_site_config(bench_path: str, site: str) -> dict:
	with open(os.path.join(bench_path, "sites", "common_site_config.json")) as handle:
		common = json.load(handle)
	with open(get_site_path(bench_path, site, "site_config.json")) as handle:
		return {**common, **json.load(handle)}


def connect(bench_path: str, site: str):
	"""A pymysql connection as the site's own database user (credentials from its site_config.json)."""
	import pymysql

	config = read_site_config(bench_path, site)
	return pymysql.connect(
		host=config.get("db_host") or "127.0.0.1",
		port=int(config.get("db_port") or 3306),
		user=config["db_name"],
		password=config["db_password"],
		database=config["db_name"],
		autocommit=True,
	)


# Generated data -----------------------------------------------------------------------------------


def fill_database(bench_path: str, site: str, size_mb: int) -> None:
	"""Make the payload table hold at least size_mb MiB of random text (kept between runs)."""
	connection = connect(bench_path, site)
	try:
		with connection.cursor() as cursor:
			cursor.execute(
				"SELECT COUNT(*) FROM information_schema.columns"
				" WHERE table_schema = DATABASE() AND table_name = %s AND column_name = 'content'",
				(DATA_TABLE,),
			)
			if not cursor.fetchone()[0]:
				# Left by an older version of these scripts with another layout: the table only ever holds generated rows.
				cursor.execute(f"DROP TABLE IF EXISTS `{DATA_TABLE}`")
			cursor.execute(
				f"CREATE TABLE IF NOT EXISTS `{DATA_TABLE}` ("
				"id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(140), creation DATETIME(6), content LONGTEXT"
				") ENGINE=InnoDB ROW_FORMAT=DYNAMIC CHARACTER SET utf8mb4"
			)
			cursor.execute(f"SELECT COALESCE(SUM(LENGTH(content)), 0), COUNT(*) FROM `{DATA_TABLE}`")
			present, rows = (int(value) for value in cursor.fetchone())
			target = size_mb * MiB
			if present > target + INSERT_BATCH_ROWS * ROW_TEXT_BYTES:
				# Left larger by a run with a bigger --size-db-mb and --keep: start again at this size.
				cursor.execute(f"TRUNCATE TABLE `{DATA_TABLE}`")
				present, rows = 0, 0
			if present >= target:
				return
			print(f"Generating {format_mib(target - present)} of table rows ...", flush=True)
			while present < target:
				batch = []
				for _ in range(INSERT_BATCH_ROWS):
					rows += 1
					text = base64.b64encode(os.urandom(ROW_TEXT_BYTES * 3 // 4)).decode()
					batch.append((f"BM-{rows:09d}", text))
					present += len(text)
				cursor.executemany(
					f"INSERT INTO `{DATA_TABLE}` (name, creation, content) VALUES (%s, NOW(6), %s)", batch
				)
	finally:
		connection.close()


def get_database_sizes(bench_path: str, site: str) -> dict[str, int]:
	"""Payload table and whole database: InnoDB data+index bytes, and the payload's text bytes and rows."""
	connection = connect(bench_path, site)
	try:
		with connection.cursor() as cursor:
			cursor.execute(f"ANALYZE TABLE `{DATA_TABLE}`")
			cursor.fetchall()
			cursor.execute(
				"SELECT COALESCE(SUM(data_length + index_length), 0),"
				" COALESCE(SUM(IF(table_name = %s, data_length + index_length, 0)), 0)"
				" FROM information_schema.tables WHERE table_schema = DATABASE()",
				(DATA_TABLE,),
			)
			database_bytes, table_bytes = (int(value) for value in cursor.fetchone())
			cursor.execute(f"SELECT COALESCE(SUM(LENGTH(content)), 0), COUNT(*) FROM `{DATA_TABLE}`")
			text_bytes, rows = (int(value) for value in cursor.fetchone())
	finally:
		connection.close()
	return {"database": database_bytes, "table": table_bytes, "text": text_bytes, "rows": rows}


def count_payload_rows(bench_path: str, site: str) -> int:
	connection = connect(bench_path, site)
	try:
		with connection.cursor() as cursor:
			cursor.execute(f"SELECT COUNT(*) FROM `{DATA_TABLE}`")
			return int(cursor.fetchone()[0])
	finally:
		connection.close()


def fill_files(bench_path: str, site: str, size_mb: int) -> dict[str, int]:
	"""Write random files (kept between runs) under public/ and private/files; return bytes and count."""
	plan = []
	for folder in ("public", "private"):
		share = size_mb * MiB // 2
		large = max(1, share // 2 // LARGE_FILE_BYTES)
		small = max(1, (share - large * LARGE_FILE_BYTES) // SMALL_FILE_BYTES)
		target_dir = get_site_path(bench_path, site, folder, "files", FILES_FOLDER)
		plan += [
			(os.path.join(target_dir, f"large-{index:04d}.bin"), LARGE_FILE_BYTES) for index in range(large)
		]
		plan += [
			(os.path.join(target_dir, f"small-{index:05d}.bin"), SMALL_FILE_BYTES) for index in range(small)
		]
	planned = {path for path, _size in plan}
	for folder in ("public", "private"):
		# The folder only ever holds generated files: drop those of another --size-files-mb or layout.
		for path in glob.glob(get_site_path(bench_path, site, folder, "files", FILES_FOLDER, "*")):
			if path not in planned:
				os.remove(path)
	missing = [
		(path, size) for path, size in plan if not (os.path.isfile(path) and os.path.getsize(path) == size)
	]
	if missing:
		print(f"Generating {format_mib(sum(size for _, size in missing))} of files ...", flush=True)
	for path, size in missing:
		os.makedirs(os.path.dirname(path), exist_ok=True)
		with open(path, "wb") as handle:
			written = 0
			while written < size:
				chunk = min(MiB, size - written)
				handle.write(os.urandom(chunk))
				written += chunk
	return {"bytes": sum(size for _, size in plan), "files": len(plan)}


def count_generated_files(bench_path: str, site: str) -> int:
	return sum(
		len(glob.glob(get_site_path(bench_path, site, folder, "files", FILES_FOLDER, "*")))
		for folder in ("public", "private")
	)


def remove_generated_data(bench_path: str, site: str) -> None:
	connection = connect(bench_path, site)
	try:
		with connection.cursor() as cursor:
			cursor.execute(f"DROP TABLE IF EXISTS `{DATA_TABLE}`")
	finally:
		connection.close()
	for folder in ("public", "private"):
		shutil.rmtree(get_site_path(bench_path, site, folder, "files", FILES_FOLDER), ignore_errors=True)


def remove_app_backups(bench_path: str, site: str) -> None:
	"""Delete the policy's backup folders (Backup Logs stay; they point to deleted folders)."""
	shutil.rmtree(get_site_path(bench_path, site, "private", "backup_manager"), ignore_errors=True)


def get_gzip_uncompressed_size(path: str) -> int:
	"""The gzip trailer's ISIZE: the uncompressed size modulo 4 GiB (exact for our dumps)."""
	with open(path, "rb") as handle:
		handle.seek(-4, os.SEEK_END)
		return struct.unpack("<I", handle.read(4))[0]


# Backup Manager ---------------------------------------------------------------------------------


def run_policy(bench_path: str, site: str, policy: str = POLICY) -> tuple[str, str]:
	"""`backup-manager run --policy`; return the Backup Log name and the backup folder."""
	log, folder, _peak = run_policy_with_peak_rss(bench_path, site, policy)
	return log, folder


def run_policy_with_peak_rss(bench_path: str, site: str, policy: str = POLICY) -> tuple[str, str, float]:
	"""`backup-manager run --policy`; return the Backup Log name, the backup folder and the peak RSS in MiB."""
	output, peak = run_bench_with_peak_rss(
		bench_path, "--site", site, "backup-manager", "run", "--policy", policy
	)
	fields = output.strip().splitlines()[-1].split("\t")
	if len(fields) < 4 or fields[1] != "Success":
		raise StepFailed(
			f"backup-manager run printed an unexpected last line: {output[-OUTPUT_TAIL_CHARACTERS:]}"
		)
	return fields[0], fields[3], peak


def get_backup_log(bench_path: str, site: str, log: str) -> dict:
	output = run_bench(
		bench_path,
		"--site",
		site,
		"execute",
		"frappe.client.get",
		"--kwargs",
		json.dumps({"doctype": "Backup Log", "name": log}),
	).stdout
	return json.loads(output.strip().splitlines()[-1])


# Restores -----------------------------------------------------------------------------------------


def drop_site(bench_path: str, site: str) -> None:
	"""Drop a site and delete its archived copy (drop-site moves the folder, files and all, aside)."""
	if not os.path.isdir(get_site_path(bench_path, site)):
		return
	archive = tempfile.mkdtemp(prefix="bm-bench-archived-")
	try:
		run_bench(bench_path, "drop-site", site, "--force", "--no-backup", "--archived-sites-path", archive)
	finally:
		shutil.rmtree(archive, ignore_errors=True)


def wait_for_other_restores(bench_path: str, timeout_seconds: float = 900) -> float:
	"""Wait while another restore plan holds its saved common config; return the seconds waited."""
	started = time.monotonic()
	while glob.glob(os.path.join(bench_path, SAVED_COMMON_CONFIG_GLOB)):
		if time.monotonic() - started > timeout_seconds:
			raise StepFailed(
				f"{SAVED_COMMON_CONFIG_GLOB} still exists after {timeout_seconds:.0f} s: another restore plan is "
				"running on this bench, or one left its saved copy behind (move it back by hand)."
			)
		time.sleep(2)
	return time.monotonic() - started


def fail(message: str) -> None:
	print(f"\nFAILED: {message}", file=sys.stderr, flush=True)
	sys.exit(1)
