"""A restore through Backup Manager's generated plan against the same steps done by hand.

Fills the site (default bm-bench.localhost, created with Backup Manager when missing) like
backup_benchmark.py, takes one backup with the app, then restores it into two new sites, in
alternating order for --rounds rounds:

  plan  bench --site S backup-manager restore-plan LOG --new-site bm-bench-plan.localhost --format sh,
        run with bash (checks, sha256 verify, new-site, restore, encryption key, migrate)
  hand  bench new-site bm-bench-hand.localhost --admin-password X
        bench --site bm-bench-hand.localhost restore DB --with-public-files T --with-private-files T
        bench --site bm-bench-hand.localhost migrate

Both take the database root password from sites/common_site_config.json (root_password).
Each restored site is checked (rows and files) and dropped after its round. Prints the
medians, the ratio plan/hand and the overhead (target <= +5%), with per-step times of both.
Exits non-zero only when a step fails, never for missing the target.

	~/frappe-bench/env/bin/python benchmarks/restore_benchmark.py                # 200 MB db, 500 MB files
	~/frappe-bench/env/bin/python benchmarks/restore_benchmark.py --size-db-mb 20 --size-files-mb 40 --rounds 1
"""

import argparse
import os
import secrets
import subprocess
import tempfile
import time

from _bench_site import (
	DEFAULT_BENCH,
	DEFAULT_SITE,
	OUTPUT_TAIL_CHARACTERS,
	Measurement,
	StepFailed,
	count_generated_files,
	count_payload_rows,
	drop_site,
	ensure_policy,
	ensure_site,
	fail,
	fill_database,
	fill_files,
	format_mib,
	format_overhead,
	get_backup_log,
	get_database_sizes,
	measure,
	median,
	remove_app_backups,
	remove_generated_data,
	run_bench,
	run_policy,
	wait_for_other_restores,
)

TARGET_OVERHEAD_PERCENT = 5.0
PLAN_SITE = "bm-bench-plan.localhost"
HAND_SITE = "bm-bench-hand.localhost"
STEP_MARKER = "==> Step "
# Same as backup_manager.core.restore_plan.SKIP_MIGRATE_BACKUP_ENV, which the plan's migrate sets.
SKIP_MIGRATE_BACKUP_ENV = "BACKUP_MANAGER_SKIP_MIGRATE_BACKUP"


def generate_plan(bench_path: str, site: str, log: str, target: str) -> str:
	return run_bench(
		bench_path, "--site", site, "backup-manager", "restore-plan", log, "--new-site", target, "--format", "sh"
	).stdout


def run_plan_script(bench_path: str, script_path: str) -> dict[str, float]:
	"""Run the plan with bash; return seconds per step, read from its '==> Step i/n' lines."""
	process = subprocess.Popen(
		["bash", script_path],
		cwd=bench_path,
		stdin=subprocess.DEVNULL,
		stdout=subprocess.PIPE,
		stderr=subprocess.STDOUT,
		text=True,
	)
	steps: dict[str, float] = {}
	output: list[str] = []
	current, current_started = "", time.perf_counter()
	for line in process.stdout:
		output.append(line)
		# Each step prints "==> Step i/n: title"; the script's last line "==> Backup ... is restored".
		if line.startswith("==> "):
			now = time.perf_counter()
			if current:
				steps[current] = now - current_started
			current, current_started = "", now
			if line.startswith(STEP_MARKER):
				current = line[len(STEP_MARKER) :].strip()
	process.wait()
	if current:
		steps[current] = time.perf_counter() - current_started
	if process.returncode != 0:
		raise StepFailed(
			f"the restore plan failed with exit code {process.returncode}:\n{''.join(output)[-OUTPUT_TAIL_CHARACTERS:]}"
		)
	return steps


def restore_with_plan(bench_path: str, site: str, log: str, target: str) -> dict[str, float]:
	"""Generate the plan and run it, as a person would: restore-plan > file, bash file."""
	steps = {}
	started = time.perf_counter()
	script = generate_plan(bench_path, site, log, target)
	steps["restore-plan (generate the script)"] = time.perf_counter() - started
	with tempfile.NamedTemporaryFile("w", prefix="bm-bench-restore-", suffix=".sh", delete=False) as handle:
		handle.write(script)
	try:
		steps.update(run_plan_script(bench_path, handle.name))
	finally:
		os.remove(handle.name)
	return steps


