"""Read-outs run with `bench --site SITE execute` on a restored site, for the restore tests."""

import hashlib
import os

import frappe


def describe_site(marker: str, destination: str) -> dict:
	"""What the restore tests compare: marker records, a Password field, restored files."""
	from frappe.utils.password import get_decrypted_password

	todos = frappe.get_all(
		"ToDo",
		filters={"description": ("like", f"%{marker}%")},
		fields=["description", "priority", "status"],
		order_by="description asc",
	)
	files = {}
	for folder in ("public", "private"):
		path = frappe.get_site_path(folder, "files", f"{marker}.txt")
		if os.path.exists(path):
			with open(path, "rb") as handle:
				files[folder] = hashlib.sha256(handle.read()).hexdigest()
	secret = None
	if frappe.db.exists("Backup Destination", destination):
		secret = get_decrypted_password(
			"Backup Destination", destination, "secret_access_key", raise_exception=False
		)
	return {"todos": todos, "files": files, "secret": secret, "tree": describe_file_tree()}


def describe_file_tree() -> dict[str, str]:
	"""Every file under public/files and private/files, by path relative to the site, with its sha256."""
	tree = {}
	for folder in ("public", "private"):
		root = frappe.get_site_path(folder, "files")
		for directory, _folders, names in os.walk(root):
			for name in names:
				path = os.path.join(directory, name)
				with open(path, "rb") as handle:
					tree[os.path.relpath(path, frappe.get_site_path())] = hashlib.sha256(
						handle.read()
					).hexdigest()
	return tree


def delete_markers(marker: str) -> int:
	"""Delete the marker records (the change a same-site restore must undo)."""
	names = frappe.get_all("ToDo", filters={"description": ("like", f"%{marker}%")}, pluck="name")
	for name in names:
		frappe.delete_doc("ToDo", name, force=True, ignore_permissions=True)
	frappe.db.commit()
	return len(names)


def describe_file_records(marker: str) -> list[dict]:
	"""The File documents named after the marker, each with the sha256 of the file it points to."""
	described = []
	for name in frappe.get_all(
		"File", filters={"file_name": ("like", f"{marker}%")}, pluck="name", order_by="is_private asc"
	):
		file = frappe.get_doc("File", name)
		path = file.get_full_path()
		sha256 = None
		if os.path.isfile(path):
			with open(path, "rb") as handle:
				sha256 = hashlib.sha256(handle.read()).hexdigest()
		described.append(
			{
				"file_name": file.file_name,
				"file_url": file.file_url,
				"is_private": file.is_private,
				"sha256": sha256,
			}
		)
	return described


def describe_backup_log(name: str) -> dict:
	"""A Backup Log's status and message, and whether the folder it records is on disk."""
	log = frappe.db.get_value("Backup Log", name, ["status", "backup_dir", "error_message"], as_dict=True)
	return {
		"status": log.status,
		"folder_on_disk": bool(log.backup_dir) and os.path.isdir(log.backup_dir),
		"error_message": log.error_message,
	}


def mark_doctype_stale(doctype: str) -> str:
	"""Make a DocType look changed since the last migrate: only a migrate on this database re-syncs it."""
	frappe.db.set_value("DocType", doctype, "migration_hash", "stale", update_modified=False)
	frappe.db.commit()
	return frappe.db.get_value("DocType", doctype, "migration_hash")


def get_migration_hash(doctype: str) -> str:
	return frappe.db.get_value("DocType", doctype, "migration_hash")
