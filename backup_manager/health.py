"""Backup health for outside monitors: monitor tokens, per-policy facts, the site's verdict.

core.health decides (windows, 200 or 503, Prometheus text); this module reads policies and
logs in a few queries (the endpoint may be polled every minute on a site with hundreds of
policies) and checks monitor tokens against their stored hashes.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import frappe
from frappe.utils import cint, flt, get_datetime, get_system_timezone, get_time, now_datetime

from backup_manager.core import health, schedule
from backup_manager.core.errors import InvalidPolicy
from backup_manager.watchdog import get_problems

TOKEN_DOCTYPE = "Backup Monitor Token"


def verify_monitor_token(token: str) -> bool:
	"""True when `token` is an enabled monitor token; compares every stored hash in constant time."""
	if not token:
		return False
	matched = None
	for row in frappe.get_all(
		TOKEN_DOCTYPE, filters={"enabled": 1, "token_hash": ("is", "set")}, fields=["name", "token_hash"]
	):
		# No early exit: the time taken does not depend on which token (if any) matched.
		if health.token_matches(token, row.token_hash):
			matched = row.name
	if matched:
		frappe.db.set_value(TOKEN_DOCTYPE, matched, "last_used_at", now_datetime(), update_modified=False)
		frappe.db.commit()
	return matched is not None


def issue_monitor_token(name: str) -> str:
	"""Make a new secret for a monitor token, store only its hash, and return it (shown once)."""
	token = health.generate_token()
	frappe.db.set_value(
		TOKEN_DOCTYPE,
		name,
		{"token_hash": health.hash_token(token), "token_hint": token[:8] + "…", "enabled": 1},
	)
	return token


def get_site_health(now: datetime | None = None) -> health.SiteHealth:
	now = now or now_datetime()
	return health.evaluate_site(frappe.local.site, collect_policy_facts(now), get_problems(), now)


def to_epoch(value: datetime) -> float:
	return get_datetime(value).replace(tzinfo=ZoneInfo(get_system_timezone())).timestamp()


def to_iso(value: datetime | None) -> str | None:
	if not value:
		return None
	return get_datetime(value).replace(tzinfo=ZoneInfo(get_system_timezone())).isoformat()


def collect_policy_facts(now: datetime) -> list[health.PolicyFacts]:
	"""Every policy's facts, in a fixed number of queries whatever the number of policies."""
	verified_field = frappe.get_meta("Backup Policy").has_field("last_verified_restore_at")
	fields = [
		"name",
		"enabled",
		"creation",
		"frequency",
		"cron_expression",
		"backup_time",
		"start_window_minutes",
		"alert_after_hours",
		"last_success_at",
		"last_status",
		"last_backup_log",
		"next_run_at",
	]
	if verified_field:
		fields.append("last_verified_restore_at")
	policies = frappe.get_all("Backup Policy", fields=fields, order_by="name asc")
	last_good = last_successful_runs()
	failures = failures_since_success()
	errors = last_errors([policy.last_backup_log for policy in policies if policy.last_backup_log])
	facts = []
	for policy in policies:
		good = last_good.get(policy.name) or {}
		facts.append(
			health.PolicyFacts(
				name=policy.name,
				enabled=bool(policy.enabled),
				window=policy_window(policy, now),
				watching_since=get_datetime(policy.creation),
				last_success_at=get_datetime(policy.last_success_at) if policy.last_success_at else None,
				last_status=policy.last_status or "",
				last_error=errors.get(policy.last_backup_log, "")
				if policy.last_status in ("Failed", "Partial")
				else "",
				next_run_at=get_datetime(policy.next_run_at) if policy.next_run_at else None,
				last_verified_restore_at=get_datetime(policy.get("last_verified_restore_at"))
				if policy.get("last_verified_restore_at")
				else None,
				last_size_bytes=cint(good.get("total_size")) if good else None,
				last_duration_seconds=flt(good.get("duration")) if good else None,
				failures_since_success=failures.get(policy.name, 0),
			)
		)
	return facts


def policy_window(policy, now: datetime) -> timedelta:
	"""The policy's alert window: its alert setting, or two scheduled runs plus its start window and grace."""
	try:
		expression = schedule.cron_expression_for(
			policy.frequency, policy.cron_expression or "", get_time(policy.backup_time or "00:00:00")
		)
		first = schedule.next_run_after(expression, now)
		gap = schedule.next_run_after(expression, first) - first
	except InvalidPolicy:
		gap = timedelta(days=1)
	return health.alert_window(
		cint(policy.alert_after_hours), gap, timedelta(minutes=cint(policy.start_window_minutes))
	)


def last_successful_runs() -> dict[str, dict]:
	"""Size and duration of each policy's newest successful run."""
	rows = frappe.db.sql(
		"""
		SELECT log.policy, log.total_size, log.duration
		FROM `tabBackup Log` log
		JOIN (
			SELECT policy, MAX(finished_at) AS finished_at
			FROM `tabBackup Log` WHERE status = 'Success' GROUP BY policy
		) newest ON newest.policy = log.policy AND newest.finished_at = log.finished_at
		WHERE log.status = 'Success'
		""",
		as_dict=True,
	)
	return {row.policy: row for row in rows}


def failures_since_success() -> dict[str, int]:
	rows = frappe.db.sql(
		"""
		SELECT log.policy, COUNT(*)
		FROM `tabBackup Log` log
		JOIN `tabBackup Policy` policy ON policy.name = log.policy
		WHERE log.status = 'Failed'
			AND (policy.last_success_at IS NULL OR log.finished_at > policy.last_success_at)
		GROUP BY log.policy
		"""
	)
	return {policy: cint(count) for policy, count in rows}


def last_errors(log_names: list[str]) -> dict[str, str]:
	if not log_names:
		return {}
	return dict(
		frappe.get_all(
			"Backup Log",
			filters={"name": ("in", log_names)},
			fields=["name", "error_message"],
			as_list=True,
		)
	)