def restore_by_hand(bench_path: str, artifacts: dict[str, str], target: str) -> dict[str, float]:
	steps = {}
	started = time.perf_counter()
	# A throwaway password: bench restore replaces it with the backup's Administrator password.
	run_bench(bench_path, "new-site", target, "--admin-password", secrets.token_urlsafe(16))
	steps["bench new-site"] = time.perf_counter() - started
	started = time.perf_counter()
	run_bench(
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
	steps["bench restore (database + both file tars)"] = time.perf_counter() - started
	started = time.perf_counter()
	# The plan sets this too; the restored policy has backup before migrate off, so it changes nothing here.
	run_bench(bench_path, "--site", target, "migrate", env={SKIP_MIGRATE_BACKUP_ENV: "1"})
	steps["bench migrate"] = time.perf_counter() - started
	return steps


def check_restored(bench_path: str, target: str, expected_rows: int, expected_files: int) -> None:
	rows, files = count_payload_rows(bench_path, target), count_generated_files(bench_path, target)
	if rows != expected_rows or files != expected_files:
		raise StepFailed(
			f"{target} was restored with {rows} payload rows and {files} generated files; "
			f"the backed-up site has {expected_rows} and {expected_files}"
		)


def print_steps(title: str, measurements: list[Measurement]) -> None:
	print(f"\n{title} (seconds per step, one column per round):")
	names = list(dict.fromkeys(name for measurement in measurements for name in measurement.steps))
	for name in names:
		values = "".join(f"{measurement.steps.get(name, 0):9.1f}" for measurement in measurements)
		print(f"  {name[:70]:70}{values}")


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
	parser.add_argument("--bench", default=DEFAULT_BENCH, help="bench folder (default: %(default)s)")
	parser.add_argument("--site", default=DEFAULT_SITE, help="benchmark site, created if missing (default: %(default)s)")
	parser.add_argument("--size-db-mb", type=int, default=200, help="MiB of table text to generate (default: %(default)s)")
	parser.add_argument("--size-files-mb", type=int, default=500, help="MiB of files to generate (default: %(default)s)")
	parser.add_argument("--rounds", type=int, default=1, help="rounds of plan + hand, alternating (default: %(default)s)")
	parser.add_argument("--keep", action="store_true", help="keep the generated rows, files and the backup")
	arguments = parser.parse_args()
	bench_path, site = os.path.abspath(arguments.bench), arguments.site

	measurements: list[Measurement] = []
	waited = 0.0
	try:
		started = time.perf_counter()
		ensure_site(bench_path, site)
		ensure_policy(bench_path, site)
		fill_database(bench_path, site, arguments.size_db_mb)
		files = fill_files(bench_path, site, arguments.size_files_mb)
		sizes = get_database_sizes(bench_path, site)
		expected_files = count_generated_files(bench_path, site)
		print(
			f"Site {site}: payload table {format_mib(sizes['table'])} on disk ({sizes['rows']:,} rows), whole "
			f"database {format_mib(sizes['database'])}; {format_mib(files['bytes'])} in {files['files']:,} files. "
			f"Set-up took {time.perf_counter() - started:.0f} s.",
			flush=True,
		)
		backup_started = time.perf_counter()
		log_name, _folder = run_policy(bench_path, site)
		backup_seconds = time.perf_counter() - backup_started
		log = get_backup_log(bench_path, site, log_name)
		artifacts = {row["kind"]: row["local_path"] for row in log["artifacts"]}
		print(
			f"Backup {log_name} taken in {backup_seconds:.1f} s: "
			+ ", ".join(f"{row['kind']} {format_mib(row['size'])}" for row in log["artifacts"]),
			flush=True,
		)

		for round_number in range(1, arguments.rounds + 1):
			sides = ["hand", "plan"] if round_number % 2 else ["plan", "hand"]
			for side in sides:
				target = PLAN_SITE if side == "plan" else HAND_SITE
				drop_site(bench_path, target)
				if side == "plan":
					# The plan refuses to start while another plan's saved common config exists.
					waited += wait_for_other_restores(bench_path)
					measurement = measure("plan", restore_with_plan, bench_path, site, log_name, target)
				else:
					measurement = measure("hand", restore_by_hand, bench_path, artifacts, target)
				check_restored(bench_path, target, sizes["rows"], expected_files)
				drop_site(bench_path, target)
				measurements.append(measurement)
				print(
					f"round {round_number}: {side:4} {measurement.seconds:7.1f} s wall, "
					f"{measurement.cpu_seconds:6.1f} s child CPU, load {measurement.load_average:.2f} "
					"(restored site checked and dropped)",
					flush=True,
				)
	except StepFailed as exc:
		fail(str(exc))
		return
	finally:
		for target in (PLAN_SITE, HAND_SITE):
			try:
				drop_site(bench_path, target)
			except StepFailed as exc:
				print(f"Could not drop {target}: {exc}")

	plan_runs = [m for m in measurements if m.label == "plan"]
	hand_runs = [m for m in measurements if m.label == "hand"]
	plan = median([m.seconds for m in plan_runs])
	hand = median([m.seconds for m in hand_runs])
	script_only = median(
		[m.seconds - m.steps.get("restore-plan (generate the script)", 0) for m in plan_runs]
	)
	print_steps("Plan", plan_runs)
	print_steps("By hand", hand_runs)

	print(f"\n{'':48}{'median wall s':>14}{'median CPU s':>14}")
	print(f"  {'by hand: new-site + restore + migrate':46}{hand:14.1f}{median([m.cpu_seconds for m in hand_runs]):14.1f}")
	print(f"  {'plan: restore-plan + bash script':46}{plan:14.1f}{median([m.cpu_seconds for m in plan_runs]):14.1f}")
	print(f"  {'plan: bash script alone':46}{script_only:14.1f}")
	overhead = (plan / hand - 1) * 100
	verdict = "within" if overhead <= TARGET_OVERHEAD_PERCENT else "ABOVE"
	print(f"\nPlan incl. generating it: {format_overhead(plan, hand)} -> {verdict} the target of +{TARGET_OVERHEAD_PERCENT:.0f}%")
	print(f"Script alone:             {format_overhead(script_only, hand)}")
	if waited:
		print(f"(Waited {waited:.0f} s, untimed, for another restore plan on this bench to finish.)")

	if not arguments.keep:
		remove_app_backups(bench_path, site)
		remove_generated_data(bench_path, site)
		print("\nRemoved the generated rows, files and backups (use --keep to keep them).")


if __name__ == "__main__":
	main()
