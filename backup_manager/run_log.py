"""Writing Backup Logs: the one owner of a run's record.

Every change Backup Manager makes to a Backup Log goes through here: insert, save, the local
backup's artifacts, upload rows, failures (with the site's secrets redacted) and the final
status, which is mirrored onto the policy. Users may change only Keep Forever; the controller
lets these writes through by the `written_by_backup_manager` flag.
"""

import os
import traceback

import frappe
from frappe.utils import cint, now_datetime, time_diff_in_seconds

from backup_manager.core.checksums import format_size

WAITING_FOR_SLOT = "Waiting for a slot"
ACTIVE_STATUSES = ("Queued", WAITING_FOR_SLOT, "Running", "Uploading")
# How long a queued run may wait for a bench-wide run slot before RQ's timeout stops it.
SLOT_WAIT_ALLOWANCE_SECONDS = 12 * 60 * 60
MIN_JOB_TIMEOUT_SECONDS = 2 * 60 * 60
# Generous floor for throughput when sizing a job timeout from the previous backup: 5 MiB/s.
TIMEOUT_BYTES_PER_SECOND = 5 * 1024 * 1024
# Site config keys whose values must never reach a log, a message or a traceback.
SECRET_CONFIG_KEYS = (
	"db_password",
	"backup_encryption_key",
	"encryption_key",
	"admin_password",
	"root_password",
)


def run_job_id(log_name: str) -> str:
	"""The RQ job id of a run: stable, so enqueueing it twice is deduplicated."""
	return f"backup_manager:run:{log_name}"


def estimate_job_timeout(policy: str) -> int:
	"""Size the RQ timeout from the policy's last backup, so a multi-GB backup is never killed."""
	return max(MIN_JOB_TIMEOUT_SECONDS, 3 * last_backup_size(policy) // TIMEOUT_BYTES_PER_SECOND)


def last_backup_size(policy: str) -> int:
	"""The size of the policy's last successful backup (0 if none): the estimate for the next one."""
	return cint(
		frappe.db.get_value(
			"Backup Log", {"policy": policy, "status": "Success"}, "total_size", order_by="started_at desc"
		)
	)


def last_backup_sizes(policy: str) -> dict[str, int]:
	"""The artifact sizes by kind of the policy's last successful backup: the progress estimate for the next."""
	last = frappe.db.get_value(
		"Backup Log", {"policy": policy, "status": "Success"}, "name", order_by="started_at desc"
	)
	if not last:
		return {}
	return {
		row.kind: cint(row.size)
		for row in frappe.db.get_values(
			"Backup Log Artifact",
			filters={"parent": last, "parenttype": "Backup Log"},
			fieldname=["kind", "size"],
			as_dict=True,
		)
	}


def insert_log(log):
	"""Insert a new log as Backup Manager and commit."""
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


def finish_log(log, status: str):
	"""Set a log's final status, time and duration, and show it on the policy."""
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


def record_compressor(log, compressor):
	"""Note the compressor (core.compression.Compressor) a run uses; saved with the log's next write."""
	log.compressor = compressor.describe()
	log.compression_level = compressor.level


def record_local_backup(log, backup_dir: str, manifest):
	"""Put the local backup's artifacts, apps and manifest on the log (status unchanged); saved with
	the log's next write, which follows at once (the upload's start or the final status)."""
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


def record_uploads(log, destination: str, results: list):
	"""Replace a destination's upload rows with `results` (core.offsite.ArtifactUploadResult) and save."""
	log.set("uploads", [row for row in log.uploads if row.destination != destination])
	for result in results:
		log.append(
			"uploads",
			{
				"destination": destination,
				"kind": result.kind,
				"status": result.status,
				"remote_key": result.key,
				"bytes": result.bytes,
				"size_human": format_size(result.bytes),
				"represented_bytes": getattr(result, "represented_bytes", 0) or result.bytes,
				"duration": round(result.duration_seconds, 3),
				"verified_by": result.verified_by,
				"error": result.error,
			},
		)
	save_log(log)


def record_failure(log, exc: BaseException):
	"""Finish a log as Failed with the error and traceback (secrets redacted), and log it."""
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
	for key in SECRET_CONFIG_KEYS:
		secret = frappe.conf.get(key)
		if secret and len(str(secret)) >= 4:
			text = text.replace(str(secret), "********")
	return text


def record_restore_verified(log_name: str, drill_name: str, verified_at):
	"""Mark a backup as proven restorable by a passed drill (shown on the Backup Log)."""
	frappe.db.set_value(
		"Backup Log",
		log_name,
		{"restore_verified": 1, "restore_verified_at": verified_at, "last_restore_drill": drill_name},
		update_modified=False,
	)


def record_drill_attempt(log_name: str, drill_name: str):
	"""Link a backup to its newest drill, whatever the outcome."""
	frappe.db.set_value("Backup Log", log_name, "last_restore_drill", drill_name, update_modified=False)
