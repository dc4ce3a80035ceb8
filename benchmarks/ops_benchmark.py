"""Operations-at-scale benchmarks, both sides in one run:

P6   the scheduler tick (jobs.tick) on a site with 500 enabled policies, none due (the tick of
     almost every minute), against the same tick with no policy at all; target <= 100 ms.
PROG the cost of live progress: the same local backup taken with the progress reporter and
     without (alternating rounds), and the same upload to S3 with and without byte callbacks;
     target <= 2%.

Run with the bench's Python from anywhere:
    ~/frappe-bench/env/bin/python benchmarks/ops_benchmark.py --site bm-dev11.localhost
Options: --policies 500, --ticks 30, --rounds 3, --files-mb 150, --upload-mb 300 (0 skips the
upload part; it needs BM_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY of a local SeaweedFS).
Everything it creates (policies, files, backups, bucket) is removed at the end.
"""

import argparse
import os
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time

POLICY_PREFIX = "_Bench BM tick "
MiB = 1024 * 1024


def connect(bench: str, site: str):
	os.chdir(os.path.join(bench, "sites"))
	import frappe

	frappe.init(site=site, sites_path=".")
	frappe.connect()
	frappe.set_user("Administrator")
	return frappe


def remove_tick_policies(frappe):
	for name in frappe.get_all(
		"Backup Policy", filters={"name": ("like", POLICY_PREFIX + "%")}, pluck="name"
	):
		frappe.delete_doc("Backup Policy", name, force=True, ignore_permissions=True)
	frappe.db.commit()


def time_ticks(frappe, ticks: int) -> list[float]:
	from backup_manager import jobs

	samples = []
	for _ in range(ticks):
		started = time.perf_counter()
		jobs.tick()
		samples.append((time.perf_counter() - started) * 1000)
	return samples


def benchmark_tick(frappe, policies: int, ticks: int):
	remove_tick_policies(frappe)
	others = frappe.db.count("Backup Policy")
	empty = time_ticks(frappe, ticks)
	started = time.perf_counter()
	frequencies = ["Hourly", "Every 6 Hours", "Daily", "Weekly", "Monthly"]
	for index in range(policies):
		frappe.get_doc(
			{
				"doctype": "Backup Policy",
				"policy_name": f"{POLICY_PREFIX}{index:04d}",
				"enabled": 1,
				"frequency": frequencies[index % len(frequencies)],
				"backup_time": f"{index % 24:02d}:{index % 60:02d}:00",
				"start_window_minutes": 30,
				"keep_last": 3,
				"alert_after_hours": 48 if index % 2 else 0,
				"recipients": "ops@example.com",
			}
		).insert(ignore_permissions=True)
	frappe.db.commit()
	print(f"P6: made {policies} enabled policies in {time.perf_counter() - started:.1f} s ({others} others)")
	try:
		# Warm the caches the way a running scheduler has them warm.
		time_ticks(frappe, 2)
		full = time_ticks(frappe, ticks)
	finally:
		remove_tick_policies(frappe)
	print(
		f"P6: tick with no policy: median {statistics.median(empty):.1f} ms; "
		f"with {policies} policies: median {statistics.median(full):.1f} ms, "
		f"p90 {sorted(full)[int(0.9 * len(full)) - 1]:.1f} ms, max {max(full):.1f} ms "
		f"(target <= 100 ms: {'met' if statistics.median(full) <= 100 else 'MISSED'})"
	)


