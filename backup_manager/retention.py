"""Local retention for a policy: core.retention decides, this module deletes and records."""

import os

import frappe
from frappe.utils import get_datetime, now_datetime

from backup_manager.core.retention import BackupRecord, Verdict, evaluate, prune_order
from backup_manager.local_backup import delete_backup_dir
from backup_manager.run_log import save_log


def get_local_backup_records(policy_name: str) -> list[BackupRecord]:
	"""Every backup of the policy whose local files still exist, as plain retention records."""
	logs = frappe.db.get_values(
		"Backup Log",
		filters={
			"policy": policy_name,
			"status": ("in", ("Success", "Partial", "Uploading", "Failed")),
			"local_files_deleted": 0,
		},
		fieldname=["name", "status", "started_at", "keep_forever", "backup_dir"],
		as_dict=True,
	)
	records = []
	for log in logs:
		if not log.backup_dir:
			continue
		records.append(
			BackupRecord(
				id=log.name,
				created_at=get_datetime(log.started_at),
				good=log.status == "Success",
				pinned=bool(log.keep_forever),
				# The local copy is the only complete one until every offsite copy verified.
				protected_reason="offsite copy not verified yet" if log.status != "Success" else "",
			)
		)
	return records


def evaluate_local_retention(policy) -> list[Verdict]:
	return evaluate(get_local_backup_records(policy.name), policy.get_retention_rules())


def apply_local_retention(policy, dry_run: bool = False) -> list[Verdict]:
	"""Delete the local files of every backup retention prunes, oldest first; return all verdicts."""
	verdicts = evaluate_local_retention(policy)
	if dry_run:
		return verdicts
	for verdict in prune_order(verdicts):
		log = frappe.get_doc("Backup Log", verdict.backup.id)
		if log.backup_dir and os.path.exists(log.backup_dir):
			delete_backup_dir(log.backup_dir)
		log.local_files_deleted = 1
		log.pruned_at = now_datetime()
		log.prune_reason = verdict.reason
		save_log(log)
	return verdicts
