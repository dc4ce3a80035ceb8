"""Which backups to keep: decide first, act later.

`evaluate` gives every backup a verdict with its reasons; nothing is deleted here. The
caller deletes the prune verdicts oldest first (`prune_order`). The rules:

- the newest good backup is always kept, whatever the counts say;
- a pinned backup ("Keep Forever") is always kept;
- a backup the caller marks protected (e.g. its offsite copy is not verified yet) is kept;
- keep_last keeps the N newest good backups;
- grandfather-father-son counts calendar buckets: keep_daily=7 keeps the newest good backup
  of each of the 7 most recent days that have one (likewise hour, ISO week, month, year);
- a backup that is not good (failed, incomplete) and older than the newest good backup is
  pruned; a newer one may still be running and is kept.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from backup_manager.core.errors import InvalidPolicy

PERIODS: tuple[tuple[str, str, Callable[[datetime], tuple]], ...] = (
	("keep_hourly", "hour", lambda moment: (moment.year, moment.month, moment.day, moment.hour)),
	("keep_daily", "day", lambda moment: (moment.year, moment.month, moment.day)),
	("keep_weekly", "week", lambda moment: tuple(moment.isocalendar())[:2]),
	("keep_monthly", "month", lambda moment: (moment.year, moment.month)),
	("keep_yearly", "year", lambda moment: (moment.year,)),
)

COUNT_LABELS = {
	"keep_last": "Keep Last",
	"keep_hourly": "Keep Hourly",
	"keep_daily": "Keep Daily",
	"keep_weekly": "Keep Weekly",
	"keep_monthly": "Keep Monthly",
	"keep_yearly": "Keep Yearly",
}


@dataclass
class RetentionRules:
	keep_last: int = 0
	keep_hourly: int = 0
	keep_daily: int = 0
	keep_weekly: int = 0
	keep_monthly: int = 0
	keep_yearly: int = 0

	def validate(self) -> None:
		"""Raise InvalidPolicy for a negative count or for rules that keep nothing."""
		for fieldname, label in COUNT_LABELS.items():
			if getattr(self, fieldname) < 0:
				raise InvalidPolicy(fieldname, f"{label} cannot be negative. Use 0 to turn it off.")
		if not any(getattr(self, fieldname) for fieldname in COUNT_LABELS):
			raise InvalidPolicy(
				"keep_last",
				"This retention keeps no backups. Set Keep Last, or at least one of Keep Hourly, "
				"Keep Daily, Keep Weekly, Keep Monthly or Keep Yearly, above 0.",
			)


@dataclass
class BackupRecord:
	id: str
	created_at: datetime
	good: bool
	pinned: bool = False
	protected_reason: str = ""


@dataclass
class Verdict:
	backup: BackupRecord
	keep: bool
	reasons: list[str] = field(default_factory=list)

	@property
	def reason(self) -> str:
		return "; ".join(self.reasons)


def evaluate(backups: Iterable[BackupRecord], rules: RetentionRules) -> list[Verdict]:
	"""Return one verdict per backup, newest first."""
	ordered = sorted(backups, key=lambda backup: (backup.created_at, backup.id), reverse=True)
	verdicts = {backup.id: Verdict(backup=backup, keep=False) for backup in ordered}
	good = [backup for backup in ordered if backup.good]

	def keep(backup: BackupRecord, reason: str) -> None:
		verdicts[backup.id].keep = True
		verdicts[backup.id].reasons.append(reason)

	if good:
		keep(good[0], "newest good backup")
	for backup in ordered:
		if backup.pinned:
			keep(backup, "pinned (Keep Forever)")
		if backup.protected_reason:
			keep(backup, backup.protected_reason)

	for position, backup in enumerate(good[: rules.keep_last], start=1):
		keep(backup, f"last {position} of {rules.keep_last}")

	for fieldname, period, bucket_of in PERIODS:
		limit = getattr(rules, fieldname)
		seen: list[tuple] = []
		for backup in good:
			if len(seen) >= limit:
				break
			bucket = bucket_of(backup.created_at)
			if bucket in seen:
				continue
			seen.append(bucket)
			keep(backup, f"newest of its {period} ({period} {len(seen)} of {limit})")

	newest_good_at = good[0].created_at if good else None
	for backup in ordered:
		verdict = verdicts[backup.id]
		if verdict.keep:
			continue
		if backup.good:
			verdict.reasons.append("outside every retention count")
		elif newest_good_at is None or backup.created_at > newest_good_at:
			verdict.keep = True
			verdict.reasons.append("not complete, but newer than every good backup (may still be running)")
		else:
			verdict.reasons.append("not a complete backup, and a newer good backup exists")
	return [verdicts[backup.id] for backup in ordered]


def prune_order(verdicts: Iterable[Verdict]) -> list[Verdict]:
	"""Return the prune verdicts oldest first, the order deletion must follow."""
	pruned = [verdict for verdict in verdicts if not verdict.keep]
	return sorted(pruned, key=lambda verdict: (verdict.backup.created_at, verdict.backup.id))
