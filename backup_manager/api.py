"""Every whitelisted method of Backup Manager: the role is checked first, then the same code the CLI uses.

Desk's buttons (Backup Now, Preview Retention, Retry Upload, Verify, Test Connection, the
Restore Guide, Run Restore Drill) call these; the doctype controllers hold no whitelisted methods of their own.
"""

import json

import frappe
from frappe import _
from werkzeug.wrappers import Response

from backup_manager.core.health import render_prometheus
from backup_manager.drills import start_drill
from backup_manager.health import get_site_health, issue_monitor_token, to_epoch, to_iso, verify_monitor_token
from backup_manager.jobs import start_run
from backup_manager.offsite import accept_host_key
from backup_manager.offsite import retry_upload as queue_upload_retry
from backup_manager.offsite import test_destination_connection as check_destination
from backup_manager.overview import get_overview as build_overview
from backup_manager.permissions import require_backup_admin
from backup_manager.progress import get_last_progress
from backup_manager.restore import get_restore_guide as build_guide
from backup_manager.retention import evaluate_local_retention
from backup_manager.verification import verify_local_backup
from backup_manager.watchdog import get_problems as find_watchdog_problems


@frappe.whitelist(methods=["POST"])
def backup_now(policy: str) -> str:
	"""Queue a manual run of a policy (the same path as a scheduled run); return its Backup Log."""
	require_backup_admin()
	get_existing_doc("Backup Policy", policy)
	return start_run(policy=policy, trigger="Manual").name


@frappe.whitelist()
def preview_retention(policy: str) -> list[dict]:
	"""What local retention would keep or prune now, and why; deletes nothing."""
	require_backup_admin()
	return [
		{
			"backup_log": verdict.backup.id,
			"created_at": verdict.backup.created_at,
			"keep": verdict.keep,
			"reason": verdict.reason,
		}
		for verdict in evaluate_local_retention(get_existing_doc("Backup Policy", policy))
	]


@frappe.whitelist(methods=["POST"])
def retry_upload(backup_log: str) -> None:
	"""Queue a retry of a backup's failed offsite uploads."""
	require_backup_admin()
	queue_upload_retry(get_existing_doc("Backup Log", backup_log).name)


@frappe.whitelist()
def verify_backup(backup_log: str) -> list[dict]:
	"""Re-check a backup's local artifacts: sizes, sha256, gzip and tar readability."""
	require_backup_admin()
	return [check.as_dict() for check in verify_local_backup(get_existing_doc("Backup Log", backup_log))]


@frappe.whitelist(methods=["POST"])
def test_destination_connection(destination: str) -> dict:
	"""Test Connection: the bucket exists and a probe object can be written, read and deleted."""
	require_backup_admin()
	return check_destination(get_existing_doc("Backup Destination", destination).name)


@frappe.whitelist(methods=["POST"])
def accept_destination_host_key(destination: str, fingerprint: str) -> dict:
	"""Pin an SFTP server's host key, after the user compared its fingerprint (fetched again here)."""
	require_backup_admin()
	return accept_host_key(get_existing_doc("Backup Destination", destination).name, fingerprint)


@frappe.whitelist()
def get_restore_guide(backup_log: str, new_site: str | None = None, destination: str | None = None) -> dict:
	"""The Restore Guide of a backup: what it holds and the exact steps to restore it."""
	require_backup_admin()
	get_existing_doc("Backup Log", backup_log)
	return build_guide(backup_log, new_site=new_site, destination=destination)


@frappe.whitelist(methods=["POST"])
def run_restore_drill(backup_log: str, destination: str | None = None) -> str:
	"""Queue a restore drill of a backup (an active drill of it is returned instead); return the drill."""
	require_backup_admin()
	get_existing_doc("Backup Log", backup_log)
	return start_drill(backup_log=backup_log, trigger="Manual", destination=destination or None).name


@frappe.whitelist()
def get_restorable_backups(limit: int = 50) -> list[dict]:
	"""Recent backups that can be restored, for the Restore Guide's picker."""
	require_backup_admin()
	return frappe.get_all(
		"Backup Log",
		filters={"status": ("in", ("Success", "Partial")), "manifest": ("is", "set")},
		fields=["name", "policy", "status", "started_at", "total_size_human", "local_files_deleted"],
		order_by="started_at desc",
		limit=frappe.utils.cint(limit) or 50,
	)


def get_existing_doc(doctype: str, name: str):
	"""The document, or a DoesNotExistError naming it (after the role check, so nothing leaks)."""
	if not name or not frappe.db.exists(doctype, name):
		frappe.throw(_("{0} {1} does not exist.").format(_(doctype), name), exc=frappe.DoesNotExistError)
	return frappe.get_doc(doctype, name)


# The monitor token travels in its own header: Frappe itself claims `Authorization` (it
# rejects any Bearer token that is not one of its OAuth tokens before our method runs).
MONITOR_TOKEN_HEADER = "X-Backup-Manager-Token"


@frappe.whitelist(allow_guest=True, methods=["GET"])
def health(format: str = "json"):
	"""Backup health for an outside monitor, authenticated by a monitor token in X-Backup-Manager-Token.

	JSON (default): HTTP 200 when every enabled policy is within its alert window and the
	watchdog found nothing, 503 otherwise. format=prometheus: the same figures as Prometheus
	text, always HTTP 200 (a failed scrape would hide the figures; alert on backup_manager_healthy).
	Without a valid token: 401 and nothing else.
	"""
	if not verify_monitor_token(frappe.get_request_header(MONITOR_TOKEN_HEADER) or ""):
		return Response(
			json.dumps({"error": "A valid monitor token is required in the X-Backup-Manager-Token header."}),
			status=401,
			mimetype="application/json",
		)
	site_health = get_site_health()
	if format == "prometheus":
		return Response(
			render_prometheus(site_health, to_epoch), status=200, mimetype="text/plain; version=0.0.4"
		)
	body = {
		"site": site_health.site,
		"healthy": site_health.healthy,
		"policies": [policy.as_dict(to_iso) for policy in site_health.policies],
		"problems": [problem.as_dict() for problem in site_health.problems],
	}
	return Response(json.dumps(body), status=site_health.http_status, mimetype="application/json")


@frappe.whitelist(methods=["POST"])
def generate_monitor_token(name: str) -> str:
	"""Make a new secret for a Backup Monitor Token and return it once; the old one stops working."""
	require_backup_admin()
	return issue_monitor_token(get_existing_doc("Backup Monitor Token", name).name)


@frappe.whitelist()
def get_overview() -> dict:
	"""The workspace's picture: every policy's real state, recent runs, and the watchdog's problems."""
	require_backup_admin()
	return build_overview()


@frappe.whitelist()
def get_run_progress(backup_log: str) -> dict | None:
	"""The latest progress snapshot of a running backup (phase, bytes, time left), or None."""
	require_backup_admin()
	return get_last_progress(get_existing_doc("Backup Log", backup_log).name)


@frappe.whitelist()
def get_watchdog_problems() -> list[dict]:
	"""What would stop backups silently on this site (scheduler, workers, stuck runs, disk), with the fix."""
	require_backup_admin()
	return [problem.as_dict() for problem in find_watchdog_problems()]
