"""Scheduler entry points and the backup run itself.

The scheduler tick only reads policies and enqueues; a run happens in a `long` queue job
(or in-process for the CLI and before migrate). One policy never runs twice at once: a run
holds a MariaDB named lock (GET_LOCK) on its own connection for its whole duration. The
server drops that lock when the connection dies, which is how a later tick tells a run whose
worker was killed from one still working.
"""

import hashlib
import os
import shutil
import traceback
from datetime import datetime, timezone

import frappe
from frappe import _
from frappe.utils import (
	add_to_date,
	cint,
	get_datetime,
	now_datetime,
	time_diff_in_seconds,
)

from backup_manager.core.alerts import missed_backup_alert_due
from backup_manager.core.checksums import format_size
from backup_manager.core.restore_plan import SKIP_MIGRATE_BACKUP_ENV
from backup_manager.local_backup import (
	PARTIAL_SUFFIX,
	BackupRequest,
	get_backup_dir,
	take_backup,
)
from backup_manager.offsite import (
	get_policy_destinations,
	retry_due_uploads,
	upload_log,
)

ACTIVE_STATUSES = ("Queued", "Running", "Uploading")
RUN_JOB = "backup_manager.jobs.run_backup_job"
# A queued run whose RQ job has vanished (Redis flushed, worker pool gone) is failed after this.
LOST_QUEUED_RUN_MINUTES = 30
MIN_JOB_TIMEOUT_SECONDS = 2 * 60 * 60
# Generous floor for throughput when sizing a job timeout from the previous backup: 5 MiB/s.
TIMEOUT_BYTES_PER_SECOND = 5 * 1024 * 1024


class BackupBeforeMigrateFailed(frappe.ValidationError):
	pass


def tick():
	"""Every minute: fail dead runs, start due policies, raise missed-backup alerts."""
	now = now_datetime()
	for step in (reap_dead_runs, enqueue_due_policies, retry_due_uploads, send_missed_backup_alerts):
		try:
			step(now)
			frappe.db.commit()
		except Exception:
			frappe.db.rollback()
			frappe.log_error(title=f"Backup Manager: {step.__name__} failed")


def enqueue_due_policies(now: datetime):
	"""Start a Scheduled run of every enabled policy whose next run time has come."""
	due = frappe.get_all(
		"Backup Policy",
		filters={"enabled": 1, "next_run_at": ("<=", now)},
		pluck="name",
		order_by="next_run_at asc",
	)
	for policy_name in due:
		try:
			policy = frappe.get_doc("Backup Policy", policy_name)
			# Missed runs are not replayed: the next run is computed from now.
			policy.db_set("next_run_at", policy.compute_next_run(now), update_modified=False)
			start_run(policy=policy_name, trigger="Scheduled")
			frappe.db.commit()
		except Exception:
			frappe.db.rollback()
			frappe.log_error(
				title=f"Backup Manager: could not start policy {policy_name}",
				reference_doctype="Backup Policy",
				reference_name=policy_name,
			)


def start_run(*, policy: str, trigger: str, enqueue: bool = True):
	"""Record a run of `policy` and queue it; if one is already active, record a Skipped run instead."""
	active = frappe.get_all(
		"Backup Log",
		filters={"policy": policy, "status": ("in", ACTIVE_STATUSES)},
		pluck="name",
		limit=1,
	)
	log = frappe.new_doc("Backup Log")
	log.update({"policy": policy, "trigger": trigger, "site": frappe.local.site, "queued_at": now_datetime()})
	if active or is_policy_locked(policy):
		log.status = "Skipped"
		log.skip_reason = _("Not started: run {0} of this policy is still queued or running.").format(
			active[0] if active else _("(CLI or worker)")
		)
		log.started_at = log.finished_at = log.queued_at
		insert_log(log)
		return log

	log.status = "Queued"
	insert_log(log)
	if enqueue:
		frappe.enqueue(
			RUN_JOB,
			queue="long",
			timeout=estimate_job_timeout(policy),
			job_id=run_job_id(log.name),
			deduplicate=True,
			enqueue_after_commit=True,
			backup_log=log.name,
		)
	return log


