"""Offsite copies of a backup: upload to every destination, verify, retry, prune, download.

core.offsite does the work against a storage backend; this module reads destinations and
logs, records every upload on the Backup Log and decides the run's final status.
"""

import os
from datetime import datetime, timezone

import frappe
from frappe import _
from frappe.utils import cint, now_datetime

from backup_manager.core import offsite, outcome, progress
from backup_manager.core.checksums import format_size
from backup_manager.core.manifest import Manifest
from backup_manager.core.progress import ProgressReporter
from backup_manager.core.storage import STORAGE_SFTP, fetch_host_key
from backup_manager.locks import policy_lock
from backup_manager.manifest_key import get_manifest_key, sign
from backup_manager.notifications import notify_run
from backup_manager.run_log import estimate_job_timeout, finish_log, record_uploads, save_log

UPLOAD_JOB = "backup_manager.offsite.retry_upload_job"
# Files of one backup uploaded to one destination at once (each in bounded parts).
MAX_FILES_IN_FLIGHT = 4


def get_policy_destinations(policy) -> list:
	"""The enabled destinations of a policy, as documents."""
	names = [row.destination for row in policy.get("destinations") or []]
	return [
		frappe.get_doc("Backup Destination", name)
		for name in dict.fromkeys(names)
		if frappe.db.get_value("Backup Destination", name, "enabled")
	]


def start_uploads(log, policy, reporter: ProgressReporter | None = None) -> dict:
	"""Open an upload of the log's backup to every enabled destination of the policy, before it is taken.

	The local backup hands each artifact to them as soon as it is checked and hashed
	(local_backup.take_backup); upload_log finishes them. Empty when there is no destination.
	`reporter` (optional) counts each destination's bytes from the start.
	"""
	return {
		destination.name: open_upload(destination, log, reporter)
		for destination in get_policy_destinations(policy)
	}


def upload_label(destination_name: str) -> str:
	return _("upload to {0}").format(destination_name)


def open_upload(destination, log, reporter: ProgressReporter | None = None) -> offsite.BackupUpload:
	"""A BackupUpload to one destination; one that cannot even start reports every artifact failed."""
	try:
		backend = destination.get_backend()
	except Exception as exc:
		frappe.log_error(
			title=f"Backup Manager: upload of {log.name} to {destination.name} failed",
			reference_doctype="Backup Log",
			reference_name=log.name,
		)
		return offsite.BackupUpload(
			None, prefix="", site=log.site, backup_id=log.backup_id, error=str(exc) or repr(exc)
		)
	return offsite.BackupUpload(
		backend,
		prefix=destination.path_prefix or "",
		site=log.site,
		backup_id=log.backup_id,
		max_workers=max(1, min(cint(destination.max_concurrency) or 2, MAX_FILES_IN_FLIGHT)),
		progress=reporter.counter(upload_label(destination.name)) if reporter else None,
		deduplicate=bool(cint(destination.deduplicate_files)),
	)


def upload_log(log, policy, uploads: dict | None = None, reporter: ProgressReporter | None = None) -> str:
	"""Upload a log's backup to every destination not yet complete; set and return its status.

	`uploads` (from start_uploads) may already hold artifacts in flight; the rest start here.
	`reporter` (optional) gets one upload phase per destination with the bytes sent.
	"""
	destinations = get_policy_destinations(policy)
	# Signed again for logs written before manifests were signed; the signature of a signed one is unchanged.
	manifest = sign(Manifest.from_json(log.manifest))
	log.manifest = manifest.to_json()
	log.status = "Uploading"
	log.upload_attempts = cint(log.upload_attempts) + 1
	log.next_upload_retry_at = None
	save_log(log)

	uploads = uploads or {}
	for destination in destinations:
		upload = uploads.pop(destination.name, None)
		if outcome.destination_complete(log.uploads, destination.name):
			continue
		if reporter:
			reporter.start_phase(progress.UPLOAD, manifest.total_size, label=upload_label(destination.name))
		upload = upload or open_upload(destination, log, reporter)
		try:
			record_uploads(log, destination.name, upload.finish(manifest, log.backup_dir))
		finally:
			upload.close()
	for upload in uploads.values():
		# A destination removed from the policy meanwhile: nothing of it is recorded.
		upload.cancel()
		upload.close()

	names = [destination.name for destination in destinations]
	log.offsite_savings = describe_savings(log, names)
	status = outcome.run_status(log.uploads, names)
	if status == outcome.SUCCESS:
		log.error_message = ""
		log.error_class = ""
	else:
		if status == outcome.FAILED:
			log.error_class = log.error_class or "UploadFailed"
		failures = [f"{row.destination}/{row.kind}: {row.error}" for row in log.uploads if row.error]
		log.error_message = _("Offsite upload incomplete. {0}").format("; ".join(failures[:10]))
		log.next_upload_retry_at = outcome.next_upload_retry_at(log.upload_attempts, now_datetime())
	finish_log(log, status)

	complete = outcome.complete_destinations(log.uploads, names)
	unrecognised = []
	for destination in destinations:
		if destination.name in complete:
			results = apply_destination_retention(destination, policy)
			unrecognised += [
				f"{destination.name}: {result.backup_id} ({len(result.keys)} object(s)): {result.reason}"
				for result in results
				if result.action == offsite.UNRECOGNISED
			]
	if unrecognised or log.unrecognised_objects:
		log.unrecognised_objects = "\n".join(unrecognised)
		save_log(log)
	record_storage_used(policy, destinations, log.site)
	return status


