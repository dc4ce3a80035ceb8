"""Who may see and run backups: System Managers only."""

import frappe
from frappe import _

BACKUP_ADMIN_ROLES = ("System Manager",)


def require_backup_admin():
	"""Raise PermissionError unless the session user is a System Manager.

	frappe.only_for is not used: it lets every user through while tests run, so a test
	could not prove the check.
	"""
	if frappe.session.user == "Administrator":
		return
	if not set(BACKUP_ADMIN_ROLES) & set(frappe.get_roles()):
		raise frappe.PermissionError(_("Only a System Manager can do this with backups."))
