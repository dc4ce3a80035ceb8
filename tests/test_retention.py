import unittest
from datetime import datetime, timedelta

from backup_manager.core.errors import InvalidPolicy
from backup_manager.core.retention import (
	BackupRecord,
	RetentionRules,
	evaluate,
	prune_order,
)

NOW = datetime(2026, 11, 28, 12, 0, 0)


def backup(name, created_at, good=True, pinned=False, protected_reason=""):
	return BackupRecord(
		id=name, created_at=created_at, good=good, pinned=pinned, protected_reason=protected_reason
	)


def kept(verdicts):
	return sorted(verdict.backup.id for verdict in verdicts if verdict.keep)


def daily_backups(days, hour=2):
	"""One good backup a day at `hour`, newest first, named by date."""
	return [
		backup(
			(NOW - timedelta(days=offset)).strftime("%Y-%m-%d"),
			(NOW - timedelta(days=offset)).replace(hour=hour),
		)
		for offset in range(days)
	]


class TestRetentionRulesValidation(unittest.TestCase):
	def test_rules_that_keep_nothing_are_refused_naming_keep_last(self):
		with self.assertRaises(InvalidPolicy) as caught:
			RetentionRules().validate()
		self.assertEqual(caught.exception.field, "keep_last")
		self.assertIn("keeps no backups", str(caught.exception))

	def test_negative_count_is_refused_naming_the_field(self):
		with self.assertRaises(InvalidPolicy) as caught:
			RetentionRules(keep_last=3, keep_weekly=-1).validate()
		self.assertEqual(caught.exception.field, "keep_weekly")
		self.assertIn("Keep Weekly cannot be negative", str(caught.exception))

	def test_one_positive_count_is_enough(self):
		RetentionRules(keep_yearly=1).validate()


class TestEvaluate(unittest.TestCase):
	def test_keep_last_keeps_the_newest_n_good_backups(self):
		backups = daily_backups(5)
		verdicts = evaluate(backups, RetentionRules(keep_last=2))
		self.assertEqual(kept(verdicts), ["2026-11-27", "2026-11-28"])
		self.assertEqual([verdict.backup.id for verdict in verdicts], [b.id for b in backups])

	def test_newest_good_backup_is_kept_even_when_counts_would_drop_it(self):
		# Only a yearly count, and last year's backup: the newest one must survive anyway.
		backups = [backup("new", NOW - timedelta(hours=1)), backup("old", NOW - timedelta(days=400))]
		verdicts = evaluate(backups, RetentionRules(keep_yearly=1))
		self.assertEqual(kept(verdicts), ["new"])
		self.assertIn("newest good backup", verdicts[0].reason)

	def test_daily_keeps_the_newest_backup_of_each_calendar_day(self):
		backups = [
			backup("d28-late", datetime(2026, 11, 28, 11)),
			backup("d28-early", datetime(2026, 11, 28, 1)),
			backup("d27-late", datetime(2026, 11, 27, 23)),
			backup("d27-early", datetime(2026, 11, 27, 0, 30)),
			backup("d26", datetime(2026, 11, 26, 12)),
		]
		verdicts = evaluate(backups, RetentionRules(keep_daily=2))
		self.assertEqual(kept(verdicts), ["d27-late", "d28-late"])

	def test_weekly_counts_iso_weeks_not_sundays(self):
		# 2026-11-23 is a Monday: the 23rd-28th form one ISO week, the 16th-22nd the previous one.
		backups = [
			backup("wed-this-week", datetime(2026, 11, 25, 2)),
			backup("mon-this-week", datetime(2026, 11, 23, 2)),
			backup("tue-last-week", datetime(2026, 11, 17, 2)),
			backup("mon-two-weeks-ago", datetime(2026, 11, 9, 2)),
		]
		verdicts = evaluate(backups, RetentionRules(keep_weekly=2))
		self.assertEqual(kept(verdicts), ["tue-last-week", "wed-this-week"])

	def test_monthly_and_yearly_buckets(self):
		backups = [
			backup("2026-11", datetime(2026, 11, 2)),
			backup("2026-10b", datetime(2026, 10, 30)),
			backup("2026-10a", datetime(2026, 10, 1)),
			backup("2025-12", datetime(2025, 12, 31)),
			backup("2024-06", datetime(2024, 6, 1)),
		]
		self.assertEqual(kept(evaluate(backups, RetentionRules(keep_monthly=2))), ["2026-10b", "2026-11"])
		self.assertEqual(kept(evaluate(backups, RetentionRules(keep_yearly=2))), ["2025-12", "2026-11"])

	def test_hourly_buckets(self):
		backups = [
			backup(f"m{minute}", datetime(2026, 11, 28, 10 + minute // 60, minute % 60))
			for minute in (0, 30, 60, 90)
		]
		self.assertEqual(kept(evaluate(backups, RetentionRules(keep_hourly=2))), ["m30", "m90"])

	def test_rules_combine_as_a_union_with_every_reason_recorded(self):
		backups = daily_backups(40)
		verdicts = evaluate(backups, RetentionRules(keep_last=3, keep_weekly=2, keep_monthly=2))
		by_id = {verdict.backup.id: verdict for verdict in verdicts}
		# last 3: 28, 27, 26. Weekly: newest of this ISO week (28th) and last week (22nd).
		# Monthly: newest of November (28th) and of October (31st).
		self.assertEqual(
			kept(verdicts), ["2026-10-31", "2026-11-22", "2026-11-26", "2026-11-27", "2026-11-28"]
		)
		self.assertIn("last 1 of 3", by_id["2026-11-28"].reason)
		self.assertIn("week 1 of 2", by_id["2026-11-28"].reason)
		self.assertIn("month 2 of 2", by_id["2026-10-31"].reason)
		self.assertEqual(by_id["2026-11-20"].reason, "outside every retention count")

	def test_pinned_and_protected_backups_are_kept(self):
		backups = daily_backups(5)
		backups[3].pinned = True
		backups[4].protected_reason = "offsite copy not verified yet"
		verdicts = evaluate(backups, RetentionRules(keep_last=1))
		self.assertEqual(kept(verdicts), sorted([backups[0].id, backups[3].id, backups[4].id]))
		self.assertIn("pinned", verdicts[3].reason)
		self.assertIn("offsite copy not verified yet", verdicts[4].reason)

	def test_failed_backups_never_count_and_older_ones_are_pruned(self):
		backups = [
			backup("failed-newest", NOW, good=False),
			backup("good", NOW - timedelta(hours=1)),
			backup("failed-old", NOW - timedelta(hours=2), good=False),
			backup("good-old", NOW - timedelta(hours=3)),
		]
		verdicts = evaluate(backups, RetentionRules(keep_last=2))
		self.assertEqual(kept(verdicts), ["failed-newest", "good", "good-old"])
		by_id = {verdict.backup.id: verdict for verdict in verdicts}
		self.assertIn("may still be running", by_id["failed-newest"].reason)
		self.assertIn("not a complete backup", by_id["failed-old"].reason)

	def test_no_good_backup_means_nothing_incomplete_is_pruned(self):
		backups = [backup("a", NOW, good=False), backup("b", NOW - timedelta(days=1), good=False)]
		self.assertEqual(kept(evaluate(backups, RetentionRules(keep_last=1))), ["a", "b"])

	def test_prune_order_is_oldest_first(self):
		backups = daily_backups(6)
		order = [verdict.backup.id for verdict in prune_order(evaluate(backups, RetentionRules(keep_last=2)))]
		self.assertEqual(order, ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26"])

	def test_empty_list(self):
		self.assertEqual(evaluate([], RetentionRules(keep_last=1)), [])
