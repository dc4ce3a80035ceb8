import unittest
from datetime import datetime, time, timedelta

from backup_manager.core import schedule
from backup_manager.core.alerts import missed_backup_alert_due
from backup_manager.core.errors import InvalidPolicy

NOW = datetime(2026, 11, 28, 12, 34, 56)  # a Saturday


class TestSchedule(unittest.TestCase):
	def next_run(self, frequency, at=time(2, 30), cron="", after=NOW):
		return schedule.next_run_after(schedule.cron_expression_for(frequency, cron, at), after)

	def test_presets(self):
		self.assertEqual(self.next_run(schedule.HOURLY), datetime(2026, 11, 28, 13, 30))
		self.assertEqual(self.next_run(schedule.EVERY_6_HOURS), datetime(2026, 11, 28, 14, 30))
		self.assertEqual(self.next_run(schedule.DAILY), datetime(2026, 11, 29, 2, 30))
		self.assertEqual(self.next_run(schedule.WEEKLY), datetime(2026, 11, 29, 2, 30))  # Sunday
		self.assertEqual(self.next_run(schedule.MONTHLY), datetime(2026, 12, 1, 2, 30))

	def test_every_6_hours_is_anchored_on_the_backup_time(self):
		at = time(5, 15)
		runs = [NOW]
		for _ in range(4):
			runs.append(self.next_run(schedule.EVERY_6_HOURS, at=at, after=runs[-1]))
		self.assertEqual([run.hour for run in runs[1:]], [17, 23, 5, 11])

	def test_next_run_is_strictly_after(self):
		exact = datetime(2026, 11, 29, 2, 30)
		self.assertEqual(self.next_run(schedule.DAILY, after=exact), exact + timedelta(days=1))

	def test_cron(self):
		self.assertEqual(self.next_run(schedule.CRON, cron="*/15 * * * *"), datetime(2026, 11, 28, 12, 45))

	def test_bad_cron_names_the_field_and_gives_an_example(self):
		for expression in ("61 * * * *", "* * *", "every day", "* * * * * *"):
			with self.subTest(expression=expression), self.assertRaises(InvalidPolicy) as caught:
				schedule.cron_expression_for(schedule.CRON, expression)
			self.assertEqual(caught.exception.field, "cron_expression")
			self.assertIn("is not valid", str(caught.exception))
			self.assertIn("30 2 * * *", str(caught.exception))

	def test_missing_cron_is_refused(self):
		with self.assertRaises(InvalidPolicy) as caught:
			schedule.cron_expression_for(schedule.CRON, "  ")
		self.assertIn("required", str(caught.exception))

	def test_unknown_frequency(self):
		with self.assertRaises(InvalidPolicy) as caught:
			schedule.cron_expression_for("Fortnightly")
		self.assertEqual(caught.exception.field, "frequency")

	def test_is_due(self):
		self.assertTrue(schedule.is_due(NOW, NOW))
		self.assertFalse(schedule.is_due(NOW + timedelta(seconds=1), NOW))
		self.assertFalse(schedule.is_due(None, NOW))


class TestMissedBackupAlert(unittest.TestCase):
	created = datetime(2026, 11, 1)

	def due(self, now, last_success_at=None, last_alert_at=None, window_hours=24):
		return missed_backup_alert_due(
			window_hours=window_hours,
			last_success_at=last_success_at,
			watching_since=self.created,
			last_alert_at=last_alert_at,
			now=now,
		)

	def test_off_when_window_is_zero(self):
		self.assertFalse(self.due(NOW, window_hours=0))

	def test_within_window_of_last_success_no_alert(self):
		self.assertFalse(self.due(NOW, last_success_at=NOW - timedelta(hours=23)))

	def test_window_passed_alerts_once_then_waits_a_whole_window(self):
		success = NOW - timedelta(hours=30)
		self.assertTrue(self.due(NOW, last_success_at=success))
		# Ticks after the alert in the same window stay quiet.
		self.assertFalse(self.due(NOW + timedelta(minutes=1), last_success_at=success, last_alert_at=NOW))
		self.assertFalse(self.due(NOW + timedelta(hours=23), last_success_at=success, last_alert_at=NOW))
		# A whole window later, still no success: alert again.
		self.assertTrue(self.due(NOW + timedelta(hours=24), last_success_at=success, last_alert_at=NOW))

	def test_a_new_policy_gets_a_full_window(self):
		self.assertFalse(self.due(self.created + timedelta(hours=2)))
		self.assertTrue(self.due(self.created + timedelta(hours=25)))

	def test_an_alert_before_the_latest_success_does_not_silence_the_next_window(self):
		success = NOW - timedelta(hours=25)
		old_alert = success - timedelta(hours=1)
		self.assertTrue(self.due(NOW, last_success_at=success, last_alert_at=old_alert))
