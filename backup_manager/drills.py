"""Restore drills: restore a backup into a throwaway site on this bench, check it, drop it.

A drill runs the very restore plan the Restore Guide shows (restore.build_plan_for_log rendered
by render_shell), in two parts: up to the restore (then the row counts are read, before
migrate can add rows), then migrate onwards. Secrets reach the script only in its environment.
The drill site's name is recorded before it is created and it is always dropped (database,
user, folder, archived copy, work folder): when the drill ends, and, if its worker died, by a
later tick (reap_dead_drills), which also kills what is left of its processes.

One drill at a time per bench (locks.drill_lock_name); the plan's subprocesses run at low CPU
and IO priority. The comparisons themselves are core.drill's.
"""

import fcntl
import glob
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime

import frappe
import pymysql
from frappe import _
from frappe.utils import add_to_date, get_datetime, now_datetime, time_diff_in_seconds

from backup_manager.core import drill as drill_rules
from backup_manager.core import outcome
from backup_manager.core.checksums import sha256_file
from backup_manager.core.manifest import (
	DATABASE,
	ENV_MANIFEST_KEY,
	PRIVATE_FILES,
	PUBLIC_FILES,
	Manifest,
)
from backup_manager.core.restore_plan import (
	COMMON_CONFIG_PATH,
	ENV_ACCESS_KEY_ID,
	ENV_ADMIN_PASSWORD,
	ENV_DB_ROOT_PASSWORD,
	ENV_ENCRYPTION_KEY,
	ENV_SECRET_ACCESS_KEY,
	SAVED_COMMON_CONFIG_PATTERN,
	render_shell,
)
from backup_manager.core.restore_plan.constants import CONFIG_TEMP_PATTERN, RESTORE_LOCK_PATH
from backup_manager.locks import acquire_drill_lock, is_drill_locked, release_drill_lock
from backup_manager.manifest_key import get_manifest_key
from backup_manager.notifications import notify_drill
from backup_manager.restore import build_plan_for_log, get_bench_apps, has_local_files
from backup_manager.run_log import record_drill_attempt, record_restore_verified, redact_secrets

DRILL_JOB = "backup_manager.drills.run_drill_job"
ACTIVE_STATUSES = ("Queued", "Running")
# Every process a drill starts carries this variable (value: the drill's name), so the processes
# of a drill whose worker died can be found and stopped before its site is dropped.
DRILL_MARKER_ENV = "BACKUP_MANAGER_DRILL"
LOW_PRIORITY_PREFIX = ("nice", "-n", "15", "ionice", "-c", "2", "-n", "7")
DRILL_WORK_FOLDER = "backup-restore"
JOB_TIMEOUT_SECONDS = 4 * 60 * 60
SCRIPT_TIMEOUT_SECONDS = 3 * 60 * 60
LOST_QUEUED_DRILL_MINUTES = 30
OUTPUT_TAIL_CHARACTERS = 6000
SAFE_DB_NAME = re.compile(r"[A-Za-z0-9_]+")


class DrillRefused(frappe.ValidationError):
	pass


def drill_job_id(drill_name: str) -> str:
	return f"backup_manager:drill:{drill_name}"


