"""When a policy runs: presets and cron expressions turned into the next run time.

Times are naive datetimes in the site's time zone, like frappe.utils.now_datetime();
`after` is always passed in, never read from the clock.
"""

import hashlib
from datetime import datetime, time, timedelta

from croniter import croniter

from backup_manager.core.errors import InvalidPolicy

HOURLY = "Hourly"
EVERY_6_HOURS = "Every 6 Hours"
DAILY = "Daily"
WEEKLY = "Weekly"
MONTHLY = "Monthly"
CRON = "Cron"
FREQUENCIES = (HOURLY, EVERY_6_HOURS, DAILY, WEEKLY, MONTHLY, CRON)


def cron_expression_for(frequency: str, cron_expression: str = "", at: time | None = None) -> str:
	"""Return the cron expression a frequency stands for; presets run at the minute/hour of `at`."""
	at = at or time(0, 0)
	minute, hour = at.minute, at.hour
	if frequency == HOURLY:
		return f"{minute} * * * *"
	if frequency == EVERY_6_HOURS:
		return f"{minute} {hour % 6}-23/6 * * *"
	if frequency == DAILY:
		return f"{minute} {hour} * * *"
	if frequency == WEEKLY:
		return f"{minute} {hour} * * 0"
	if frequency == MONTHLY:
		return f"{minute} {hour} 1 * *"
	if frequency == CRON:
		validate_cron_expression(cron_expression)
		return cron_expression.strip()
	raise InvalidPolicy(
		"frequency", f"Frequency {frequency!r} is not one of {', '.join(FREQUENCIES)}. Pick one of them."
	)


def validate_cron_expression(expression: str) -> None:
	"""Raise InvalidPolicy unless `expression` is a five-field cron expression."""
	expression = (expression or "").strip()
	if not expression:
		raise InvalidPolicy(
			"cron_expression",
			"Cron Expression is required when Frequency is Cron, e.g. 30 2 * * * for 02:30 every day.",
		)
	if len(expression.split()) != 5 or not croniter.is_valid(expression):
		raise InvalidPolicy(
			"cron_expression",
			f"Cron Expression {expression!r} is not valid. Use five fields: minute hour day-of-month "
			"month day-of-week, e.g. 30 2 * * * for 02:30 every day.",
		)


def next_run_after(expression: str, after: datetime) -> datetime:
	"""Return the first time strictly after `after` that matches the cron expression."""
	return croniter(expression, after).get_next(datetime)


def is_due(next_run_at: datetime | None, now: datetime) -> bool:
	"""A policy is due once its next run time has come; one without a next run time is not."""
	return next_run_at is not None and next_run_at <= now


def start_offset_seconds(site: str, policy: str, window_minutes: int) -> int:
	"""A stable offset in [0, window) seconds for one policy of one site.

	The same site and policy always get the same offset, so a policy starts at the same time
	every day, while fifty sites with the same "Daily at 02:00" policy spread over the window.
	"""
	if window_minutes <= 0:
		return 0
	digest = hashlib.sha256(f"{site}\0{policy}".encode()).digest()
	return int.from_bytes(digest[:8], "big") % (window_minutes * 60)


def validate_start_window(window_minutes: int, expression: str, after: datetime) -> None:
	"""Raise InvalidPolicy unless the window is shorter than the gap between two scheduled runs."""
	if window_minutes < 0:
		raise InvalidPolicy(
			"start_window_minutes", "Start Window cannot be negative. Use 0 to start on time."
		)
	if window_minutes == 0:
		return
	first = next_run_after(expression, after)
	gap = next_run_after(expression, first) - first
	if timedelta(minutes=window_minutes) >= gap:
		raise InvalidPolicy(
			"start_window_minutes",
			f"Start Window ({window_minutes} minutes) must be shorter than the time between two runs "
			f"({int(gap.total_seconds() // 60)} minutes). Shorten it or run less often.",
		)


def next_start_after(
	expression: str, after: datetime, *, site: str, policy: str, window_minutes: int
) -> datetime:
	"""The first start strictly after `after`: a scheduled time plus this policy's offset in its window."""
	offset = timedelta(seconds=start_offset_seconds(site, policy, window_minutes))
	# start = scheduled + offset > after  <=>  scheduled > after - offset
	return next_run_after(expression, after - offset) + offset
