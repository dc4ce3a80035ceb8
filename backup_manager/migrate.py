"""Backup before migrate: `bench migrate` first takes a backup with every policy that asks for it."""

import os

import frappe
from frappe import _

from backup_manager.core.restore_plan import SKIP_MIGRATE_BACKUP_ENV
from backup_manager.jobs import execute_run, start_run


class BackupBeforeMigrateFailed(frappe.ValidationError):
	pass


def backup_before_migrate():
	"""before_migrate hook: back up with every policy that asks for it; a failure stops the migrate."""
	if os.environ.get(SKIP_MIGRATE_BACKUP_ENV) == "1":
		frappe.logger("backup_manager").warning(f"{SKIP_MIGRATE_BACKUP_ENV}=1: backup before migrate skipped")
		return
	if not frappe.db.table_exists("Backup Policy"):
		return
	for policy in frappe.get_all(
		"Backup Policy", filters={"enabled": 1, "backup_before_migrate": 1}, pluck="name"
	):
		log = execute_run(start_run(policy=policy, trigger="Before Migrate", enqueue=False))
		if log.status != "Success":
			frappe.throw(
				_(
					"Backup before migrate failed for policy {0} (Backup Log {1}: {2}). The migrate was stopped. "
					"Fix the backup, or run the migrate without it: {3}=1 bench --site {4} migrate"
				).format(
					policy,
					log.name,
					log.error_message or log.skip_reason or log.status,
					SKIP_MIGRATE_BACKUP_ENV,
					frappe.local.site,
				),
				exc=BackupBeforeMigrateFailed,
			)