def start_drill(
	*,
	backup_log: str,
	trigger: str,
	destination: str | None = None,
	prefer_local: bool = False,
	enqueue: bool = True,
):
	"""Record a drill of a backup and queue it; an active drill of the same backup is returned instead.

	The source: `destination` if named; else local files when `prefer_local` (the CLI) and they
	exist; else the policy's choice (its drill destination, else its first, else local files).
	"""
	log = frappe.get_doc("Backup Log", backup_log)
	if log.status not in ("Success", "Partial") or not log.manifest:
		frappe.throw(
			_("Backup Log {0} has no complete backup to drill (status {1}).").format(log.name, log.status),
			exc=DrillRefused,
		)
	active = frappe.get_all(
		"Backup Restore Drill",
		filters={"backup_log": log.name, "status": ("in", ACTIVE_STATUSES)},
		pluck="name",
		limit=1,
	)
	if active:
		return frappe.get_doc("Backup Restore Drill", active[0])
	source = resolve_source(log, destination, prefer_local)
	drill = frappe.get_doc(
		{
			"doctype": "Backup Restore Drill",
			"backup_log": log.name,
			"policy": log.policy,
			"trigger": trigger,
			"status": "Queued",
			"queued_at": now_datetime(),
			"destination": source,
			"source": source or _("Local files"),
		}
	)
	drill.insert(ignore_permissions=True)
	record_drill_attempt(log.name, drill.name)
	frappe.db.commit()
	if enqueue:
		frappe.enqueue(
			DRILL_JOB,
			queue="long",
			timeout=JOB_TIMEOUT_SECONDS,
			job_id=drill_job_id(drill.name),
			deduplicate=True,
			enqueue_after_commit=True,
			drill=drill.name,
		)
	return drill


def resolve_source(log, destination: str | None, prefer_local: bool = False) -> str | None:
	"""The destination to drill from (None: local files): the named one, else the policy's choice."""
	complete = outcome.complete_destinations(log.uploads, [row.destination for row in log.uploads])
	if destination:
		if destination not in complete:
			frappe.throw(
				_("Backup Log {0} has no complete copy in {1}. Choose one of: {2}.").format(
					log.name, frappe.bold(destination), ", ".join(complete) or _("local files only")
				),
				exc=DrillRefused,
			)
		return destination
	if prefer_local and has_local_files(log):
		return None
	preferred = None
	if log.policy and frappe.db.exists("Backup Policy", log.policy):
		preferred = frappe.get_doc("Backup Policy", log.policy).get_drill_destination()
	try:
		return drill_rules.choose_source(
			preferred=preferred, complete_destinations=complete, has_local_files=has_local_files(log)
		)
	except ValueError as exc:
		frappe.throw(str(exc), exc=DrillRefused)


def run_drill_job(drill: str):
	"""RQ job: run one queued drill."""
	if not frappe.db.exists("Backup Restore Drill", drill):
		return
	execute_drill(frappe.get_doc("Backup Restore Drill", drill))


def execute_drill(drill):
	"""Run a Queued drill to its end state, holding the bench's drill lock throughout."""
	if drill.status != "Queued":
		return drill
	if not acquire_drill_lock():
		finish_drill(
			drill,
			"Refused",
			error=_(
				"Another restore drill is running on this bench (one at a time). Run this one again when it has finished."
			),
		)
		return drill
	try:
		run_locked(drill)
	finally:
		release_drill_lock()
	return drill


def run_locked(drill):
	log = frappe.get_doc("Backup Log", drill.backup_log)
	manifest = Manifest.from_json(log.manifest)
	reason = get_refusal_reason(log, manifest)
	if reason:
		finish_drill(drill, "Refused", error=reason)
		return
	# The name is recorded (and committed) before the site exists, so a crash can always be cleaned.
	drill.drill_site = drill_rules.make_drill_site_name()
	drill.status = "Running"
	drill.started_at = now_datetime()
	save_drill(drill)
	checks: list[drill_rules.CheckResult] = []
	try:
		restore_and_check(drill, log, manifest, checks)
	except Exception as exc:
		frappe.db.rollback()
		checks.append(drill_rules.CheckResult(_("Drill"), drill_rules.FAILED, redact_secrets(str(exc))))
		frappe.log_error(
			title=f"Backup Manager: restore drill {drill.name} failed",
			reference_doctype="Backup Restore Drill",
			reference_name=drill.name,
		)
	finally:
		drill.site_dropped = int(try_drop_drill_site(drill))
	finish_drill(drill, drill_rules.overall_status(checks), checks=checks)