def describe_savings(log, destination_names: list[str]) -> str:
	"""One line per destination: bytes uploaded against the bytes the backup represents."""
	lines = []
	for name in destination_names:
		rows = [row for row in log.uploads if row.destination == name and row.kind != offsite.MANIFEST_KIND]
		uploaded = sum(cint(row.bytes) for row in rows)
		represented = sum(cint(row.represented_bytes) or cint(row.bytes) for row in rows)
		if not rows:
			continue
		saved = (1 - uploaded / represented) * 100 if represented else 0
		lines.append(
			_("{0}: uploaded {1} of {2} ({3}% already offsite)").format(
				name, format_size(uploaded), format_size(represented), f"{max(saved, 0):.1f}"
			)
		)
	return "\n".join(lines)


def record_storage_used(policy, destinations: list, site: str) -> None:
	"""Measure what the site's backups take on each destination and show it on the policy."""
	lines = []
	for destination in destinations:
		backend = None
		try:
			backend = destination.get_backend()
			usage = offsite.measure_usage(backend, prefix=destination.path_prefix or "", site=site)
		except Exception:
			frappe.log_error(
				title=f"Backup Manager: measuring {destination.name} failed",
				reference_doctype="Backup Destination",
				reference_name=destination.name,
			)
			lines.append(_("{0}: could not be measured").format(destination.name))
			continue
		finally:
			if backend is not None:
				backend.close()
		lines.append(
			_("{0}: {1} in {2} backup(s) and {3} stored file(s)").format(
				destination.name, format_size(usage.bytes), usage.backups, usage.stored_files
			)
		)
	policy.db_set("offsite_storage_used", "\n".join(lines), update_modified=False)


def apply_destination_retention(destination, policy, dry_run: bool = False) -> list:
	"""Apply the policy's retention to one destination; a failure is logged, never raised."""
	pinned_ids = frappe.get_all(
		"Backup Log",
		filters={"policy": policy.name, "keep_forever": 1, "backup_id": ("is", "set")},
		pluck="backup_id",
	)
	# What this site wrote: retention decides over these (and over manifests its key verifies) only.
	known_ids = frappe.get_all(
		"Backup Log", filters={"site": frappe.local.site, "backup_id": ("is", "set")}, pluck="backup_id"
	)
	backend = None
	try:
		backend = destination.get_backend()
		return offsite.apply_offsite_retention(
			backend,
			prefix=destination.path_prefix or "",
			site=frappe.local.site,
			rules=policy.get_retention_rules(),
			pinned_ids=pinned_ids,
			now=datetime.now(timezone.utc),
			dry_run=dry_run,
			hmac_key=get_manifest_key(),
			known_ids=known_ids,
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
	finally:
		if backend is not None:
			backend.close()


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
	log = frappe.get_doc("Backup Log", backup_log)
	with policy_lock(log.policy) as locked:
		if not locked:
			# The policy is busy; the next tick tries again.
			return log.status
		policy = frappe.get_doc("Backup Policy", log.policy)
		status = upload_log(log, policy)
		notify_run(policy, log)
		return status


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
	for name in outcome.complete_destinations(log.uploads, [row.destination for row in log.uploads]):
		return frappe.get_doc("Backup Destination", name)
	frappe.throw(
		_(
			"Backup Log {0} has no complete offsite copy. Name the Backup Destination to read it from "
			"(restore-plan --from-destination, download --destination, or Download From in the Restore Guide)."
		).format(log.name)
	)


def test_destination_connection(destination_name: str) -> dict:
	"""Test Connection: the store is reachable and a probe can be written, read and deleted; recorded on the destination.

	For SFTP the first check is the host key: the answer carries the key the server offers and its
	fingerprint, so that the user can compare it and accept it (accept_host_key).
	"""
	destination = frappe.get_doc("Backup Destination", destination_name)
	backend = destination.get_backend()
	try:
		report = backend.check_connection()
	finally:
		backend.close()
	message = "\n".join(
		f"{'✔' if check.ok else '✘'} {check.name}: {check.message}" for check in report.checks
	)
	destination.db_set(
		{
			"last_test_status": "Passed" if report.ok else "Failed",
			"last_test_at": now_datetime(),
			"last_test_message": message,
		}
	)
	return {
		"ok": report.ok,
		"checks": [{"name": check.name, "ok": check.ok, "message": check.message} for check in report.checks],
		# Public: a host key is what the server shows to anyone who connects.
		"host_key_fingerprint": report.host_key_fingerprint,
		"host_key_to_accept": report.host_key_fingerprint
		if report.host_key and report.host_key_fingerprint != (destination.host_key_fingerprint or "")
		else "",
	}


def accept_host_key(destination_name: str, fingerprint: str) -> dict:
	"""Pin the host key the SFTP server offers now, if it is the one whose fingerprint the user accepted."""
	destination = frappe.get_doc("Backup Destination", destination_name)
	if destination.storage_type != STORAGE_SFTP:
		frappe.throw(_("Backup Destination {0} is not an SFTP destination.").format(destination.name))
	# Fetched again rather than taken from the browser: only the key the server really offers,
	# and only if it is the one the user saw, is pinned.
	offered, offered_fingerprint = fetch_host_key(destination.get_sftp_config())
	if offered_fingerprint != (fingerprint or "").strip():
		frappe.throw(
			_(
				"{0} now offers host key {1}, not the {2} you accepted. Nothing was changed; run Test Connection again."
			).format(destination.sftp_host, offered_fingerprint, fingerprint),
			exc=frappe.ValidationError,
		)
	destination.host_key = offered
	destination.host_key_fingerprint = offered_fingerprint
	destination.flags.keep_host_key = True
	destination.save()
	frappe.logger("backup_manager").info(
		"Host key %s of %s accepted for %s", offered_fingerprint, destination.sftp_host, destination.name
	)
	return {"host_key_fingerprint": offered_fingerprint}
