"""When a policy runs: presets and cron expressions turned into the next run time.

Times are naive datetimes in the site's time zone, like frappe.utils.now_datetime();
`after` is always passed in, never read from the clock.
"""

from datetime import datetime, time

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