def run_job_id(log_name: str) -> str:
	return f"backup_manager:run:{log_name}"


def estimate_job_timeout(policy: str) -> int:
	"""Size the RQ timeout from the policy's last backup, so a multi-GB backup is never killed."""
	last_size = frappe.db.get_value(
		"Backup Log", {"policy": policy, "status": "Success"}, "total_size", order_by="started_at desc"
	)
	return max(MIN_JOB_TIMEOUT_SECONDS, 3 * cint(last_size) // TIMEOUT_BYTES_PER_SECOND)


def run_backup_job(backup_log: str):
	"""RQ job: run one queued backup."""
	if not frappe.db.exists("Backup Log", backup_log):
		frappe.logger("backup_manager").warning(f"Backup Log {backup_log} was deleted before its job ran")
		return
	execute_run(frappe.get_doc("Backup Log", backup_log))


def execute_run(log):
	"""Run a Queued log to its end state; the policy lock is held throughout."""
	if log.status != "Queued":
		return log
	if not acquire_policy_lock(log.policy):
		log.status = "Skipped"
		log.skip_reason = _("Not started: another run of this policy holds its lock.")
		log.finished_at = now_datetime()
		save_log(log)
		return log

	try:
		policy = frappe.get_doc("Backup Policy", log.policy)
		started = datetime.now(timezone.utc)
		log.status = "Running"
		log.started_at = now_datetime()
		log.backup_id = f"{started:%Y%m%dT%H%M%SZ}-{log.name}"
		log.with_files = policy.with_files
		save_log(log)
		update_policy_status(policy.name, log)

		try:
			backup_dir, manifest = take_backup(
				BackupRequest(
					backup_id=log.backup_id,
					policy=policy.name,
					with_files=bool(policy.with_files),
					compress_files=bool(policy.compress_files),
					include_doctypes=policy.get_include_doctypes(),
					exclude_doctypes=policy.get_exclude_doctypes(),
				)
			)
		except Exception as exc:
			frappe.db.rollback()
			record_failure(log, exc)
			notify_run(policy, log)
			return log

		record_local_backup(log, backup_dir, manifest)
		if get_policy_destinations(policy):
			upload_log(log, policy)
		else:
			finish_log(log, "Success")
		apply_retention_after_run(policy)
		notify_run(policy, log)
		return log
	finally:
		release_policy_lock(log.policy)


def record_local_backup(log, backup_dir: str, manifest):
	"""Write the local backup's artifacts, apps and manifest onto the log (status unchanged)."""
	log.backup_dir = backup_dir
	log.encrypted = manifest.encrypted
	log.partial = manifest.partial
	log.frappe_version = manifest.frappe_version
	log.manifest = manifest.to_json()
	log.total_size = manifest.total_size
	log.total_size_human = format_size(manifest.total_size)
	log.set("artifacts", [])
	for artifact in manifest.artifacts:
		log.append(
			"artifacts",
			{
				"kind": artifact.kind,
				"file_name": artifact.file_name,
				"size": artifact.size,
				"size_human": format_size(artifact.size),
				"sha256": artifact.sha256,
				"encrypted": artifact.encrypted,
				"local_path": os.path.join(backup_dir, artifact.file_name),
			},
		)
	log.set("apps", [])
	for app in manifest.apps:
		log.append(
			"apps", {"app": app.name, "version": app.version, "branch": app.branch, "commit": app.commit}
		)
	save_log(log)


def record_failure(log, exc: BaseException):
	log.error_class = type(exc).__name__
	log.error_message = redact_secrets(describe_error(exc))
	log.traceback = redact_secrets(traceback.format_exc())
	finish_log(log, "Failed")
	frappe.log_error(
		title=f"Backup Manager: backup {log.name} failed",
		message=log.traceback,
		reference_doctype="Backup Log",
		reference_name=log.name,
	)


def describe_error(exc: BaseException) -> str:
	if isinstance(exc, frappe.CommandFailedError):
		# Frappe keeps the shell's stderr on the exception; it says what went wrong.
		detail = (getattr(exc, "err", "") or getattr(exc, "out", "") or "").strip()
		return f"{exc}: {detail}" if detail else str(exc)
	return str(exc) or repr(exc)


def redact_secrets(text: str) -> str:
	"""Blank out the site's secrets wherever a message or traceback might echo them."""
	for key in ("db_password", "backup_encryption_key", "encryption_key", "admin_password", "root_password"):
		secret = frappe.conf.get(key)
		if secret and len(str(secret)) >= 4:
			text = text.replace(str(secret), "********")
	return text


def finish_log(log, status: str):
	log.status = status
	log.finished_at = now_datetime()
	if log.started_at:
		log.duration = time_diff_in_seconds(log.finished_at, log.started_at)
	save_log(log)
	update_policy_status(log.policy, log)


def update_policy_status(policy: str, log):
	values = {"last_status": log.status, "last_backup_log": log.name}
	if log.status == "Success":
		values["last_success_at"] = log.finished_at
	frappe.db.set_value("Backup Policy", policy, values, update_modified=False)
	frappe.db.commit()


def insert_log(log):
	log.flags.written_by_backup_manager = True
	try:
		log.insert(ignore_permissions=True)
	finally:
		log.flags.written_by_backup_manager = False
	frappe.db.commit()


def save_log(log):
	"""Save a log as Backup Manager (users may only change Keep Forever) and commit."""
	log.flags.written_by_backup_manager = True
	try:
		log.save(ignore_permissions=True)
	finally:
		log.flags.written_by_backup_manager = False
	frappe.db.commit()


def apply_retention_after_run(policy):
	from backup_manager.retention import apply_local_retention

	try:
		apply_local_retention(policy)
	except Exception:
		frappe.db.rollback()
		frappe.log_error(
			title=f"Backup Manager: retention of policy {policy.name} failed",
			reference_doctype="Backup Policy",
			reference_name=policy.name,
		)


# Locking ---------------------------------------------------------------


def policy_lock_name(policy: str) -> str:
	# MariaDB lock names are server-wide and at most 64 characters: scope by database, hash.
	digest = hashlib.sha256(f"{frappe.conf.db_name}:{policy}".encode()).hexdigest()[:40]
	return f"backup_manager_{digest}"


def acquire_policy_lock(policy: str) -> bool:
	return cint(frappe.db.sql("SELECT GET_LOCK(%s, 0)", policy_lock_name(policy))[0][0]) == 1


def release_policy_lock(policy: str):
	frappe.db.sql("SELECT RELEASE_LOCK(%s)", policy_lock_name(policy))


def is_policy_locked(policy: str) -> bool:
	return frappe.db.sql("SELECT IS_USED_LOCK(%s)", policy_lock_name(policy))[0][0] is not None


# Dead runs -------------------------------------------------------------


def reap_dead_runs(now: datetime | None = None):
	"""Fail runs whose process died: Running without the policy lock, or Queued with no RQ job."""
	now = now or now_datetime()
	for log_name, policy, status, queued_at in frappe.get_all(
		"Backup Log",
		filters={"status": ("in", ACTIVE_STATUSES)},
		fields=["name", "policy", "status", "queued_at"],
		as_list=True,
	):
		if status in ("Running", "Uploading"):
			if is_policy_locked(policy):
				continue
			reason = _(
				"The run stopped without finishing: its worker was killed, crashed or hit the job timeout. "
				"Its unfinished files were deleted."
			)
		else:
			if get_datetime(queued_at) > add_to_date(now, minutes=-LOST_QUEUED_RUN_MINUTES):
				continue
			if is_run_job_queued(log_name) or is_policy_locked(policy):
				continue
			reason = _(
				"The queued job disappeared before a worker started it (workers stopped or Redis was flushed). "
				"Check that bench workers run for the long queue."
			)
		log = frappe.get_doc("Backup Log", log_name)
		if log.backup_id:
			remove_unfinished_backup_dir(log.backup_id)
		log.error_class = "RunDied"
		log.error_message = reason
		final_status = "Failed"
		if status == "Uploading":
			# The local backup is complete: keep it, and let a later tick retry the upload.
			log.next_upload_retry_at = now
			if any(row.status == "Uploaded" for row in log.uploads):
				final_status = "Partial"
		finish_log(log, final_status)
		notify_run(frappe.get_doc("Backup Policy", policy), log)


def remove_unfinished_backup_dir(backup_id: str):
	unfinished = get_backup_dir(backup_id) + PARTIAL_SUFFIX
	if os.path.isdir(unfinished):
		shutil.rmtree(unfinished, ignore_errors=True)


def is_run_job_queued(log_name: str) -> bool:
	from frappe.utils.background_jobs import is_job_enqueued

	return bool(is_job_enqueued(run_job_id(log_name)))


# Migrate ---------------------------------------------------------------


def backup_before_migrate():
	"""before_migrate hook: back up with every policy that asks for it; a failure stops the migrate."""
	if os.environ.get(SKIP_MIGRATE_BACKUP_ENV) == "1":
		frappe.logger("backup_manager").warning(f"{SKIP_MIGRATE_BACKUP_ENV}=1: backup before migrate skipped")
		return
	if not frappe.db.table_exists("Backup Policy"):
		return
	for policy in frappe.get_all(
		"Backup Policy", filters={"enabled": 1, "backup_before_migrate": 1}, pluck="name"
	):
		log = execute_run(start_run(policy=policy, trigger="Before Migrate", enqueue=False))
		if log.status != "Success":
			frappe.throw(
				_(
					"Backup before migrate failed for policy {0} (Backup Log {1}: {2}). The migrate was stopped. "
					"Fix the backup, or run the migrate without it: {3}=1 bench --site {4} migrate"
				).format(
					policy,
					log.name,
					log.error_message or log.skip_reason or log.status,
					SKIP_MIGRATE_BACKUP_ENV,
					frappe.local.site,
				),
				exc=BackupBeforeMigrateFailed,
			)


# Alerts ----------------------------------------------------------------


def notify_run(policy, log):
	from backup_manager.notifications import send_run_notification

	try:
		send_run_notification(policy, log)
	except Exception:
		frappe.log_error(
			title=f"Backup Manager: notification for {log.name} failed",
			reference_doctype="Backup Log",
			reference_name=log.name,
		)


def send_missed_backup_alerts(now: datetime):
	"""Alert once per window for every policy with no successful backup within its alert window."""
	from backup_manager.notifications import send_missed_backup_alert

	for policy in frappe.get_all(
		"Backup Policy",
		filters={"enabled": 1, "alert_after_hours": (">", 0)},
		fields=["name", "alert_after_hours", "last_success_at", "last_stale_alert_at", "creation"],
	):
		if not missed_backup_alert_due(
			window_hours=cint(policy.alert_after_hours),
			last_success_at=get_datetime(policy.last_success_at) if policy.last_success_at else None,
			watching_since=get_datetime(policy.creation),
			last_alert_at=get_datetime(policy.last_stale_alert_at) if policy.last_stale_alert_at else None,
			now=now,
		):
			continue
		try:
			send_missed_backup_alert(frappe.get_doc("Backup Policy", policy.name))
		except Exception:
			frappe.db.rollback()
			frappe.log_error(
				title=f"Backup Manager: missed-backup alert for {policy.name} failed",
				reference_doctype="Backup Policy",
				reference_name=policy.name,
			)
		# Recorded even when sending failed: one attempt per window, never one per tick.
		frappe.db.set_value("Backup Policy", policy.name, "last_stale_alert_at", now, update_modified=False)
		frappe.db.commit()
