"""When to raise the "no successful backup for N hours" alert: once per window, not once per tick."""

from datetime import datetime, timedelta


def missed_backup_alert_due(
	*,
	window_hours: int,
	last_success_at: datetime | None,
	watching_since: datetime,
	last_alert_at: datetime | None,
	now: datetime,
) -> bool:
	"""True when no backup succeeded within the window and no alert went out in this window yet.

	`watching_since` (the policy's creation) stands in for the last success of a policy that
	never succeeded, so a new policy gets a full window before its first alert.
	"""
	if window_hours <= 0:
		return False
	window = timedelta(hours=window_hours)
	reference = max(last_success_at or watching_since, watching_since)
	if now - reference < window:
		return False
	# One alert per window: after alerting, wait a whole window (or a new success) before the next.
	return last_alert_at is None or last_alert_at < reference or now - last_alert_at >= window
