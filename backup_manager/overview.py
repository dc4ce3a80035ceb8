"""What the Backup Manager workspace shows: each policy's real state, recent runs, watchdog problems."""

import frappe
from frappe.utils import now_datetime, time_diff_in_seconds

from backup_manager.watchdog import get_problems

RECENT_RUNS = 10


def get_overview() -> dict:
	now = now_datetime()
	policies = frappe.get_all(
		"Backup Policy",
		fields=["name", "enabled", "last_status", "last_success_at", "last_backup_log", "next_run_at"],
		order_by="enabled desc, name asc",
	)
	for policy in policies:
		policy.last_success_age_seconds = (
			int(time_diff_in_seconds(now, policy.last_success_at)) if policy.last_success_at else None
		)
	runs = frappe.get_all(
		"Backup Log",
		fields=[
			"name",
			"policy",
			"status",
			"trigger",
			"queued_at",
			"started_at",
			"duration",
			"total_size_human",
		],
		order_by="creation desc",
		limit=RECENT_RUNS,
	)
	return {
		"policies": policies,
		"runs": runs,
		"problems": [problem.as_dict() for problem in get_problems()],
	}
