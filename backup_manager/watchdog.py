"""Probes for the watchdog: is the scheduler on, does a worker serve the long queue, are runs
stuck in the queue, is the backup disk nearly full. core.watchdog decides what is a problem.
"""

import os
import shutil

import frappe
from frappe.utils import cint, get_datetime, now_datetime, time_diff_in_seconds
from frappe.utils.background_jobs import generate_qname, get_redis_conn
from frappe.utils.scheduler import is_scheduler_disabled
from rq import Worker

from backup_manager.core import watchdog
from backup_manager.local_backup import get_backup_root


def get_problems() -> list[watchdog.Problem]:
	"""Everything that would stop this site's backups silently, with the fix."""
	return watchdog.find_problems(collect_facts(), queued_too_long_minutes=queued_too_long_minutes())


def queued_too_long_minutes() -> int:
	return cint(frappe.conf.get("backup_manager_queued_alert_minutes")) or watchdog.QUEUED_TOO_LONG_MINUTES


def collect_facts() -> watchdog.SiteFacts:
	inactive, reason = scheduler_state()
	oldest, count = oldest_queued_run()
	folder, free = backup_folder_free_bytes()
	return watchdog.SiteFacts(
		scheduler_inactive=inactive,
		scheduler_reason=reason,
		long_queue_workers=count_long_queue_workers(),
		oldest_queued_minutes=oldest,
		queued_runs=count,
		backup_folder=folder,
		free_bytes=free,
		last_backup_bytes=cint(
			frappe.db.get_value(
				"Backup Log", {"status": "Success"}, "total_size", order_by="finished_at desc"
			)
		)
		or None,
		has_enabled_policy=bool(frappe.db.exists("Backup Policy", {"enabled": 1})),
	)


def scheduler_state() -> tuple[bool, str]:
	"""Whether this site's scheduler events will run, and why not (as frappe.utils.scheduler decides)."""
	if frappe.conf.get("maintenance_mode"):
		return True, "maintenance mode is on"
	if frappe.conf.get("pause_scheduler"):
		return True, "pause_scheduler is set in site config"
	if is_scheduler_disabled(verbose=False):
		return True, "the scheduler is disabled"
	return False, ""


def count_long_queue_workers() -> int:
	"""RQ workers (on any machine of the bench) listening on this bench's long queue."""
	long_queue = generate_qname("long")
	try:
		workers = Worker.all(connection=get_redis_conn())
	except Exception:
		return 0
	return sum(1 for worker in workers if long_queue in worker.queue_names())


def oldest_queued_run() -> tuple[float | None, int]:
	"""Minutes the oldest Queued run has waited, and how many runs are Queued."""
	queued = frappe.get_all(
		"Backup Log", filters={"status": "Queued"}, fields=["queued_at"], order_by="queued_at asc"
	)
	if not queued or not queued[0].queued_at:
		return None, len(queued)
	return time_diff_in_seconds(now_datetime(), get_datetime(queued[0].queued_at)) / 60, len(queued)


def backup_folder_free_bytes() -> tuple[str, int | None]:
	"""The backup folder and the free space on its disk (the nearest existing parent if it is not made yet)."""
	folder = get_backup_root()
	probe = folder
	while probe and not os.path.exists(probe):
		parent = os.path.dirname(probe)
		if parent == probe:
			break
		probe = parent
	try:
		return folder, shutil.disk_usage(probe).free
	except OSError:
		return folder, None