def write_random_files(folder: str, total_mb: int):
	os.makedirs(folder, exist_ok=True)
	for index in range(max(1, total_mb // 8)):
		with open(os.path.join(folder, f"random-{index}.bin"), "wb") as handle:
			handle.write(secrets.token_bytes(8 * MiB))


def benchmark_local_progress(frappe, rounds: int, files_mb: int):
	from backup_manager.core.manifest import PRIVATE_FILES
	from backup_manager.local_backup import BackupRequest, delete_backup_dir, take_backup
	from backup_manager.progress import make_reporter

	folder = frappe.get_site_path("private", "files", "bm-progress-benchmark")
	write_random_files(folder, files_mb)
	timings = {"with progress": [], "without": []}
	cpu = {"with progress": [], "without": []}
	try:
		for round_number in range(rounds):
			for label in (
				("with progress", "without") if round_number % 2 == 0 else ("without", "with progress")
			):
				cpu_before = cpu_seconds()
				backup_id = f"bench-progress-{round_number}-{'on' if label == 'with progress' else 'off'}-{secrets.token_hex(3)}"
				reporter = make_reporter(f"BENCH-{backup_id}") if label == "with progress" else None
				os.sync()
				started = time.perf_counter()
				backup_dir, manifest = take_backup(
					BackupRequest(
						backup_id=backup_id, with_files=True, expected_sizes={PRIVATE_FILES: files_mb * MiB}
					),
					reporter=reporter,
				)
				timings[label].append(time.perf_counter() - started)
				cpu[label].append(cpu_seconds() - cpu_before)
				delete_backup_dir(backup_dir)
			print(
				f"PROG local round {round_number + 1}: with {timings['with progress'][-1]:.2f} s, "
				f"without {timings['without'][-1]:.2f} s ({manifest.total_size / MiB:.0f} MiB)"
			)
	finally:
		shutil.rmtree(folder, ignore_errors=True)
	on, off = statistics.median(timings["with progress"]), statistics.median(timings["without"])
	print(f"PROG local backup: with progress {on:.2f} s, without {off:.2f} s (medians), ratio {on / off:.3f}")
	cpu_on, cpu_off = statistics.median(cpu["with progress"]), statistics.median(cpu["without"])
	print(
		f"PROG local backup CPU (this process and its children): with progress {cpu_on:.2f} s, "
		f"without {cpu_off:.2f} s (medians), ratio {cpu_on / cpu_off:.3f}"
	)
	return on, off


def cpu_seconds() -> float:
	"""User + system CPU of this process and its waited-for children (the dump and tar commands)."""
	own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
	return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def benchmark_upload_progress(rounds: int, upload_mb: int):
	endpoint = os.environ.get("BM_TEST_S3_ENDPOINT")
	if not endpoint or not upload_mb:
		print("PROG upload: skipped (no BM_TEST_S3_ENDPOINT or --upload-mb 0)")
		return None
	from backup_manager.core.checksums import sha256_file
	from backup_manager.core.progress import ProgressReporter
	from backup_manager.core.storage import S3Config
	from backup_manager.core.storage.s3 import S3Backend

	bucket = "bm-progress-bench-" + secrets.token_hex(4)
	config = S3Config(
		endpoint_url=endpoint,
		region="us-east-1",
		bucket=bucket,
		access_key_id=os.environ["BM_TEST_S3_ACCESS_KEY"],
		secret_access_key=os.environ["BM_TEST_S3_SECRET_KEY"],
		addressing_style="path",
	)
	backend = S3Backend(config)
	backend.client.create_bucket(Bucket=bucket)
	directory = tempfile.mkdtemp(prefix="bm-progress-")
	path = os.path.join(directory, "payload.bin")
	with open(path, "wb") as handle:
		for _ in range(upload_mb):
			handle.write(secrets.token_bytes(MiB))
	size, sha256 = os.path.getsize(path), sha256_file(path)
	timings = {"with progress": [], "without": []}
	events = []
	try:
		for round_number in range(rounds):
			for label in (
				("with progress", "without") if round_number % 2 == 0 else ("without", "with progress")
			):
				reporter = ProgressReporter(events.append) if label == "with progress" else None
				reporter and reporter.start_phase("upload", size)
				started = time.perf_counter()
				backend.upload_file(
					path,
					f"bench/{round_number}-{label}.bin",
					size=size,
					sha256=sha256,
					progress=reporter.advance if reporter else None,
				)
				timings[label].append(time.perf_counter() - started)
	finally:
		shutil.rmtree(directory, ignore_errors=True)
		for item in backend.client.list_objects_v2(Bucket=bucket).get("Contents", []):
			backend.client.delete_object(Bucket=bucket, Key=item["Key"])
		backend.client.delete_bucket(Bucket=bucket)
	on, off = statistics.median(timings["with progress"]), statistics.median(timings["without"])
	print(
		f"PROG upload {upload_mb} MiB: with progress {on:.2f} s, without {off:.2f} s (medians), "
		f"ratio {on / off:.3f}; {len(events)} events emitted in {rounds} rounds"
	)
	return on, off


def main():
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--bench", default=os.environ.get("BENCH_PATH", os.path.expanduser("~/frappe-bench")))
	parser.add_argument("--site", required=True)
	parser.add_argument("--policies", type=int, default=500)
	parser.add_argument("--ticks", type=int, default=30)
	parser.add_argument("--rounds", type=int, default=3)
	parser.add_argument("--files-mb", type=int, default=150)
	parser.add_argument("--upload-mb", type=int, default=300)
	parser.add_argument("--only", choices=["tick", "progress"], help="Run one part only")
	args = parser.parse_args()

	frappe = connect(args.bench, args.site)
	try:
		print(
			f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, site {args.site}"
		)
		if args.only in (None, "tick"):
			benchmark_tick(frappe, args.policies, args.ticks)
		if args.only in (None, "progress"):
			results = [benchmark_local_progress(frappe, args.rounds, args.files_mb)]
			results.append(benchmark_upload_progress(args.rounds, args.upload_mb))
			on = sum(result[0] for result in results if result)
			off = sum(result[1] for result in results if result)
			print(f"PROG total: ratio {on / off:.3f} ({(on / off - 1) * 100:+.1f}%; target <= +2%)")
	finally:
		frappe.destroy()
	return 0


if __name__ == "__main__":
	sys.exit(main())
