"""Backup Manager's policy run against a plain `bench backup --with-files` of the same site.

Fills the site (default bm-bench.localhost, created with Backup Manager when missing) with
a table of random text and random files, then times, in alternating order for --rounds rounds:

  plain  bench --site S backup --with-files
  app    bench --site S backup-manager run --policy Benchmark   (with files, no destinations)

and prints the medians, the ratio app/plain and the overhead (target <= +5%) and the artifact
sizes. Then it shows where the app's extra time goes: _phase_profile.py runs both in one
process (--profile-rounds, no CLI start-up) with every phase timed, and the app's per-artifact
pass (gzip/tar check + sha256) is timed alone on each artifact of the last backup.
Exits non-zero only when a step fails, never for missing the target.

	~/frappe-bench/env/bin/python benchmarks/backup_benchmark.py                 # 200 MB db, 500 MB files
	~/frappe-bench/env/bin/python benchmarks/backup_benchmark.py --size-db-mb 20 --size-files-mb 40 --rounds 1

Other work on the machine (2 cores) shows up as noise: the per-round lines give the load
average and the CPU seconds of the child processes, which concurrent load disturbs less.
"""

import argparse
import glob
import json
import os
import sys
import time

from _bench_site import (
	DEFAULT_BENCH,
	DEFAULT_SITE,
	POLICY,
	Measurement,
	StepFailed,
	benchmark_lock,
	ensure_policy,
	ensure_site,
	fail,
	fill_database,
	fill_files,
	format_mib,
	format_overhead,
	get_backup_log,
	get_database_sizes,
	get_gzip_uncompressed_size,
	get_site_path,
	measure,
	median,
	remove_app_backups,
	remove_generated_data,
	run_bench,
	run_command,
	run_policy,
	settle_disk,
)

TARGET_OVERHEAD_PERCENT = 5.0
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


def take_app_backup(bench_path: str, site: str) -> str:
	log, folder = run_policy(bench_path, site)
	return f"{log}\t{folder}"


def time_artifact_checks(folder: str) -> list[tuple[str, float]]:
	"""Time the app's per-artifact pass (checks + sha256) on each artifact alone, one thread."""
	from backup_manager.core import checksums

	try:
		from backup_manager.local_backup import inspect_artifact
	except ImportError:
		inspect_artifact = None
	timings = []
	for kind, path in sorted(classify_artifacts(folder).items()):
		started = time.perf_counter()
		if inspect_artifact:
			inspect_artifact(kind, path, None)
		else:
			checksums.sha256_file(path)
		timings.append((f"{kind} ({format_mib(os.path.getsize(path))})", time.perf_counter() - started))
	return timings


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
	print(f"\n{'round':>5}  {'side':5}  {'wall s':>8}  {'child CPU s':>11}  {'load 1m':>7}")
	for index, measurement in enumerate(measurements):
		print(
			f"{index // 2 + 1:>5}  {measurement.label:5}  {measurement.seconds:8.1f}  "
			f"{measurement.cpu_seconds:11.1f}  {measurement.load_average:7.2f}"
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
		"--rounds", type=int, default=3, help="CLI rounds of plain + app, alternating (default: %(default)s)"
	)
	parser.add_argument(
		"--profile-rounds",
		type=int,
		default=2,
		help="in-process rounds for the phase breakdown; 0 skips it (default: %(default)s)",
	)
	parser.add_argument("--keep", action="store_true", help="keep the generated rows, files and last backups")
	arguments = parser.parse_args()
	bench_path, site = os.path.abspath(arguments.bench), arguments.site
	sys.path.insert(0, os.path.join(bench_path, "apps", "backup_manager"))

	try:
		with benchmark_lock(site):
			run_benchmark(arguments, bench_path, site)
	except StepFailed as exc:
		fail(str(exc))


