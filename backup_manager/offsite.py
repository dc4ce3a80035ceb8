"""Offsite copies of a backup: upload to every destination, verify, retry, prune, download.

core.offsite does the work against a storage backend; this module reads destinations and
logs, records every upload on the Backup Log and decides the run's final status.
"""

import os
from datetime import datetime, timezone

import frappe
from frappe import _
from frappe.utils import add_to_date, cint, now_datetime

from backup_manager.core import offsite
from backup_manager.core.checksums import format_size
from backup_manager.core.manifest import Manifest

# Automatic upload retries after a failed or partial upload: 15 min, 30 min, 60 min.
MAX_UPLOAD_ATTEMPTS = 4
RETRY_BASE_MINUTES = 15
UPLOAD_JOB = "backup_manager.offsite.retry_upload_job"


def get_policy_destinations(policy) -> list:
	"""The enabled destinations of a policy, as documents."""
	names = [row.destination for row in policy.get("destinations") or []]
	return [
		frappe.get_doc("Backup Destination", name)
		for name in dict.fromkeys(names)
		if frappe.db.get_value("Backup Destination", name, "enabled")
	]


def upload_log(log, policy) -> str:
	"""Upload a log's backup to every destination not yet complete; set and return its status."""
	from backup_manager.jobs import finish_log, save_log

	destinations = get_policy_destinations(policy)
	manifest = Manifest.from_json(log.manifest)
	log.status = "Uploading"
	log.upload_attempts = cint(log.upload_attempts) + 1
	log.next_upload_retry_at = None
	save_log(log)

	for destination in destinations:
		if destination_complete(log, destination.name):
			continue
		results = upload_to_destination(destination, manifest, log)
		log.set("uploads", [row for row in log.uploads if row.destination != destination.name])
		for result in results:
			log.append(
				"uploads",
				{
					"destination": destination.name,
					"kind": result.kind,
					"status": result.status,
					"remote_key": result.key,
					"bytes": result.bytes,
					"size_human": format_size(result.bytes),
					"duration": round(result.duration_seconds, 3),
					"verified_by": result.verified_by,
					"error": result.error,
				},
			)
		save_log(log)

	complete = [
		destination.name for destination in destinations if destination_complete(log, destination.name)
	]
	if len(complete) == len(destinations):
		status = "Success"
	elif complete or any(row.status == offsite.UPLOADED for row in log.uploads):
		status = "Partial"
	else:
		status = "Failed"
		log.error_class = log.error_class or "UploadFailed"
	if status != "Success":
		failures = [f"{row.destination}/{row.kind}: {row.error}" for row in log.uploads if row.error]
		log.error_message = _("Offsite upload incomplete. {0}").format("; ".join(failures[:10]))
		if log.upload_attempts < MAX_UPLOAD_ATTEMPTS:
			log.next_upload_retry_at = add_to_date(
				now_datetime(), minutes=RETRY_BASE_MINUTES * 2 ** (log.upload_attempts - 1)
			)
	else:
		log.error_message = ""
		log.error_class = ""
	finish_log(log, status)

	for destination in destinations:
		if destination.name in complete:
			apply_destination_retention(destination, policy)
	return status


def upload_to_destination(destination, manifest: Manifest, log) -> list:
	"""Upload to one destination; a destination that cannot even start reports every artifact failed."""
	try:
		backend = destination.get_backend()
		return offsite.upload_backup(
			backend,
			manifest,
			log.backup_dir,
			prefix=destination.path_prefix or "",
			site=log.site,
			max_workers=max(1, min(cint(destination.max_concurrency) or 2, len(manifest.artifacts))),
		)
	except Exception as exc:
		frappe.log_error(
			title=f"Backup Manager: upload of {log.name} to {destination.name} failed",
			reference_doctype="Backup Log",
			reference_name=log.name,
		)
		return [
			offsite.ArtifactUploadResult(
				kind=artifact.kind,
				key="",
				status=offsite.FAILED,
				bytes=0,
				duration_seconds=0.0,
				error=str(exc),
			)
			for artifact in manifest.artifacts
		]


