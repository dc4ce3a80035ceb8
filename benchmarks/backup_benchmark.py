"""Backup Manager's policy run against a plain `bench backup --with-files` of the same site.

Fills the site (default bm-bench.localhost, created with Backup Manager when missing) with
a table of random text and random files, then times, in alternating order for --rounds rounds:

  plain  bench --site S backup --with-files                       (Frappe's gzip, one core)
  app    bench --site S backup-manager run --policy Benchmark      (with files, one run per
         --compression setting, e.g. Fast,Balanced)

and prints the medians, the ratio app/plain per setting (goal: <= 0.6 with Balanced, the default,
<= 0.5 with Fast), the peak RSS of each app run (goal: <= 200 MiB), seconds per GiB of site data
and the artifact sizes, with the pigz and gzip versions. Then it shows where the time goes:
_phase_profile.py runs both in one process (--profile-rounds, no CLI start-up) with every phase
timed.

--offsite (P3): the policy gets an S3 destination (BM_TEST_S3_ENDPOINT and keys in the
environment, e.g. a SeaweedFS from tests/seaweed.py) and uploads each artifact while the next is
written; the plain side is `bench backup --with-files` then a boto3 upload_file loop of its four
files (goal: app/plain <= 0.75).
Exits non-zero only when a step fails, never for missing a goal.

	~/frappe-bench/env/bin/python benchmarks/backup_benchmark.py --compression Fast,Balanced
	~/frappe-bench/env/bin/python benchmarks/backup_benchmark.py --offsite
	~/frappe-bench/env/bin/python benchmarks/backup_benchmark.py --size-db-mb 20 --size-files-mb 40 --rounds 1

Other work on the machine (2 cores) shows up as noise: the per-round lines give the load
average and the CPU seconds of the child processes, which concurrent load disturbs less.
"""

import argparse
import glob
import json
import os
import secrets
import sys
import time

from _bench_site import (
	DEFAULT_BENCH,
	DEFAULT_SITE,
	POLICY,
	Measurement,
	MiB,
	StepFailed,
	benchmark_lock,
	compressor_versions,
	ensure_policy,
	ensure_site,
	fail,
	fill_database,
	fill_files,
	format_mib,
	format_overhead,
	get_backup_log,
	get_children_cpu_seconds,
	get_database_sizes,
	get_site_path,
	median,
	remove_app_backups,
	remove_generated_data,
	run_bench,
	run_command,
	run_policy_with_peak_rss,
	settle_disk,
)

# Goals of issue 9: app/plain wall time per compression setting, and with an offsite upload.
GOALS = {"Balanced": 0.6, "Fast": 0.5}
OFFSITE_GOAL = 0.75
PEAK_RSS_GOAL_MIB = 200
DESTINATION = "Benchmark S3"
ARTIFACT_KINDS = ("database", "public_files", "private_files", "site_config")


def classify_artifacts(folder: str) -> dict[str, str]:
	"""Map artifact kind to path for the files a backup wrote into folder."""
	found = {}
	for path in glob.glob(os.path.join(folder, "*")):
		name = os.path.basename(path)
		# "-private-files.tar" also ends with "-files.tar": test it first.
		if name.endswith(".sql.gz"):
			found["database"] = path
		elif name.endswith("-private-files.tar"):
			found["private_files"] = path
		elif name.endswith("-files.tar"):
			found["public_files"] = path
		elif name.endswith("-site_config_backup.json"):
			found["site_config"] = path
	return found


def get_plain_backup_dir(bench_path: str, site: str) -> str:
	return get_site_path(bench_path, site, "private", "backups")


def clear_plain_backups(bench_path: str, site: str) -> None:
	for path in glob.glob(os.path.join(get_plain_backup_dir(bench_path, site), "*")):
		if os.path.isfile(path):
			os.remove(path)


def take_plain_backup(bench_path: str, site: str) -> str:
	run_bench(bench_path, "--site", site, "backup", "--with-files")
	return get_plain_backup_dir(bench_path, site)