def get_refusal_reason(log, manifest: Manifest) -> str:
	bench = frappe.utils.get_bench_path()
	free = shutil.disk_usage(bench).free
	reason = drill_rules.refusal_reason(
		manifest=manifest, free_bytes=free, bench_apps=get_bench_apps(), partial=bool(log.partial)
	)
	if not reason and not (frappe.conf.get("root_password") or os.environ.get(ENV_DB_ROOT_PASSWORD)):
		reason = _(
			"A drill creates a site, which needs the database root password: put root_password in "
			"sites/common_site_config.json or set {0} in the environment of the bench workers."
		).format(ENV_DB_ROOT_PASSWORD)
	return reason


def restore_and_check(drill, log, manifest: Manifest, checks: list):
	"""Run the plan (restore, count rows, migrate), then check the site; append every result to checks."""
	bench = os.path.realpath(frappe.utils.get_bench_path())
	plan = build_plan_for_log(
		log,
		new_site=drill.drill_site,
		destination=drill.destination or None,
		download_dir=get_work_dir(drill.drill_site),
	)
	migrate_at = next(index for index, step in enumerate(plan.steps) if step.key == "migrate")
	env = build_script_environment(drill, manifest)
	started = time.monotonic()
	checks_time = 0.0

	ok, output = run_script(render_shell(replace(plan, steps=plan.steps[:migrate_at])), env, bench)
	drill.output = summarise_output(output)
	checks.append(_script_check(_("Restore"), ok, output))
	if not ok:
		return
	mark = time.monotonic()
	database = manifest.artifact(DATABASE)
	checks.append(
		drill_rules.compare_row_counts(
			database.row_counts if database else None, count_rows(drill.drill_site)
		)
	)
	mute_drill_site(drill.drill_site)
	checks_time += time.monotonic() - mark

	ok, output = run_script(render_shell(replace(plan, steps=plan.steps[migrate_at:])), env, bench)
	drill.output = drill.output + "\n" + summarise_output(output)
	checks.append(_script_check(_("Migrate"), ok, output))
	if not ok:
		return
	mark = time.monotonic()
	checks.extend(check_restored_site(drill.drill_site, manifest, drill.name))
	checks_time += time.monotonic() - mark
	drill.checks_seconds = round(checks_time, 1)
	drill.restore_seconds = round(time.monotonic() - started - checks_time, 1)


