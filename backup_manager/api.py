"""Whitelisted methods for Desk: permission check first, then the same code the CLI uses."""

import frappe

from backup_manager.permissions import require_backup_admin


@frappe.whitelist()
def get_restore_guide(backup_log: str, new_site: str | None = None, destination: str | None = None) -> dict:
	"""The Restore Guide of a backup: what it holds and the exact steps to restore it."""
	require_backup_admin()
	from backup_manager.restore import get_restore_guide as build_guide

	if not frappe.db.exists("Backup Log", backup_log):
		frappe.throw(
			frappe._("Backup Log {0} does not exist.").format(backup_log), exc=frappe.DoesNotExistError
		)
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