def take_app_backup(bench_path: str, site: str, setting: str, offsite: dict | None) -> dict:
	values = {"compression": setting}
	if offsite:
		ensure_policy(
			bench_path, site, destination=DESTINATION, destination_env=offsite["env"], values=values
		)
	else:
		ensure_policy(bench_path, site, values=values)
	settle_disk()
	started = time.perf_counter()
	log, folder, peak = run_policy_with_peak_rss(bench_path, site)
	seconds = time.perf_counter() - started
	# Read now: the next run's retention (keep last 1) deletes this folder.
	sizes = {kind: os.path.getsize(path) for kind, path in classify_artifacts(folder).items()}
	return {"seconds": seconds, "log": log, "folder": folder, "peak": peak, "sizes": sizes}


def upload_plain_backup(folder: str, offsite: dict) -> None:
	"""What an operator (or Frappe's S3 backup) does after `bench backup`: upload_file per file."""
	import boto3

	client = boto3.session.Session().client(
		"s3",
		endpoint_url=offsite["endpoint"],
		region_name="us-east-1",
		aws_access_key_id=offsite["access_key"],
		aws_secret_access_key=offsite["secret_key"],
	)
	for path in sorted(classify_artifacts(folder).values()):
		client.upload_file(path, offsite["bucket"], f"bm-bench-plain/{os.path.basename(path)}")


def prepare_offsite() -> dict:
	import boto3

	endpoint = os.environ.get("BM_TEST_S3_ENDPOINT")
	if not endpoint:
		raise StepFailed(
			"--offsite needs BM_TEST_S3_ENDPOINT, BM_TEST_S3_ACCESS_KEY and BM_TEST_S3_SECRET_KEY "
			"(start one with: python tests/seaweed.py start --dir /tmp/s3 --env-file /tmp/s3.env)"
		)
	offsite = {
		"endpoint": endpoint,
		"access_key": os.environ["BM_TEST_S3_ACCESS_KEY"],
		"secret_key": os.environ["BM_TEST_S3_SECRET_KEY"],
		"bucket": f"bm-bench-{int(time.time())}",
	}
	boto3.session.Session().client(
		"s3",
		endpoint_url=endpoint,
		region_name="us-east-1",
		aws_access_key_id=offsite["access_key"],
		aws_secret_access_key=offsite["secret_key"],
	).create_bucket(Bucket=offsite["bucket"])
	offsite["env"] = {
		"BM_BENCH_S3_ENDPOINT": endpoint,
		"BM_BENCH_S3_BUCKET": offsite["bucket"],
		"BM_BENCH_S3_ACCESS_KEY": offsite["access_key"],
		"BM_BENCH_S3_SECRET_KEY": offsite["secret_key"],
	}
	return offsite


def profile_phases(bench_path: str, site: str, rounds: int) -> list[dict]:
	"""Run _phase_profile.py (plain new_backup and policy runs in one process); return its records."""
	script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_phase_profile.py")
	result = run_command(
		[
			os.path.join(bench_path, "env", "bin", "python"),
			script,
			"--site",
			site,
			"--policy",
			POLICY,
			"--rounds",
			str(rounds),
		],
		cwd=os.path.join(bench_path, "sites"),
		label="phase profile",
	)
	records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
	failed = [record for record in records if record["status"] != "Success"]
	if failed:
		raise StepFailed(f"a profiled run ended {failed[0]['status']}")
	return records


def print_phases(records: list[dict]) -> None:
	plain = [record for record in records if record["side"] == "plain"]
	app = [record for record in records if record["side"] == "app"]
	phases = list(dict.fromkeys(name for record in records for name in record["phases"]))
	print(f"\nIn-process phases (no CLI start-up), median of {len(app)} run(s) each, seconds:")
	print(f"  {'phase':58}{'plain':>8}{'app':>8}")
	for phase in phases:
		plain_value = median([record["phases"].get(phase, 0.0) for record in plain]) if plain else 0.0
		app_value = median([record["phases"].get(phase, 0.0) for record in app])
		print(f"  {phase:58}{plain_value:8.2f}{app_value:8.2f}")
	other = median([record["total"] - sum(record["phases"].values()) for record in app])
	plain_other = median([record["total"] - sum(record["phases"].values()) for record in plain])
	print(f"  {'rest (log saves, commits, imports)':58}{plain_other:8.2f}{other:8.2f}")
	plain_total = median([record["total"] for record in plain])
	app_total = median([record["total"] for record in app])
	print(f"  {'total':58}{plain_total:8.2f}{app_total:8.2f}   {format_overhead(app_total, plain_total)}")