def run_benchmark(arguments: argparse.Namespace, bench_path: str, site: str) -> None:
	started = time.perf_counter()
	measurements: list[Measurement] = []
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

		app_value = ""
		for round_number in range(1, arguments.rounds + 1):
			# Alternate the order so that neither side always runs with the warmer caches.
			sides = ["plain", "app"] if round_number % 2 else ["app", "plain"]
			for side in sides:
				if side == "plain":
					clear_plain_backups(bench_path, site)
				settle_disk()
				if side == "plain":
					measurement = measure("plain", take_plain_backup, bench_path, site)
				else:
					measurement = measure("app", take_app_backup, bench_path, site)
					app_value = measurement.output
				measurements.append(measurement)
				print(
					f"round {round_number}: {side:5} {measurement.seconds:7.1f} s wall, "
					f"{measurement.cpu_seconds:6.1f} s child CPU, load {measurement.load_average:.2f}",
					flush=True,
				)

		app_log, app_dir = app_value.split("\t")
		log = get_backup_log(bench_path, site, app_log)
		plain_dir = get_plain_backup_dir(bench_path, site)
		plain_sizes = {kind: os.path.getsize(path) for kind, path in classify_artifacts(plain_dir).items()}
		plain_dump = classify_artifacts(plain_dir).get("database")
		plain_uncompressed = get_gzip_uncompressed_size(plain_dump) if plain_dump else 0
		app_artifacts = classify_artifacts(app_dir)
		app_sizes = {kind: os.path.getsize(path) for kind, path in app_artifacts.items()}
		app_uncompressed = (
			get_gzip_uncompressed_size(app_artifacts["database"]) if "database" in app_artifacts else 0
		)
		checks = time_artifact_checks(app_dir)
		phases = (
			profile_phases(bench_path, site, arguments.profile_rounds) if arguments.profile_rounds > 0 else []
		)
	finally:
		if not arguments.keep:
			clear_plain_backups(bench_path, site)

	plain_runs = [m for m in measurements if m.label == "plain"]
	app_runs = [m for m in measurements if m.label == "app"]
	plain, app = median([m.seconds for m in plain_runs]), median([m.seconds for m in app_runs])
	plain_cpu, app_cpu = (
		median([m.cpu_seconds for m in plain_runs]),
		median([m.cpu_seconds for m in app_runs]),
	)

	print_rounds(measurements)
	print(f"\nArtifacts (last round){'':18}{'plain':>14}{'app':>14}")
	for kind in ARTIFACT_KINDS:
		print(
			f"  {kind:38}{format_mib(plain_sizes.get(kind, 0)):>14}{format_mib(app_sizes.get(kind, 0)):>14}"
		)
	print(
		f"  {'database dump uncompressed':38}{format_mib(plain_uncompressed):>14}{format_mib(app_uncompressed):>14}"
	)
	print(
		f"  {'total':38}{format_mib(sum(plain_sizes.values())):>14}{format_mib(sum(app_sizes.values())):>14}"
	)

	print(f"\n{'':40}{'median wall s':>14}{'median CPU s':>14}")
	print(f"  {'bench backup --with-files':38}{plain:14.1f}{plain_cpu:14.1f}")
	print(f"  {'backup-manager run --policy':38}{app:14.1f}{app_cpu:14.1f}")
	print(f"  (last app run's Backup Log duration, in-process: {log.get('duration') or 0:.1f} s)")
	overhead = (app / plain - 1) * 100
	verdict = "within" if overhead <= TARGET_OVERHEAD_PERCENT else "ABOVE"
	print(f"\nWall: {format_overhead(app, plain)} -> {verdict} the target of +{TARGET_OVERHEAD_PERCENT:.0f}%")
	print(f"CPU:  {format_overhead(app_cpu, plain_cpu)}")

	if phases:
		print_phases(phases)
	print(
		"\nThe app's per-artifact pass (check + sha256) on each artifact alone, one thread, files in page cache:"
	)
	for label, seconds in checks:
		print(f"  {label:58}{seconds:8.2f}")
	print(f"  {'sum (the app runs two at a time)':58}{sum(seconds for _label, seconds in checks):8.2f}")

	if not arguments.keep:
		remove_app_backups(bench_path, site)
		remove_generated_data(bench_path, site)
		print("\nRemoved the generated rows, files and backups (use --keep to keep them).")


if __name__ == "__main__":
	main()
