"""Every whitelisted method of Backup Manager: the role is checked first, then the same code the CLI uses.

Desk's buttons (Backup Now, Preview Retention, Retry Upload, Verify, Test Connection, the
Restore Guide) call these; the doctype controllers hold no whitelisted methods of their own.
"""

import frappe
from frappe import _

from backup_manager.jobs import start_run
from backup_manager.offsite import retry_upload as queue_upload_retry
from backup_manager.offsite import test_destination_connection as check_destination
from backup_manager.permissions import require_backup_admin
from backup_manager.restore import get_restore_guide as build_guide
from backup_manager.retention import evaluate_local_retention
from backup_manager.verification import verify_local_backup


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


@frappe.whitelist()
def get_restore_guide(backup_log: str, new_site: str | None = None, destination: str | None = None) -> dict:
	"""The Restore Guide of a backup: what it holds and the exact steps to restore it."""
	require_backup_admin()
	get_existing_doc("Backup Log", backup_log)
	return build_guide(backup_log, new_site=new_site, destination=destination)


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