def print_rounds(measurements: list[Measurement]) -> None:
	print(
		f"\n{'round':>5}  {'side':18}  {'wall s':>8}  {'child CPU s':>11}  {'load 1m':>7}  {'peak RSS MiB':>12}"
	)
	for measurement in measurements:
		peak = measurement.steps.get("peak", 0.0)
		print(
			f"{measurement.steps.get('round', 0):>5.0f}  {measurement.label:18}  {measurement.seconds:8.1f}  "
			f"{measurement.cpu_seconds:11.1f}  {measurement.load_average:7.2f}  {peak:12.1f}"
		)


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--bench", default=DEFAULT_BENCH, help="bench folder (default: %(default)s)")
	parser.add_argument(
		"--site", default=DEFAULT_SITE, help="benchmark site, created if missing (default: %(default)s)"
	)
	parser.add_argument(
		"--size-db-mb", type=int, default=200, help="MiB of table text to generate (default: %(default)s)"
	)
	parser.add_argument(
		"--size-files-mb", type=int, default=500, help="MiB of files to generate (default: %(default)s)"
	)
	parser.add_argument(
		"--rounds", type=int, default=3, help="rounds of plain + app, alternating (default: %(default)s)"
	)
	parser.add_argument(
		"--compression",
		default="Balanced",
		help="the policy's Compression for the app side; a comma list runs each (default: %(default)s)",
	)
	parser.add_argument(
		"--offsite", action="store_true", help="P3: with an S3 destination, against backup then upload"
	)
	parser.add_argument(
		"--dedup-first",
		action="store_true",
		help="issue 12: a policy run whose destination deduplicates files, each into an empty bucket "
		"(a first deduplicated backup), against the same run uploading whole archives",
	)
	parser.add_argument(
		"--profile-rounds",
		type=int,
		default=1,
		help="in-process rounds for the phase breakdown; 0 skips it (default: %(default)s)",
	)
	parser.add_argument("--keep", action="store_true", help="keep the generated rows, files and last backups")
	arguments = parser.parse_args()
	bench_path, site = os.path.abspath(arguments.bench), arguments.site
	sys.path.insert(0, os.path.join(bench_path, "apps", "backup_manager"))

	try:
		with benchmark_lock(site):
			if arguments.dedup_first:
				run_dedup_first(arguments, bench_path, site)
			else:
				run_benchmark(arguments, bench_path, site)
	except StepFailed as exc:
		fail(str(exc))


def take_plain(bench_path: str, site: str, offsite: dict | None) -> dict:
	clear_plain_backups(bench_path, site)
	settle_disk()
	started = time.perf_counter()
	folder = take_plain_backup(bench_path, site)
	backup_seconds = time.perf_counter() - started
	if offsite:
		upload_plain_backup(folder, offsite)
	return {"seconds": time.perf_counter() - started, "backup": backup_seconds}


def run_rounds(arguments, bench_path: str, site: str, settings: list[str], offsite: dict | None):
	measurements: list[Measurement] = []
	last_app: dict[str, dict] = {}
	for round_number in range(1, arguments.rounds + 1):
		# Rotate the order so that no side always runs with the warmer caches.
		sides = ["plain", *settings]
		shift = (round_number - 1) % len(sides)
		sides = sides[shift:] + sides[:shift]
		for side in sides:
			load_average = os.getloadavg()[0]
			cpu_before = get_children_cpu_seconds()
			if side == "plain":
				result = take_plain(bench_path, site, offsite)
				label = "plain" + (" + upload" if offsite else "")
			else:
				result = take_app_backup(bench_path, site, side, offsite)
				last_app[side] = result
				label = f"app {side}"
			measurement = Measurement(
				label, result["seconds"], get_children_cpu_seconds() - cpu_before, load_average
			)
			measurement.steps = {"round": round_number, "peak": result.get("peak", 0.0)}
			measurements.append(measurement)
			print(
				f"round {round_number}: {label:18} {measurement.seconds:7.1f} s wall, "
				f"{measurement.cpu_seconds:6.1f} s child CPU, load {load_average:.2f}"
				+ (f", peak RSS {result['peak']:.0f} MiB" if "peak" in result else ""),
				flush=True,
			)
	return measurements, last_app


