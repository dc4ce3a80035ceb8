"""A restore drill against the restore plan it runs, for the same backup.

Fills the site (default bm-bench.localhost, created with Backup Manager when missing) like
backup_benchmark.py, takes one backup, then for --rounds rounds, in alternating order:

  plan   the generated restore plan (restore-plan --new-site --format sh, run with bash) into
         bm-bench-plan.localhost, then bench drop-site (timed apart)
  drill  bench --site S backup-manager drill LOG: the same plan into a throwaway site, row
         counts, migrate, ping, keys, apps, files, then the drop of the drill site

Prints the medians, drill / (plan + drop) and the drill's own split as it records it
(restore seconds against checks seconds: the checks should add at most 10%).
Exits non-zero only when a step fails, never for missing the target.

	~/frappe-bench/env/bin/python benchmarks/drill_benchmark.py --size-db-mb 20 --size-files-mb 40 --rounds 1
"""

import argparse
import json
import os
import time

from _bench_site import (
	DEFAULT_BENCH,
	DEFAULT_SITE,
	StepFailed,
	benchmark_lock,
	drop_site,
	fail,
	format_overhead,
	measure,
	median,
	remove_app_backups,
	remove_generated_data,
	run_bench,
	settle_disk,
	wait_for_other_restores,
)
from restore_benchmark import PLAN_SITE, prepare_site, restore_with_plan, take_backup


def run_drill(bench_path: str, site: str, log: str) -> str:
	output = run_bench(bench_path, "--site", site, "backup-manager", "drill", log).stdout
	return output.strip().splitlines()[-1].split("\t")[0]


def get_drill(bench_path: str, site: str, name: str) -> dict:
	output = run_bench(
		bench_path,
		"--site",
		site,
		"execute",
		"frappe.client.get",
		"--kwargs",
		json.dumps({"doctype": "Backup Restore Drill", "name": name}),
	).stdout
	return json.loads(output.strip().splitlines()[-1])


def run_rounds(arguments, bench_path: str, site: str, log: str) -> dict[str, list]:
	figures = {"plan": [], "drop": [], "drill": [], "restore": [], "checks": []}
	for round_number in range(1, arguments.rounds + 1):
		order = ("plan", "drill") if round_number % 2 else ("drill", "plan")
		for side in order:
			wait_for_other_restores(bench_path)
			settle_disk()
			if side == "plan":
				plan = measure("plan", restore_with_plan, bench_path, site, log, PLAN_SITE)
				drop = measure("drop", drop_site, bench_path, PLAN_SITE)
				figures["plan"].append(plan.seconds)
				figures["drop"].append(drop.seconds)
				print(
					f"round {round_number}: plan {plan.seconds:.1f} s, drop {drop.seconds:.1f} s", flush=True
				)
			else:
				drill = measure("drill", run_drill, bench_path, site, log)
				record = get_drill(bench_path, site, drill.output)
				figures["drill"].append(drill.seconds)
				figures["restore"].append(record["restore_seconds"])
				figures["checks"].append(record["checks_seconds"])
				print(
					f"round {round_number}: drill {drill.seconds:.1f} s ({record['name']} {record['status']}: "
					f"restore {record['restore_seconds']:.1f} s, checks {record['checks_seconds']:.1f} s, "
					f"duration {record['duration']:.1f} s)",
					flush=True,
				)
	return figures


def print_report(figures: dict[str, list]) -> None:
	plan, drop, drill = median(figures["plan"]), median(figures["drop"]), median(figures["drill"])
	restore, checks = median(figures["restore"]), median(figures["checks"])
	print("\nMedians:")
	print(f"  plan (restore-plan + bash)   {plan:7.1f} s")
	print(f"  drop-site of the plan's site {drop:7.1f} s")
	print(f"  drill (CLI, end to end)      {drill:7.1f} s")
	print(f"  drill's restore part         {restore:7.1f} s")
	print(f"  drill's checks               {checks:7.1f} s")
	print(f"\nDrill against the plan alone:       {format_overhead(drill, plan)}")
	print(f"Drill against the plan + drop-site: {format_overhead(drill, plan + drop)}")
	print(f"Checks against the drill's restore: {checks / restore * 100:+.1f}% (target <= +10%)")


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--bench", default=DEFAULT_BENCH, help="bench folder (default: %(default)s)")
	parser.add_argument("--site", default=DEFAULT_SITE, help="benchmark site (default: %(default)s)")
	parser.add_argument(
		"--size-db-mb", type=int, default=200, help="MiB of table text (default: %(default)s)"
	)
	parser.add_argument("--size-files-mb", type=int, default=500, help="MiB of files (default: %(default)s)")
	parser.add_argument("--rounds", type=int, default=2, help="rounds of plan + drill (default: %(default)s)")
	parser.add_argument("--keep", action="store_true", help="keep the generated rows, files and the backup")
	arguments = parser.parse_args()
	bench_path, site = os.path.abspath(arguments.bench), arguments.site
	started = time.perf_counter()
	try:
		with benchmark_lock(site):
			try:
				prepare_site(arguments, bench_path, site)
				log = take_backup(bench_path, site, "local files")
				print_report(run_rounds(arguments, bench_path, site, log["name"]))
			finally:
				drop_site(bench_path, PLAN_SITE)
				if not arguments.keep:
					remove_app_backups(bench_path, site)
					remove_generated_data(bench_path, site)
	except StepFailed as exc:
		fail(str(exc))
	print(f"\nTook {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
	main()
