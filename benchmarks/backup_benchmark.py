"""Backup Manager's policy run against a plain `bench backup --with-files` of the same site.

Prints both times (median of alternating rounds), the ratio and the overhead. Target: <= 5%
on a site with >= 200 MB of database and >= 500 MB of files (the defaults).

	python benchmarks/backup_benchmark.py [--size-db-mb 200] [--size-files-mb 500] [--rounds 3]
"""

import argparse
import glob
import os

from _bench_site import (
	DEFAULT_BENCH,
	bench,
	ensure_policy,
	ensure_site,
	fill_database,
	fill_files,
	median,
	remove_generated_data,
	timed,
)

POLICY = "Benchmark"


def plain_backup(bench_path: str, site: str) -> int:
	backups = os.path.join(bench_path, "sites", site, "private", "backups")
	for path in glob.glob(os.path.join(backups, "*")):
		os.remove(path)
	bench(bench_path, "--site", site, "backup", "--with-files")
	return sum(os.path.getsize(path) for path in glob.glob(os.path.join(backups, "*")))


def app_backup(bench_path: str, site: str) -> int:
	output = bench(bench_path, "--site", site, "backup-manager", "run", "--policy", POLICY).stdout
	folder = output.strip().splitlines()[-1].split("\t")[-1]
	return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))


def main():
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--bench", default=DEFAULT_BENCH)
	parser.add_argument("--site", default="bm-bench.localhost")
	parser.add_argument("--size-db-mb", type=int, default=200)
	parser.add_argument("--size-files-mb", type=int, default=500)
	parser.add_argument("--rounds", type=int, default=3)
	parser.add_argument("--keep", action="store_true", help="keep the generated data afterwards")
	arguments = parser.parse_args()

	ensure_site(arguments.bench, arguments.site)
	ensure_policy(arguments.bench, arguments.site, POLICY)
	database_bytes = fill_database(arguments.bench, arguments.site, arguments.size_db_mb)
	file_bytes = fill_files(arguments.bench, arguments.site, arguments.size_files_mb)
	print(
		f"site {arguments.site}: generated {database_bytes / 2**20:.0f} MiB of table data, {file_bytes / 2**20:.0f} MiB of files"
	)

	plain_times, app_times, plain_size, app_size = [], [], 0, 0
	try:
		for round_number in range(1, arguments.rounds + 1):
			# Alternate the order so caches and disk state favour neither side.
			order = [("plain", plain_backup), ("app", app_backup)]
			if round_number % 2 == 0:
				order.reverse()
			for label, function in order:
				seconds, size = timed(function, arguments.bench, arguments.site)
				if label == "plain":
					plain_times.append(seconds)
					plain_size = size
				else:
					app_times.append(seconds)
					app_size = size
				print(
					f"round {round_number}: {label:5} {seconds:7.1f} s  ({size / 2**20:.0f} MiB written)",
					flush=True,
				)
	finally:
		for path in glob.glob(
			os.path.join(arguments.bench, "sites", arguments.site, "private", "backups", "*")
		):
			os.remove(path)
		if not arguments.keep:
			remove_generated_data(arguments.bench, arguments.site)

	plain, app = median(plain_times), median(app_times)
	print()
	print(f"{'':32}{'median s':>10}{'MiB':>8}")
	print(f"{'bench backup --with-files':32}{plain:10.1f}{plain_size / 2**20:8.0f}")
	print(f"{'backup-manager run (policy)':32}{app:10.1f}{app_size / 2**20:8.0f}")
	print(f"ratio app/plain: {app / plain:.3f}   overhead: {(app / plain - 1) * 100:+.1f}%   (target <= +5%)")


if __name__ == "__main__":
	main()