def run_benchmark(arguments: argparse.Namespace, bench_path: str, site: str) -> None:
	started = time.perf_counter()
	settings = [setting.strip() for setting in arguments.compression.split(",") if setting.strip()]
	offsite = prepare_offsite() if arguments.offsite else None
	try:
		ensure_site(bench_path, site)
		ensure_policy(bench_path, site)
		fill_database(bench_path, site, arguments.size_db_mb)
		files = fill_files(bench_path, site, arguments.size_files_mb)
		sizes = get_database_sizes(bench_path, site)
		print(
			f"Site {site}: payload table {format_mib(sizes['table'])} on disk ({sizes['rows']:,} rows, "
			f"{format_mib(sizes['text'])} of text), whole database {format_mib(sizes['database'])}; "
			f"{format_mib(files['bytes'])} in {files['files']:,} generated files. "
			f"Set-up took {time.perf_counter() - started:.0f} s.",
			flush=True,
		)
		print(f"Compressors: {compressor_versions()}; {os.cpu_count()} CPUs", flush=True)
		measurements, last_app = run_rounds(arguments, bench_path, site, settings, offsite)

		plain_dir = get_plain_backup_dir(bench_path, site)
		plain_artifacts = classify_artifacts(plain_dir)
		plain_sizes = {kind: os.path.getsize(path) for kind, path in plain_artifacts.items()}
		app_sizes = {setting: run["sizes"] for setting, run in last_app.items()}
		logs = {setting: get_backup_log(bench_path, site, run["log"]) for setting, run in last_app.items()}
		phases = (
			profile_phases(bench_path, site, arguments.profile_rounds) if arguments.profile_rounds > 0 else []
		)
	finally:
		ensure_policy(bench_path, site)  # no destination left behind, default compression
		if not arguments.keep:
			clear_plain_backups(bench_path, site)

	print_rounds(measurements)
	print(f"\nArtifacts (last round){'':18}{'plain':>14}" + "".join(f"{'app ' + s:>16}" for s in settings))
	for kind in ARTIFACT_KINDS:
		print(
			f"  {kind:38}{format_mib(plain_sizes.get(kind, 0)):>14}"
			+ "".join(f"{format_mib(app_sizes[s].get(kind, 0)):>16}" for s in settings)
		)
	for setting in settings:
		print(
			f"  app {setting}: compressor {logs[setting].get('compressor')} level {logs[setting].get('compression_level')}"
		)

	data_gib = (sizes["text"] + files["bytes"]) / (1024 * MiB)
	plain_runs = [m for m in measurements if m.label.startswith("plain")]
	plain = median([m.seconds for m in plain_runs])
	plain_cpu = median([m.cpu_seconds for m in plain_runs])
	plain_label = "bench backup --with-files" + (" + boto3 upload" if offsite else "")
	print(f"\nSite data: {data_gib:.2f} GiB (table text + files)")
	print(f"{'':40}{'median wall s':>14}{'median CPU s':>14}{'s per GiB':>11}{'peak RSS MiB':>14}")
	print(f"  {plain_label:38}{plain:14.1f}{plain_cpu:14.1f}{plain / data_gib:11.1f}")
	for setting in settings:
		runs = [m for m in measurements if m.label == f"app {setting}"]
		app, app_cpu = median([m.seconds for m in runs]), median([m.cpu_seconds for m in runs])
		peak = max(m.steps["peak"] for m in runs)
		print(
			f"  {'backup-manager run, ' + setting:38}{app:14.1f}{app_cpu:14.1f}{app / data_gib:11.1f}{peak:14.0f}"
		)
	print()
	for setting in settings:
		runs = [m for m in measurements if m.label == f"app {setting}"]
		app = median([m.seconds for m in runs])
		goal = OFFSITE_GOAL if offsite else GOALS.get(setting)
		verdict = "" if goal is None else f" (goal <= {goal}: {'met' if app / plain <= goal else 'NOT met'})"
		print(f"P{'3' if offsite else '1'} {setting}: app/plain = {app / plain:.3f}{verdict}")
	peak = max(m.steps["peak"] for m in measurements if m.label.startswith("app"))
	print(
		f"Peak RSS of a run: {peak:.0f} MiB (goal <= {PEAK_RSS_GOAL_MIB}: "
		f"{'met' if peak <= PEAK_RSS_GOAL_MIB else 'NOT met'})"
	)

	if phases:
		print_phases(phases)

	if not arguments.keep:
		remove_app_backups(bench_path, site)
		remove_generated_data(bench_path, site)
		print("\nRemoved the generated rows, files and backups (use --keep to keep them).")


