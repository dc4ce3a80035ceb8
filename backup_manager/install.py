"""Install and uninstall hooks."""

import frappe

from backup_manager.manifest_key import get_or_create_manifest_key


def after_install():
	"""Create the site's manifest key, which signs every backup manifest (see README, Security model),
	and the workspace's overview block."""
	get_or_create_manifest_key()
	sync_overview_block()


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


OVERVIEW_BLOCK = "Backup Manager Overview"


def sync_overview_block():
	"""Create or update the workspace's overview block (a Custom HTML Block) from the app's files.

	A workspace quick list fetches only name, title and status, so it cannot show a policy's
	state; the block calls backup_manager.api.get_overview instead. Run after install and migrate.
	"""
	folder = frappe.get_app_path(
		"backup_manager", "backup_manager", "workspace", "backup_manager", "overview_block"
	)

	def read(file_name: str) -> str:
		with open(f"{folder}/{file_name}") as handle:
			return handle.read()

	values = {
		"html": read("overview.html"),
		"script": read("overview.js"),
		"style": read("overview.css"),
		"private": 0,
	}
	if frappe.db.exists("Custom HTML Block", OVERVIEW_BLOCK):
		block = frappe.get_doc("Custom HTML Block", OVERVIEW_BLOCK)
		if all(block.get(key) == value for key, value in values.items()):
			return
		block.update(values)
		block.save(ignore_permissions=True)
	else:
		block = frappe.new_doc("Custom HTML Block")
		block.update(values)
		block.append("roles", {"role": "System Manager"})
		block.insert(ignore_permissions=True, set_name=OVERVIEW_BLOCK)
