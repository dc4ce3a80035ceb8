"""Shared helpers for the benchmark scripts: a bench site filled with generated data."""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time

DEFAULT_BENCH = os.environ.get("BENCH_PATH", os.path.expanduser("~/frappe-bench"))
DATA_TABLE = "bm_benchmark_payload"
# Random bytes, base64-encoded: text that compresses about as badly as real attachments.
ROW_BYTES = 256 * 1024


def bench(
	bench_path: str, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
	result = subprocess.run(
		["bench", *args], cwd=bench_path, capture_output=True, text=True, env={**os.environ, **(env or {})}
	)
	if check and result.returncode != 0:
		sys.exit(
			f"bench {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
		)
	return result


def timed(function, *args, **kwargs) -> tuple[float, object]:
	started = time.perf_counter()
	result = function(*args, **kwargs)
	return time.perf_counter() - started, result


def ensure_site(bench_path: str, site: str) -> None:
	"""Create the benchmark site with Backup Manager installed, unless it exists."""
	if not os.path.isdir(os.path.join(bench_path, "sites", site)):
		print(f"creating site {site} ...", flush=True)
		bench(
			bench_path,
			"new-site",
			site,
			"--admin-password",
			secrets.token_urlsafe(16),
			"--install-app",
			"backup_manager",
		)
	apps = bench(bench_path, "--site", site, "list-apps").stdout
	if "backup_manager" not in apps:
		bench(bench_path, "--site", site, "install-app", "backup_manager")


def site_config(bench_path: str, site: str) -> dict:
	with open(os.path.join(bench_path, "sites", site, "site_config.json")) as handle:
		config = json.load(handle)
	with open(os.path.join(bench_path, "sites", "common_site_config.json")) as handle:
		common = json.load(handle)
	return {**common, **config}


def connect(bench_path: str, site: str):
	import pymysql

	config = site_config(bench_path, site)
	return pymysql.connect(
		host=config.get("db_host") or "127.0.0.1",
		port=int(config.get("db_port") or 3306),
		user=config["db_name"],
		password=config["db_password"],
		database=config["db_name"],
		autocommit=True,
	)


def fill_database(bench_path: str, site: str, size_mb: int) -> int:
	"""Make the site's database hold about size_mb of extra rows; return the table's data bytes."""
	import base64

	connection = connect(bench_path, site)
	with connection.cursor() as cursor:
		cursor.execute(
			f"CREATE TABLE IF NOT EXISTS `{DATA_TABLE}` (id INT AUTO_INCREMENT PRIMARY KEY, payload LONGTEXT)"
		)
		cursor.execute(f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM `{DATA_TABLE}`")
		present = int(cursor.fetchone()[0])
		target = size_mb * 1024 * 1024
		while present < target:
			rows = [base64.b64encode(os.urandom(ROW_BYTES * 3 // 4)).decode() for _ in range(16)]
			cursor.executemany(f"INSERT INTO `{DATA_TABLE}` (payload) VALUES (%s)", rows)
			present += sum(len(row) for row in rows)
	connection.close()
	return present


def fill_files(bench_path: str, site: str, size_mb: int) -> int:
	"""Write size_mb of random files, split between public and private files; return the bytes."""
	written = 0
	for folder in ("public", "private"):
		target_dir = os.path.join(bench_path, "sites", site, folder, "files", "bm-benchmark")
		os.makedirs(target_dir, exist_ok=True)
		for index in range(max(1, size_mb // 20)):
			path = os.path.join(target_dir, f"blob-{index:04d}.bin")
			if not os.path.exists(path) or os.path.getsize(path) != 10 * 1024 * 1024:
				with open(path, "wb") as handle:
					for _ in range(10):
						handle.write(os.urandom(1024 * 1024))
			written += os.path.getsize(path)
	return written


def remove_generated_data(bench_path: str, site: str) -> None:
	connection = connect(bench_path, site)
	with connection.cursor() as cursor:
		cursor.execute(f"DROP TABLE IF EXISTS `{DATA_TABLE}`")
	connection.close()
	for folder in ("public", "private"):
		shutil.rmtree(
			os.path.join(bench_path, "sites", site, folder, "files", "bm-benchmark"), ignore_errors=True
		)


def ensure_policy(bench_path: str, site: str, name: str) -> None:
	"""A policy with files and keep_last 1, so repeated runs do not fill the disk."""
	bench(bench_path, "--site", site, "backup-manager", "init", "--name", name)
	bench(
		bench_path,
		"--site",
		site,
		"execute",
		"frappe.client.set_value",
		"--kwargs",
		json.dumps(
			{
				"doctype": "Backup Policy",
				"name": name,
				"fieldname": {
					"keep_last": 1,
					"keep_daily": 0,
					"keep_weekly": 0,
					"keep_monthly": 0,
					"enabled": 0,
				},
			}
		),
	)


def median(values: list[float]) -> float:
	ordered = sorted(values)
	middle = len(ordered) // 2
	return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
