import unittest
from datetime import datetime, timedelta

from backup_manager.core import schedule
from backup_manager.core.errors import InvalidPolicy

DAILY_AT_2 = "0 2 * * *"
NOW = datetime(2026, 11, 28, 12, 0)


class TestStartWindow(unittest.TestCase):
	def start(self, site, policy="Daily", window=120, after=NOW):
		return schedule.next_start_after(DAILY_AT_2, after, site=site, policy=policy, window_minutes=window)

	def test_same_site_and_policy_always_start_at_the_same_time(self):
		first = self.start("erp.example.com")
		self.assertEqual(first, self.start("erp.example.com"))
		# ... and at the same time of day on the following day.
		self.assertEqual(self.start("erp.example.com", after=first) - first, timedelta(days=1))

	def test_starts_fall_inside_the_window(self):
		for index in range(200):
			start = self.start(f"site-{index}.example.com")
			self.assertGreaterEqual(start, datetime(2026, 11, 29, 2, 0))
			self.assertLess(start, datetime(2026, 11, 29, 4, 0))

	def test_fifty_sites_spread_over_the_window(self):
		starts = {self.start(f"site-{index}.example.com").replace(second=0) for index in range(50)}
		# Fifty sites on a two-hour window land in many different minutes, not one.
		self.assertGreater(len(starts), 30)

	def test_other_policies_of_a_site_get_other_offsets(self):
		self.assertNotEqual(self.start("erp.example.com", "Daily"), self.start("erp.example.com", "Nightly"))

	def test_no_window_starts_on_time(self):
		self.assertEqual(self.start("erp.example.com", window=0), datetime(2026, 11, 29, 2, 0))

	def test_a_start_later_today_is_not_skipped(self):
		offset = schedule.start_offset_seconds("erp.example.com", "Daily", 120)
		today = datetime(2026, 11, 28, 2, 0) + timedelta(seconds=offset)
		# Saved just before today's start inside the window: it still runs today.
		self.assertEqual(self.start("erp.example.com", after=today - timedelta(seconds=1)), today)
		# At its start time exactly, the next start is tomorrow's.
		self.assertEqual(self.start("erp.example.com", after=today), today + timedelta(days=1))

	def test_window_must_be_shorter_than_the_gap_between_runs(self):
		schedule.validate_start_window(120, DAILY_AT_2, NOW)
		with self.assertRaises(InvalidPolicy) as raised:
			schedule.validate_start_window(60, "0 * * * *", NOW)
		self.assertEqual(raised.exception.field, "start_window_minutes")
		with self.assertRaises(InvalidPolicy):
			schedule.validate_start_window(-5, DAILY_AT_2, NOW)
