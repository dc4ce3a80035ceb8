"""Dead runs: fail what a killed worker or a lost job left active, and remove its unfinished files.

A Running or Uploading log whose policy lock is free has no live process behind it (the lock
dies with its connection). A Queued log with no RQ job after a grace period will never start.
"""

import os
import shutil
from datetime import datetime

import frappe
from frappe import _
from frappe.utils import add_to_date, get_datetime, now_datetime

from backup_manager.core import outcome
from backup_manager.core.errors import ManifestNotAuthentic
from backup_manager.core.manifest import MANIFEST_FILE_NAME, load_authenticated_manifest
from backup_manager.local_backup import PARTIAL_SUFFIX, get_backup_dir
from backup_manager.locks import is_policy_locked
from backup_manager.manifest_key import get_manifest_key
from backup_manager.notifications import notify_run
from backup_manager.offsite import get_policy_destinations
from backup_manager.run_log import (
	ACTIVE_STATUSES,
	WAITING_FOR_SLOT,
	finish_log,
	record_local_backup,
	run_job_id,
)

# A queued run whose RQ job has vanished (Redis flushed, worker pool gone) is failed after this.
LOST_QUEUED_RUN_MINUTES = 30


def reap_dead_runs(now: datetime | None = None, *, policy: str | None = None) -> list[str]:
	"""Fail runs whose process died: Running or Waiting without the policy lock, or Queued with no RQ job.

	Every policy's runs, or only `policy`'s; returns the active runs left (those that may be alive).
	"""
	now = now or now_datetime()
	filters = {"status": ("in", ACTIVE_STATUSES)}
	if policy:
		filters["policy"] = policy
	live = []
	# frappe.db.get_values, not frappe.get_all: a run starts here, and get_all's filter code imports
	# frappe.boot (and requests) on first use.
	for log_name, log_policy, status, queued_at in frappe.db.get_values(
		"Backup Log", filters=filters, fieldname=["name", "policy", "status", "queued_at"]
	):
		reason = why_run_is_dead(log_name, log_policy, status, get_datetime(queued_at), now)
		if reason:
			fail_dead_run(frappe.get_doc("Backup Log", log_name), reason, now)
		else:
			live.append(log_name)
	return live


def why_run_is_dead(log_name: str, policy: str, status: str, queued_at: datetime, now: datetime) -> str:
	"""The reason an active run is dead, or "" while it may still be alive."""
	if is_policy_locked(policy):
		return ""
	if status in ("Running", "Uploading"):
		return _(
			"The run stopped without finishing: its worker was killed, crashed or hit the job timeout. "
			"Its unfinished files were deleted."
		)
	if status == WAITING_FOR_SLOT:
		# A waiting run holds its policy lock while it waits, so a free lock means its worker died.
		return _(
			"The run stopped while waiting for a bench-wide run slot: its worker was killed or hit the "
			"job timeout. Raise backup_manager_max_concurrent_runs or add workers if runs wait long."
		)
	if queued_at > add_to_date(now, minutes=-LOST_QUEUED_RUN_MINUTES) or is_run_job_queued(log_name):
		return ""
	return _(
		"The queued job disappeared before a worker started it (workers stopped or Redis was flushed). "
		"Check that bench workers run for the long queue."
	)


def fail_dead_run(log, reason: str, now: datetime):
	was_uploading = log.status == "Uploading"
	policy = frappe.get_doc("Backup Policy", log.policy)
	if log.backup_id:
		remove_unfinished_backup_dir(log.backup_id)
		problem = "" if log.backup_dir else adopt_finished_backup_dir(log)
		if problem is None:
			finish_adopted_run(log, policy, now)
			notify_run(policy, log)
			return
		if problem:
			reason += " " + _("Its backup folder is kept and listed on this log, but {0}.").format(problem)
	log.error_class = "RunDied"
	log.error_message = reason
	final_status = outcome.FAILED
	if was_uploading:
		# The local backup is complete: keep it, and let a later tick retry the upload.
		log.next_upload_retry_at = now
		final_status = outcome.interrupted_run_status(log.uploads)
	finish_log(log, final_status)
	notify_run(policy, log)


def finish_adopted_run(log, policy, now: datetime):
	"""End a dead run whose complete local backup was just recorded from its folder.

	Its local part is done: Success when the policy has no destination, else Failed with its upload
	retried on the next tick, as for a run that died while uploading.
	"""
	log.error_message = _(
		"The run's process stopped after its backup was complete and checked, before recording it on "
		"this log (or the database was restored from a dump taken during this run). The backup was "
		"recorded from its folder."
	)
	if not get_policy_destinations(policy):
		finish_log(log, outcome.SUCCESS)
		return
	log.error_class = "RunDied"
	log.error_message += " " + _("Its upload starts again on the next tick.")
	log.next_upload_retry_at = now
	finish_log(log, outcome.FAILED)


def remove_unfinished_backup_dir(backup_id: str):
	unfinished = get_backup_dir(backup_id) + PARTIAL_SUFFIX
	if os.path.isdir(unfinished):
		shutil.rmtree(unfinished, ignore_errors=True)


def adopt_finished_backup_dir(log) -> str | None:
	"""Record on `log` the finished folder of a run that died before recording it.

	Returns None when the folder holds the complete backup its manifest describes (recorded as
	such), "" when there is no folder, else why the folder, kept and listed, is not trusted.

	A folder gets its final name only once every artifact is checked and the manifest written. Its
	run died before saving it on the log (the run saves it with the log's next write), or the
	database was restored from a dump taken while the run was going. Either way the folder is kept
	and recorded (a restored database must never lose the very backup it came from).
	"""
	folder = get_backup_dir(log.backup_id)
	if not os.path.isdir(folder):
		return ""
	log.backup_dir = folder
	manifest_path = os.path.join(folder, MANIFEST_FILE_NAME)
	if not os.path.isfile(manifest_path):
		return _("it holds no manifest.json (taken before Backup Manager wrote one), so it was not checked")
	try:
		with open(manifest_path, "rb") as handle:
			raw = handle.read()
		# Only a manifest signed with this site's key, for this site and backup, is recorded.
		manifest, _status = load_authenticated_manifest(
			raw, get_manifest_key(), site=frappe.local.site, backup_id=log.backup_id
		)
		complete = bool(manifest.artifacts) and all(
			os.path.getsize(os.path.join(folder, os.path.basename(artifact.file_name))) == artifact.size
			for artifact in manifest.artifacts
		)
	except ManifestNotAuthentic:
		return _("its manifest.json is not one this site signed for this backup: do not restore from it")
	except (OSError, TypeError):
		complete = False
	if not complete:
		return _("its files are not the ones its manifest.json lists: do not restore from it")
	record_local_backup(log, folder, manifest)
	return None


def is_run_job_queued(log_name: str) -> bool:
	from frappe.utils.background_jobs import is_job_enqueued

	return bool(is_job_enqueued(run_job_id(log_name)))
