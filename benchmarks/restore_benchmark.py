"""A restore through Backup Manager's generated plan against the same steps done by hand.

Both restore the same backup (200 MB database + 500 MB files by default) into a new site:
the plan (`restore-plan LOG --new-site N --format sh`, run with bash: verify + restore +
migrate) and by hand (`bench new-site`, `bench restore ... --with-public-files
--with-private-files`, `bench migrate`). Prints both times, the ratio and the overhead
(target <= 5%). The database root password comes from sites/common_site_config.json.

	python benchmarks/restore_benchmark.py [--size-db-mb 200] [--size-files-mb 500]
"""

import argparse
import json
import os
import secrets
import subprocess
import tempfile

from _bench_site import (
	DEFAULT_BENCH,
	bench,
	ensure_policy,
	ensure_site,
	fill_database,
	fill_files,
	remove_generated_data,
	timed,
)

POLICY = "Benchmark"


def drop(bench_path: str, site: str) -> None:
	if os.path.isdir(os.path.join(bench_path, "sites", site)):
		bench(bench_path, "drop-site", site, "--force", "--no-backup")


def restore_with_plan(bench_path: str, site: str, log: str, target: str) -> None:
	script = bench(
		bench_path,
		"--site",
		site,
		"backup-manager",
		"restore-plan",
		log,
		"--new-site",
		target,
		"--format",
		"sh",
	).stdout
	with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as handle:
		handle.write(script)
	try:
		result = subprocess.run(
			["bash", handle.name], capture_output=True, text=True, stdin=subprocess.DEVNULL
		)
		if result.returncode != 0:
			raise SystemExit(f"plan failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
	finally:
		os.remove(handle.name)


def restore_by_hand(bench_path: str, artifacts: dict[str, str], target: str) -> None:
	bench(bench_path, "new-site", target, "--admin-password", secrets.token_urlsafe(16))
	bench(
		bench_path,
		"--site",
		target,
		"restore",
		artifacts["database"],
		"--with-public-files",
		artifacts["public_files"],
		"--with-private-files",
		artifacts["private_files"],
	)
	bench(bench_path, "--site", target, "migrate", env={"BACKUP_MANAGER_SKIP_MIGRATE_BACKUP": "1"})


def main():
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--bench", default=DEFAULT_BENCH)
	parser.add_argument("--site", default="bm-bench.localhost")
	parser.add_argument("--size-db-mb", type=int, default=200)
	parser.add_argument("--size-files-mb", type=int, default=500)
	parser.add_argument("--keep", action="store_true", help="keep the generated data afterwards")
	arguments = parser.parse_args()

	ensure_site(arguments.bench, arguments.site)
	ensure_policy(arguments.bench, arguments.site, POLICY)
	fill_database(arguments.bench, arguments.site, arguments.size_db_mb)
	fill_files(arguments.bench, arguments.site, arguments.size_files_mb)
	run = bench(arguments.bench, "--site", arguments.site, "backup-manager", "run", "--policy", POLICY).stdout
	log = run.strip().splitlines()[-1].split("\t")[0]
	listing = json.loads(
		bench(
			arguments.bench,
			"--site",
			arguments.site,
			"execute",
			"frappe.client.get",
			"--kwargs",
			json.dumps({"doctype": "Backup Log", "name": log}),
		)
		.stdout.strip()
		.splitlines()[-1]
	)
	artifacts = {row["kind"]: row["local_path"] for row in listing["artifacts"]}
	size = sum(row["size"] for row in listing["artifacts"])
	print(f"backup {log}: {size / 2**20:.0f} MiB in {len(artifacts)} artifacts", flush=True)

	by_plan, by_hand = "bm-bench-plan.localhost", "bm-bench-hand.localhost"
	try:
		drop(arguments.bench, by_plan)
		drop(arguments.bench, by_hand)
		hand_seconds, _ = timed(restore_by_hand, arguments.bench, artifacts, by_hand)
		print(f"by hand: {hand_seconds:.1f} s", flush=True)
		plan_seconds, _ = timed(restore_with_plan, arguments.bench, arguments.site, log, by_plan)
		print(f"plan:    {plan_seconds:.1f} s", flush=True)
	finally:
		drop(arguments.bench, by_plan)
		drop(arguments.bench, by_hand)
		if not arguments.keep:
			remove_generated_data(arguments.bench, arguments.site)

	print()
	print(f"{'new-site + restore + migrate by hand':44}{hand_seconds:8.1f} s")
	print(f"{'generated plan (verify + restore + migrate)':44}{plan_seconds:8.1f} s")
	print(
		f"ratio plan/hand: {plan_seconds / hand_seconds:.3f}   overhead: {(plan_seconds / hand_seconds - 1) * 100:+.1f}%   (target <= +5%)"
	)


if __name__ == "__main__":
	main()