def summarise_output(output: str) -> str:
	"""Every step the plan announced, then the tail of its output (where a failure shows)."""
	steps = [line for line in output.splitlines() if line.startswith("==> ")]
	return "\n".join(steps) + "\n...\n" + output[-OUTPUT_TAIL_CHARACTERS // 2 :]


def _script_check(name: str, ok: bool, output: str) -> drill_rules.CheckResult:
	if ok:
		return drill_rules.CheckResult(name, drill_rules.PASSED, _("The plan's commands ran to the end."))
	lines = [line for line in output.splitlines() if line.strip()]
	return drill_rules.CheckResult(name, drill_rules.FAILED, "\n".join(lines[-12:]))


def check_restored_site(site: str, manifest: Manifest, marker: str) -> list:
	"""After migrate: the site answers, its keys decrypt, its apps match, its files match."""
	checks = []
	probe = bench_execute(site, "backup_manager.drill_probe.describe_restored_site", marker)
	answered = probe is not None and probe.get("ping") == "pong"
	checks.append(
		drill_rules.CheckResult(
			_("Site answers"),
			drill_rules.PASSED if answered else drill_rules.FAILED,
			_("frappe.ping answered pong.")
			if answered
			else _("frappe.ping did not answer: {0}").format(probe),
		)
	)
	if probe is None:
		return checks
	checks.append(check_passwords(probe))
	checks.append(drill_rules.compare_apps(manifest, probe.get("apps") or {}))
	for kind, label in ((PUBLIC_FILES, _("Public files")), (PRIVATE_FILES, _("Private files"))):
		artifact = manifest.artifact(kind)
		folder = "public" if kind == PUBLIC_FILES else "private"
		samples = (artifact.file_samples or {}) if artifact else {}
		checks.append(drill_rules.compare_files(label, artifact, describe_files(site, folder, samples)))
	return checks


def check_passwords(probe: dict) -> drill_rules.CheckResult:
	checked, failures = probe.get("passwords_checked") or [], probe.get("password_failures") or []
	name = _("Encryption key")
	if failures:
		return drill_rules.CheckResult(name, drill_rules.FAILED, "; ".join(failures))
	if not checked:
		return drill_rules.CheckResult(
			name, drill_rules.SKIPPED, _("The backup holds no encrypted Password field to decrypt.")
		)
	return drill_rules.CheckResult(
		name,
		drill_rules.PASSED,
		_("Decrypted with the carried encryption_key: {0}").format(", ".join(checked)),
	)


def build_script_environment(drill, manifest: Manifest) -> dict:
	"""The plan's secrets, in the environment only, and the marker that finds the drill's processes."""
	env = {key: value for key, value in os.environ.items() if key not in _plan_secret_names()}
	env[DRILL_MARKER_ENV] = drill.name
	env[ENV_ADMIN_PASSWORD] = frappe.generate_hash(length=32)
	# Downloads verify the manifest with it; the drill site gets it as a restored site would.
	manifest_key = get_manifest_key()
	if manifest_key:
		env[ENV_MANIFEST_KEY] = manifest_key
	if not frappe.conf.get("root_password") and os.environ.get(ENV_DB_ROOT_PASSWORD):
		env[ENV_DB_ROOT_PASSWORD] = os.environ[ENV_DB_ROOT_PASSWORD]
	if manifest.encrypted and frappe.conf.get("backup_encryption_key"):
		env[ENV_ENCRYPTION_KEY] = frappe.conf.backup_encryption_key
	if drill.destination:
		destination = frappe.get_doc("Backup Destination", drill.destination)
		env[ENV_ACCESS_KEY_ID] = destination.access_key_id
		env[ENV_SECRET_ACCESS_KEY] = destination.get_password("secret_access_key")
	return env


def _plan_secret_names() -> set[str]:
	return {
		ENV_ACCESS_KEY_ID,
		ENV_SECRET_ACCESS_KEY,
		ENV_ENCRYPTION_KEY,
		ENV_ADMIN_PASSWORD,
		"AWS_SESSION_TOKEN",
	}


def run_script(script: str, env: dict, bench: str) -> tuple[bool, str]:
	"""Run a rendered plan with bash at low priority; (ran to the end, combined output)."""
	folder = tempfile.mkdtemp(prefix="bm-drill-")
	try:
		# The script holds no secret (they are in env); it is private to this user all the same.
		path = os.path.join(folder, "restore.sh")
		with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
			handle.write(script)
		process = subprocess.Popen(
			[*low_priority_prefix(), "bash", path],
			cwd=bench,
			env=env,
			stdin=subprocess.DEVNULL,
			stdout=subprocess.PIPE,
			stderr=subprocess.STDOUT,
			text=True,
			errors="replace",
			start_new_session=True,
		)
		try:
			output, _unused = process.communicate(timeout=SCRIPT_TIMEOUT_SECONDS)
		except subprocess.TimeoutExpired:
			os.killpg(process.pid, signal.SIGKILL)
			output, _unused = process.communicate()
			output += "\nThe restore drill stopped the plan: it ran longer than its time limit."
		return process.returncode == 0, redact_secrets(output)
	finally:
		shutil.rmtree(folder, ignore_errors=True)


def low_priority_prefix() -> list[str]:
	return list(LOW_PRIORITY_PREFIX) if shutil.which("ionice") else ["nice", "-n", "15"]


def bench_execute(site: str, method: str, marker: str):
	"""`bench --site SITE execute METHOD` in its own process; the parsed result, or None on failure."""
	result = subprocess.run(
		[*low_priority_prefix(), sys.executable, "-m", "frappe.utils.bench_helper", "frappe"]
		+ ["--site", site, "execute", method],
		cwd=get_sites_path(),
		env={**os.environ, DRILL_MARKER_ENV: marker},
		stdin=subprocess.DEVNULL,
		capture_output=True,
		text=True,
		timeout=600,
		check=False,
	)
	if result.returncode != 0:
		frappe.logger("backup_manager").warning(f"{method} on {site} failed: {result.stderr[-2000:]}")
		return None
	lines = result.stdout.strip().splitlines()
	try:
		return json.loads(lines[-1]) if lines else None
	except ValueError:
		return None


def get_sites_path() -> str:
	return os.path.realpath(os.path.join(frappe.utils.get_bench_path(), "sites"))


def get_work_dir(drill_site: str) -> str:
	return os.path.join(os.path.realpath(frappe.utils.get_bench_path()), DRILL_WORK_FOLDER, drill_site)


def read_site_config(site: str) -> dict:
	path = os.path.join(get_sites_path(), site, "site_config.json")
	try:
		with open(path) as handle:
			return json.load(handle)
	except (OSError, ValueError):
		return {}


def connect_as(user: str, password: str, database: str | None = None):
	"""A pymysql connection to this bench's MariaDB server, outside frappe.local."""
	conf = frappe.conf
	params = {"user": user, "password": password, "database": database, "charset": "utf8mb4"}
	if conf.get("db_socket"):
		params["unix_socket"] = conf.db_socket
	else:
		params["host"] = conf.get("db_host") or "127.0.0.1"
		params["port"] = int(conf.get("db_port") or 3306)
	return pymysql.connect(**params)


def count_rows(site: str) -> dict[str, int]:
	"""Exact row counts (COUNT(*)) of every table of the drill site's database."""
	config = read_site_config(site)
	connection = connect_as(config["db_name"], config["db_password"], config["db_name"])
	try:
		with connection.cursor() as cursor:
			cursor.execute(
				"SELECT table_name FROM information_schema.tables "
				"WHERE table_schema = %s AND table_type = 'BASE TABLE'",
				(config["db_name"],),
			)
			tables = [row[0] for row in cursor.fetchall()]
			counts = {}
			for table in tables:
				cursor.execute("SELECT COUNT(*) FROM `{}`".format(table.replace("`", "``")))
				counts[table] = cursor.fetchone()[0]
			return counts
	finally:
		connection.close()


def mute_drill_site(site: str):
	"""Before migrate: the drill site sends no mail and runs no scheduled job, ever."""
	path = os.path.join(get_sites_path(), site, "site_config.json")
	config = read_site_config(site)
	config.update({"mute_emails": 1, "pause_scheduler": 1})
	with open(path, "w") as handle:
		json.dump(config, handle, indent=1, sort_keys=True)


def describe_files(site: str, folder: str, samples: dict[str, str]) -> drill_rules.FoundFiles | None:
	"""Count and size the regular files of a restored files folder and hash the sampled paths."""
	root = os.path.join(get_sites_path(), site, folder, "files")
	if not os.path.isdir(root):
		return None
	count = total = 0
	for directory, _folders, files in os.walk(root):
		for name in files:
			status = os.lstat(os.path.join(directory, name))
			if stat.S_ISREG(status.st_mode):
				count += 1
				total += status.st_size
	found = {}
	for relative_path in samples:
		path = os.path.join(root, relative_path)
		found[relative_path] = sha256_file(path) if os.path.isfile(path) else None
	return drill_rules.FoundFiles(count, total, found)


def drop_drill_site(site: str, drill_name: str) -> bool:
	"""Drop a drill site entirely: processes, database and user, folder, archived copy, work folder."""
	if not drill_rules.is_drill_site_name(site or ""):
		return False
	kill_drill_processes(drill_name)
	config = read_site_config(site)
	db_name = config.get("db_name") or ""
	if db_name and SAFE_DB_NAME.fullmatch(db_name):
		root_password = frappe.conf.get("root_password") or os.environ.get(ENV_DB_ROOT_PASSWORD) or ""
		connection = connect_as(frappe.conf.get("root_login") or "root", root_password)
		try:
			with connection.cursor() as cursor:
				cursor.execute(f"DROP DATABASE IF EXISTS `{db_name}`")
				cursor.execute("SELECT host FROM mysql.user WHERE user = %s", (db_name,))
				for (host,) in cursor.fetchall():
					cursor.execute("DROP USER IF EXISTS %s@%s", (db_name, host))
		finally:
			connection.close()
	sites = get_sites_path()
	shutil.rmtree(os.path.join(sites, site), ignore_errors=True)
	archived = os.path.join(os.path.dirname(sites), "archived", "sites")
	if os.path.isdir(archived):
		for name in os.listdir(archived):
			if name == site or (name.startswith(site) and name[len(site) :].isdigit()):
				shutil.rmtree(os.path.join(archived, name), ignore_errors=True)
	shutil.rmtree(get_work_dir(site), ignore_errors=True)
	return not os.path.exists(os.path.join(sites, site))


def try_drop_drill_site(drill) -> bool:
	"""Drop the drill's site; a failure is logged and left to the next tick (site_dropped stays 0)."""
	try:
		return drop_drill_site(drill.drill_site, drill.name)
	except Exception:
		frappe.log_error(
			title=f"Backup Manager: could not drop drill site {drill.drill_site}",
			reference_doctype="Backup Restore Drill",
			reference_name=drill.name,
		)
		return False


def kill_drill_processes(drill_name: str):
	"""SIGKILL every process left from a drill (found by its marker variable) and wait until none is left."""
	marker = f"{DRILL_MARKER_ENV}={drill_name}".encode() + b"\0"
	for _attempt in range(50):
		found = False
		for entry in os.listdir("/proc"):
			if not entry.isdigit() or int(entry) == os.getpid():
				continue
			try:
				with open(f"/proc/{entry}/environ", "rb") as handle:
					if marker in handle.read() + b"\0":
						found = True
						os.kill(int(entry), signal.SIGKILL)
			except (OSError, ProcessLookupError):
				continue
		if not found:
			return
		time.sleep(0.2)


def recover_interrupted_plan():
	"""Undo what a killed plan left, as the plan's own first step does: put back its saved copy of
	common_site_config.json and delete its temporary config files.

	Only while holding the plan's restore lock: then no restore runs on this bench, so every
	saved copy is an interrupted restore's original. Busy lock: the next plan recovers them.
	"""
	bench = os.path.realpath(frappe.utils.get_bench_path())
	with open(os.path.join(bench, RESTORE_LOCK_PATH), "a") as lock:
		try:
			fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
		except BlockingIOError:
			return
		try:
			for leftover in glob.glob(os.path.join(bench, SAVED_COMMON_CONFIG_PATTERN)):
				os.replace(leftover, os.path.join(bench, COMMON_CONFIG_PATH))
			for pattern in CONFIG_TEMP_PATTERN.split():
				for leftover in glob.glob(os.path.join(bench, pattern)):
					os.remove(leftover)
		finally:
			fcntl.flock(lock, fcntl.LOCK_UN)


def save_drill(drill):
	drill.save(ignore_permissions=True)
	frappe.db.commit()


def finish_drill(drill, status: str, *, checks=None, error: str = ""):
	"""Record a drill's end: status, checks, duration; mark the backup and the policy; mail a failure."""
	drill.status = status
	drill.finished_at = now_datetime()
	if drill.started_at:
		drill.duration = time_diff_in_seconds(drill.finished_at, drill.started_at)
	for check in checks or []:
		drill.append("checks", {"check": check.check, "result": check.result, "detail": check.detail})
	failure = drill_rules.first_failure(checks or [])
	drill.error_message = error or (f"{failure.check}: {failure.detail}" if failure else "")
	save_drill(drill)
	if status == drill_rules.PASSED:
		record_restore_verified(drill.backup_log, drill.name, drill.finished_at)
	if drill.policy and frappe.db.exists("Backup Policy", drill.policy):
		values = {"last_restore_drill": drill.name, "last_drill_status": status}
		if status == drill_rules.PASSED:
			values["last_verified_restore_at"] = drill.finished_at
		frappe.db.set_value("Backup Policy", drill.policy, values, update_modified=False)
	frappe.db.commit()
	if status != drill_rules.PASSED:
		notify_drill(drill)


def enqueue_due_drills(now: datetime, enqueue: bool = True):
	"""Tick step: start a drill of each policy whose newest successful backup is due one."""
	for policy in frappe.get_all(
		"Backup Policy",
		filters={"restore_drill": ("in", drill_rules.MODES[1:])},
		fields=["name", "restore_drill"],
	):
		try:
			start_due_drill(policy.name, policy.restore_drill, now, enqueue=enqueue)
			frappe.db.commit()
		except Exception:
			frappe.db.rollback()
			frappe.log_error(
				title=f"Backup Manager: could not start the restore drill of {policy.name}",
				reference_doctype="Backup Policy",
				reference_name=policy.name,
			)


def start_due_drill(policy: str, mode: str, now: datetime, enqueue: bool = True):
	newest = frappe.get_all(
		"Backup Log",
		filters={"policy": policy, "status": "Success", "manifest": ("is", "set"), "partial": 0},
		fields=["name", "last_restore_drill"],
		order_by="started_at desc",
		limit=1,
	)
	if frappe.db.exists("Backup Restore Drill", {"policy": policy, "status": ("in", ACTIVE_STATUSES)}):
		return
	last_drill_at = frappe.db.get_value(
		"Backup Restore Drill",
		{"policy": policy, "trigger": "Scheduled"},
		"queued_at",
		order_by="queued_at desc",
	)
	if drill_rules.drill_due(
		mode=mode,
		last_drill_at=get_datetime(last_drill_at) if last_drill_at else None,
		newest_backup_drilled=bool(newest and newest[0].last_restore_drill),
		has_backup=bool(newest),
		now=now,
	):
		start_drill(backup_log=newest[0].name, trigger="Scheduled", enqueue=enqueue)


def reap_dead_drills(now: datetime):
	"""Tick step: fail drills whose worker died (and drop their site), retry cleanups that failed."""
	for name, status, queued_at in frappe.get_all(
		"Backup Restore Drill",
		filters={"status": ("in", ACTIVE_STATUSES)},
		fields=["name", "status", "queued_at"],
		as_list=True,
	):
		if status == "Running" and is_drill_locked():
			continue  # One drill per bench: while the lock is held, the running drill may be alive.
		if status == "Queued" and (
			get_datetime(queued_at) > add_to_date(now, minutes=-LOST_QUEUED_DRILL_MINUTES)
			or _is_drill_job_queued(name)
		):
			continue
		fail_dead_drill(frappe.get_doc("Backup Restore Drill", name))
	for name in frappe.get_all(
		"Backup Restore Drill",
		filters={"status": ("not in", ACTIVE_STATUSES), "site_dropped": 0, "drill_site": ("is", "set")},
		pluck="name",
	):
		drill = frappe.get_doc("Backup Restore Drill", name)
		if try_drop_drill_site(drill):
			drill.db_set("site_dropped", 1, update_modified=False)


def fail_dead_drill(drill):
	was_running = drill.status == "Running"
	if was_running and drill.drill_site:
		drill.site_dropped = int(try_drop_drill_site(drill))
		recover_interrupted_plan()
	reason = (
		_(
			"The drill stopped without finishing: its worker was killed, crashed or hit the job timeout. Its drill site was dropped."
		)
		if was_running
		else _(
			"The queued drill disappeared before a worker started it. Check that bench workers run for the long queue."
		)
	)
	finish_drill(
		drill, drill_rules.FAILED, checks=[drill_rules.CheckResult(_("Drill"), drill_rules.FAILED, reason)]
	)


def _is_drill_job_queued(drill_name: str) -> bool:
	from frappe.utils.background_jobs import is_job_enqueued

	return bool(is_job_enqueued(drill_job_id(drill_name)))
