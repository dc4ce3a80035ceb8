"""Scheduling and the backup run.

The scheduler tick only reads policies and enqueues; a run happens in a `long` queue job
(or in-process for the CLI and before migrate). A run holds its policy's lock (locks.py)
for its whole duration, records itself through run_log.py, and hands its upload to
offsite.py and its pruning to retention.py.
"""

from datetime import datetime, timezone

import frappe
from frappe import _
from frappe.utils import now_datetime

from backup_manager.core.compression import find_compressor
from backup_manager.local_backup import BackupRequest, take_backup
from backup_manager.locks import is_policy_locked, policy_lock, run_slot
from backup_manager.notifications import (
	notify_run,
	send_missed_backup_alerts,
	send_unverified_restore_alerts,
)
from backup_manager.offsite import get_policy_destinations, retry_due_uploads, start_uploads, upload_log
from backup_manager.progress import make_reporter
from backup_manager.reaper import reap_dead_runs
from backup_manager.retention import apply_local_retention
from backup_manager.run_log import (
	SLOT_WAIT_ALLOWANCE_SECONDS,
	WAITING_FOR_SLOT,
	estimate_job_timeout,
	finish_log,
	insert_log,
	last_backup_sizes,
	record_compressor,
	record_failure,
	record_local_backup,
	run_job_id,
	save_log,
	update_policy_status,
)

RUN_JOB = "backup_manager.jobs.run_backup_job"


def tick():
	"""Every minute: fail dead runs and drills, start due policies and drills, retry uploads, alert."""
	# Imported here: a backup run (CLI or worker) never needs the drill machinery.
	from backup_manager.drills import enqueue_due_drills, reap_dead_drills

	now = now_datetime()
	for step in (
		reap_dead_runs,
		reap_dead_drills,
		enqueue_due_policies,
		retry_due_uploads,
		enqueue_due_drills,
		send_missed_backup_alerts,
		send_unverified_restore_alerts,
	):
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
	"""Record a run of `policy` and queue it; if one is already active, record a Skipped run instead.

	An active log with no live process behind it (a killed CLI run, or a restored database whose
	backup was taken while that log ran) is failed first, as the next scheduler tick would: a bench
	without a scheduler would otherwise skip every run of the policy.
	"""
	active = reap_dead_runs(policy=policy)
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
			# A run may first wait for a bench-wide slot (locks.run_slot) before its own work.
			timeout=estimate_job_timeout(policy) + SLOT_WAIT_ALLOWANCE_SECONDS,
			job_id=run_job_id(log.name),
			deduplicate=True,
			enqueue_after_commit=True,
			backup_log=log.name,
		)
	return log


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
	with policy_lock(log.policy) as locked:
		if not locked:
			log.status = "Skipped"
			log.skip_reason = _("Not started: another run of this policy holds its lock.")
			log.finished_at = now_datetime()
			save_log(log)
			return log

		def show_waiting():
			log.status = WAITING_FOR_SLOT
			save_log(log)

		with run_slot(log.name, log.policy, log.queued_at, on_wait=show_waiting):
			run_locked(log, frappe.get_doc("Backup Policy", log.policy))
	return log


def run_locked(log, policy):
	"""Take the local backup, upload it, apply retention and notify; the caller holds the lock."""
	started = datetime.now(timezone.utc)
	log.status = "Running"
	log.started_at = now_datetime()
	log.backup_id = f"{started:%Y%m%dT%H%M%SZ}-{log.name}"
	log.with_files = policy.with_files
	save_log(log)
	update_policy_status(policy.name, log)
	reporter = make_reporter(log.name)
	uploads = {}
	try:
		compressor = find_compressor(policy.compression)
		record_compressor(log, compressor)
		# Uploads start while the backup is still being written (local_backup hands them each artifact).
		uploads = start_uploads(log, policy, reporter)
		backup_dir, manifest = take_backup(
			BackupRequest(
				backup_id=log.backup_id,
				policy=policy.name,
				with_files=bool(policy.with_files),
				compress_files=bool(policy.compress_files),
				include_doctypes=policy.get_include_doctypes(),
				exclude_doctypes=policy.get_exclude_doctypes(),
				compressor=compressor,
				expected_sizes=last_backup_sizes(policy.name),
				index_files=any(upload.deduplicates for upload in uploads.values()),
			),
			receivers=list(uploads.values()),
			reporter=reporter,
		)
	except Exception as exc:
		frappe.db.rollback()
		reporter.finish()
		record_failure(log, exc)
		notify_run(policy, log)
		return

	# Saved by the next write: the upload's start, or the final status.
	record_local_backup(log, backup_dir, manifest)
	if uploads or get_policy_destinations(policy):
		upload_log(log, policy, uploads, reporter)
	else:
		finish_log(log, "Success")
	reporter.finish()
	apply_retention_after_run(policy)
	notify_run(policy, log)


def apply_retention_after_run(policy):
	try:
		apply_local_retention(policy)
	except Exception:
		frappe.db.rollback()
		frappe.log_error(
			title=f"Backup Manager: retention of policy {policy.name} failed",
			reference_doctype="Backup Policy",
			reference_name=policy.name,
		)
