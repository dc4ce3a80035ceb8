"""Backup Manager's policy run against a plain `bench backup --with-files` of the same site.

Fills the site (default bm-bench.localhost, created with Backup Manager when missing) with
a table of random text and random files, then times, in alternating order for --rounds rounds:

  plain  bench --site S backup --with-files
  app    bench --site S backup-manager run --policy Benchmark   (with files, no destinations)

and prints the medians, the ratio app/plain and the overhead (target <= +5%), the artifact
sizes, and where the app's extra time goes: its sha256, gzip and tar checks timed one by one
on the last backup it took. Exits non-zero only when a step fails, never for missing the target.

	~/frappe-bench/env/bin/python benchmarks/backup_benchmark.py                 # 200 MB db, 500 MB files
	~/frappe-bench/env/bin/python benchmarks/backup_benchmark.py --size-db-mb 20 --size-files-mb 40 --rounds 1

Other work on the machine (2 cores) shows up as noise: the per-round lines give the load
average and the CPU seconds of the child processes, which concurrent load disturbs less.
"""

import argparse
import glob
import os
import subprocess
import sys
import time

from _bench_site import (
	DEFAULT_BENCH,
	DEFAULT_SITE,
	POLICY,
	Measurement,
	StepFailed,
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
	run_policy,
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


def profile_app_checks(folder: str) -> list[tuple[str, float]]:
	"""Time, one by one, the extra passes local_backup.take_backup makes over a finished backup."""
	from backup_manager.core import checksums

	artifacts = classify_artifacts(folder)
	timings = []
	for kind, path in artifacts.items():
		started = time.perf_counter()
		checksums.sha256_file(path)
		timings.append((f"sha256 {kind} ({format_mib(os.path.getsize(path))})", time.perf_counter() - started))
	if "database" in artifacts:
		started = time.perf_counter()
		checksums.verify_gzip_complete(artifacts["database"])
		timings.append(("gzip check of the database dump (full decompress)", time.perf_counter() - started))
	for kind in ("public_files", "private_files"):
		if kind in artifacts:
			started = time.perf_counter()
			checksums.verify_tar_readable(artifacts[kind])
			timings.append((f"tar check of {kind} (member headers)", time.perf_counter() - started))
	return timings


def time_git_calls(bench_path: str) -> tuple[str, float]:
	"""get_installed_apps runs two git commands per installed app; time them for frappe + backup_manager."""
	started = time.perf_counter()
	for app in ("frappe", "backup_manager"):
		app_dir = os.path.join(bench_path, "apps", app)
		for args in (("rev-parse", "--abbrev-ref", "HEAD"), ("rev-parse", "HEAD")):
			subprocess.run(["git", "-C", app_dir, *args], capture_output=True, check=False)
	return ("git rev-parse x4 (installed apps' branch and commit)", time.perf_counter() - started)


def print_rounds(measurements: list[Measurement]) -> None:
	print(f"\n{'round':>5}  {'side':5}  {'wall s':>8}  {'child CPU s':>11}  {'load 1m':>7}")
	for index, measurement in enumerate(measurements):
		print(
			f"{index // 2 + 1:>5}  {measurement.label:5}  {measurement.seconds:8.1f}  "
			f"{measurement.cpu_seconds:11.1f}  {measurement.load_average:7.2f}"
		)


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
	parser.add_argument("--bench", default=DEFAULT_BENCH, help="bench folder (default: %(default)s)")
	parser.add_argument("--site", default=DEFAULT_SITE, help="benchmark site, created if missing (default: %(default)s)")
	parser.add_argument("--size-db-mb", type=int, default=200, help="MiB of table text to generate (default: %(default)s)")
	parser.add_argument("--size-files-mb", type=int, default=500, help="MiB of files to generate (default: %(default)s)")
	parser.add_argument("--rounds", type=int, default=3, help="rounds of plain + app, alternating (default: %(default)s)")
	parser.add_argument("--keep", action="store_true", help="keep the generated rows, files and last backups")
	arguments = parser.parse_args()
	bench_path, site = os.path.abspath(arguments.bench), arguments.site
	sys.path.insert(0, os.path.join(bench_path, "apps", "backup_manager"))

	started = time.perf_counter()
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

		measurements: list[Measurement] = []
		plain_dir = app_value = ""
		for round_number in range(1, arguments.rounds + 1):
			# Alternate the order so that neither side always runs with the warmer caches.
			sides = ["plain", "app"] if round_number % 2 else ["app", "plain"]
			for side in sides:
				if side == "plain":
					clear_plain_backups(bench_path, site)
					measurement = measure("plain", take_plain_backup, bench_path, site)
					plain_dir = get_plain_backup_dir(bench_path, site)
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
		plain_artifacts = classify_artifacts(plain_dir)
		app_artifacts = classify_artifacts(app_dir)
		profile = profile_app_checks(app_dir)
		profile.append(time_git_calls(bench_path))
	except StepFailed as exc:
		fail(str(exc))
		return
	finally:
		if not arguments.keep:
			clear_plain_backups(bench_path, site)

	plain_times = [m.seconds for m in measurements if m.label == "plain"]
	app_times = [m.seconds for m in measurements if m.label == "app"]
	plain_cpu = [m.cpu_seconds for m in measurements if m.label == "plain"]
	app_cpu = [m.cpu_seconds for m in measurements if m.label == "app"]
	plain, app = median(plain_times), median(app_times)

	print_rounds(measurements)
	print(f"\nArtifacts (last round){'':18}{'plain':>14}{'app':>14}")
	for kind in ARTIFACT_KINDS:
		plain_size = os.path.getsize(plain_artifacts[kind]) if kind in plain_artifacts else 0
		app_size = os.path.getsize(app_artifacts[kind]) if kind in app_artifacts else 0
		print(f"  {kind:38}{format_mib(plain_size):>14}{format_mib(app_size):>14}")
	if "database" in app_artifacts:
		print(
			f"  {'database dump uncompressed':38}{format_mib(get_gzip_uncompressed_size(plain_artifacts['database'])):>14}"
			f"{format_mib(get_gzip_uncompressed_size(app_artifacts['database'])):>14}"
		)
	print(f"  {'total':38}{format_mib(sum(map(os.path.getsize, plain_artifacts.values()))):>14}"
		f"{format_mib(sum(map(os.path.getsize, app_artifacts.values()))):>14}")

	print(f"\n{'':40}{'median wall s':>14}{'median CPU s':>14}")
	print(f"  {'bench backup --with-files':38}{plain:14.1f}{median(plain_cpu):14.1f}")
	print(f"  {'backup-manager run --policy':38}{app:14.1f}{median(app_cpu):14.1f}")
	print(f"  app's own Backup Log duration (last run, in-process): {log.get('duration') or 0:.1f} s")
	overhead = (app / plain - 1) * 100
	verdict = "within" if overhead <= TARGET_OVERHEAD_PERCENT else "ABOVE"
	print(f"\nWall: {format_overhead(app, plain)} -> {verdict} the target of +{TARGET_OVERHEAD_PERCENT:.0f}%")
	print(f"CPU:  {format_overhead(median(app_cpu), median(plain_cpu))}")

	print("\nWhere the app's extra passes go (timed alone on the last app backup, files in page cache):")
	for label, seconds in profile:
		print(f"  {label:60}{seconds:7.2f} s")
	extra = sum(seconds for _label, seconds in profile)
	print(f"  {'total':60}{extra:7.2f} s  = {extra / plain * 100:.1f}% of the plain backup's median")

	if not arguments.keep:
		remove_app_backups(bench_path, site)
		remove_generated_data(bench_path, site)
		print("\nRemoved the generated rows, files and backups (use --keep to keep them).")


if __name__ == "__main__":
	main()