def create_bucket(offsite: dict) -> str:
	import boto3

	bucket = f"bm-bench-{secrets.token_hex(6)}"
	boto3.session.Session().client(
		"s3",
		endpoint_url=offsite["endpoint"],
		region_name="us-east-1",
		aws_access_key_id=offsite["access_key"],
		aws_secret_access_key=offsite["secret_key"],
	).create_bucket(Bucket=bucket)
	return bucket


def run_dedup_first(arguments: argparse.Namespace, bench_path: str, site: str) -> None:
	"""Issue 12's "first deduplicated backup is no slower than today's tar upload", as whole runs."""
	offsite = prepare_offsite()
	timings: dict[str, list[float]] = {"whole archives": [], "deduplicated": []}
	uploaded: dict[str, list[int]] = {"whole archives": [], "deduplicated": []}
	try:
		ensure_site(bench_path, site)
		ensure_policy(bench_path, site)
		fill_database(bench_path, site, arguments.size_db_mb)
		files = fill_files(bench_path, site, arguments.size_files_mb)
		print(f"Site {site}: {format_mib(files['bytes'])} in {files['files']:,} generated files", flush=True)
		for round_number in range(1, arguments.rounds + 1):
			sides = ["whole archives", "deduplicated"]
			if round_number % 2 == 0:
				sides.reverse()
			for side in sides:
				# An empty bucket each time: the deduplicated destination holds no file yet.
				env = {**offsite["env"], "BM_BENCH_S3_BUCKET": create_bucket(offsite)}
				destination = DESTINATION + (" Dedup" if side == "deduplicated" else "")
				ensure_policy(bench_path, site, destination=destination, destination_env=env)
				settle_disk()
				started = time.perf_counter()
				log_name, _folder, _peak = run_policy_with_peak_rss(bench_path, site)
				timings[side].append(time.perf_counter() - started)
				log = get_backup_log(bench_path, site, log_name)
				uploads = log.get("uploads", [])
				if log["status"] != "Success" or not uploads:
					raise StepFailed(f"{log_name} ({side}) ended {log['status']}")
				uploaded[side].append(sum(row.get("bytes") or 0 for row in uploads))
				print(
					f"round {round_number}: policy run uploading {side:15} {timings[side][-1]:6.1f} s, "
					f"{format_mib(uploaded[side][-1])} uploaded, load {os.getloadavg()[0]:.2f}",
					flush=True,
				)
	finally:
		ensure_policy(bench_path, site)
		if not arguments.keep:
			remove_app_backups(bench_path, site)
			remove_generated_data(bench_path, site)
	whole, dedup = median(timings["whole archives"]), median(timings["deduplicated"])
	print(
		f"\nFirst backup with an S3 destination (policy run, CLI, medians of {arguments.rounds}): "
		f"whole archives {whole:.1f} s, deduplicated files {dedup:.1f} s: ratio {dedup / whole:.2f} (goal <= 1.1)"
	)


if __name__ == "__main__":
	main()
