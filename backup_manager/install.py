"""Install and uninstall hooks."""

import frappe

from backup_manager.manifest_key import get_or_create_manifest_key


def after_install():
	"""Create the site's manifest key, which signs every backup manifest (see README, Security model)."""
	get_or_create_manifest_key()


def before_uninstall():
	"""Remove our scheduled job types, so the scheduler never calls a module of a removed app.

	Frappe drops the app's doctypes on uninstall but leaves Scheduled Job Type rows until the
	next migrate. The backups on disk (sites/<site>/private/backup_manager) are left alone:
	they are the operator's data.
	"""
	for name in frappe.get_all(
		"Scheduled Job Type", filters={"method": ("like", "backup_manager.%")}, pluck="name"
	):
		frappe.delete_doc("Scheduled Job Type", name, force=True, ignore_permissions=True)