def destination_complete(log, destination: str) -> bool:
	"""True once every artifact and the manifest (written last) reached the destination."""
	rows = [row for row in log.uploads if row.destination == destination]
	return (
		bool(rows)
		and any(row.kind == offsite.MANIFEST_KIND and row.status == offsite.UPLOADED for row in rows)
		and all(row.status == offsite.UPLOADED for row in rows)
	)


def apply_destination_retention(destination, policy, dry_run: bool = False) -> list:
	"""Apply the policy's retention to one destination; a failure is logged, never raised."""
	pinned_ids = frappe.get_all(
		"Backup Log",
		filters={"policy": policy.name, "keep_forever": 1, "backup_id": ("is", "set")},
		pluck="backup_id",
	)
	try:
		return offsite.apply_offsite_retention(
			destination.get_backend(),
			prefix=destination.path_prefix or "",
			site=frappe.local.site,
			rules=policy.get_retention_rules(),
			pinned_ids=pinned_ids,
			now=datetime.now(timezone.utc),
			dry_run=dry_run,
		)
	except Exception:
		frappe.log_error(
			title=f"Backup Manager: offsite retention on {destination.name} failed",
			reference_doctype="Backup Destination",
			reference_name=destination.name,
		)
		if dry_run:
			raise
		return []


def retry_upload(log_name: str, *, enqueue: bool = True):
	"""Queue (or run) a retry of a log's failed uploads; refused if the local files are gone."""
	log = frappe.get_doc("Backup Log", log_name)
	if log.status not in ("Partial", "Failed") or not log.manifest:
		frappe.throw(
			_("Backup Log {0} has no failed upload to retry (status {1}).").format(log.name, log.status)
		)
	if log.local_files_deleted or not log.backup_dir or not os.path.isdir(log.backup_dir):
		frappe.throw(_("The local files of {0} are gone, so its upload cannot be retried.").format(log.name))
	if enqueue:
		from backup_manager.jobs import estimate_job_timeout

		frappe.enqueue(
			UPLOAD_JOB,
			queue="long",
			timeout=estimate_job_timeout(log.policy),
			job_id=f"backup_manager:upload:{log.name}",
			deduplicate=True,
			enqueue_after_commit=True,
			backup_log=log.name,
		)
		return None
	return retry_upload_job(backup_log=log.name)


def retry_upload_job(backup_log: str):
	"""RQ job: retry a log's uploads while holding its policy lock."""
	from backup_manager.jobs import acquire_policy_lock, notify_run, release_policy_lock

	log = frappe.get_doc("Backup Log", backup_log)
	if not acquire_policy_lock(log.policy):
		# The policy is busy; the next tick tries again.
		return log.status
	try:
		policy = frappe.get_doc("Backup Policy", log.policy)
		status = upload_log(log, policy)
		notify_run(policy, log)
		return status
	finally:
		release_policy_lock(log.policy)


def retry_due_uploads(now):
	"""Tick step: queue retries whose backoff has passed."""
	for log_name in frappe.get_all(
		"Backup Log",
		filters={
			"status": ("in", ("Partial", "Failed")),
			"next_upload_retry_at": ("<=", now),
			"local_files_deleted": 0,
		},
		pluck="name",
	):
		frappe.db.set_value("Backup Log", log_name, "next_upload_retry_at", None, update_modified=False)
		try:
			retry_upload(log_name)
		except Exception:
			frappe.log_error(
				title=f"Backup Manager: retry of {log_name} not queued",
				reference_doctype="Backup Log",
				reference_name=log_name,
			)


def get_log_destination(log, destination_name: str | None):
	"""The destination to read a log's backup from: the named one, or the first complete one."""
	if destination_name:
		if not frappe.db.exists("Backup Destination", destination_name):
			frappe.throw(_("Backup Destination {0} does not exist.").format(destination_name))
		return frappe.get_doc("Backup Destination", destination_name)
	for row in log.uploads:
		if destination_complete(log, row.destination):
			return frappe.get_doc("Backup Destination", row.destination)
	frappe.throw(
		_(
			"Backup Log {0} has no complete offsite copy. Name the Backup Destination to read it from "
			"(restore-plan --from-destination, download --destination, or Download From in the Restore Guide)."
		).format(log.name)
	)
