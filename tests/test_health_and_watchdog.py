import re
import unittest
from datetime import datetime, timedelta, timezone

from backup_manager.core import health, watchdog

NOW = datetime(2026, 12, 3, 12, 0)
DAY = timedelta(days=1)


def facts(**values):
	defaults = {
		"name": "Daily",
		"enabled": True,
		"window": health.alert_window(0, DAY, timedelta(0)),
		"watching_since": NOW - 10 * DAY,
	}
	return health.PolicyFacts(**{**defaults, **values})


def site_facts(**values):
	defaults = {
		"scheduler_inactive": False,
		"scheduler_reason": "",
		"long_queue_workers": 1,
		"oldest_queued_minutes": None,
		"queued_runs": 0,
		"backup_folder": "/srv/backups",
		"free_bytes": 100 * 2**30,
		"last_backup_bytes": 2**30,
	}
	return watchdog.SiteFacts(**{**defaults, **values})


def epoch(value):
	return value.replace(tzinfo=timezone.utc).timestamp()


class TestTokens(unittest.TestCase):
	def test_token_matches_only_its_hash(self):
		token = health.generate_token()
		stored = health.hash_token(token)
		self.assertNotIn(token, stored)
		self.assertTrue(health.token_matches(token, stored))
		self.assertFalse(health.token_matches(token + "x", stored))
		self.assertFalse(health.token_matches("", stored))
		self.assertFalse(health.token_matches(token, ""))


class TestPolicyHealth(unittest.TestCase):
	def test_window_is_the_alert_setting_or_two_runs_plus_grace(self):
		self.assertEqual(health.alert_window(6, DAY, timedelta(0)), timedelta(hours=6))
		self.assertEqual(health.alert_window(0, DAY, timedelta(hours=2)), timedelta(hours=51))

	def test_recent_success_is_healthy_and_old_success_is_not(self):
		self.assertTrue(health.evaluate_policy(facts(last_success_at=NOW - DAY), NOW).healthy)
		stale = health.evaluate_policy(facts(last_success_at=NOW - 3 * DAY), NOW)
		self.assertFalse(stale.healthy)
		self.assertEqual(stale.age_seconds, 3 * 86400)

	def test_policy_that_never_succeeded_gets_one_window(self):
		self.assertTrue(health.evaluate_policy(facts(watching_since=NOW - timedelta(hours=2)), NOW).healthy)
		self.assertFalse(health.evaluate_policy(facts(), NOW).healthy)

	def test_disabled_policy_never_makes_the_site_unhealthy(self):
		site = health.evaluate_site("s", [facts(enabled=False)], [], NOW)
		self.assertEqual(site.http_status, 200)

	def test_site_is_503_when_a_policy_is_overdue_or_the_watchdog_barks(self):
		good = facts(last_success_at=NOW - DAY)
		self.assertEqual(health.evaluate_site("s", [good], [], NOW).http_status, 200)
		self.assertEqual(health.evaluate_site("s", [good, facts(name="Old")], [], NOW).http_status, 503)
		problem = watchdog.Problem(watchdog.SCHEDULER_DISABLED, "off", "turn on")
		self.assertEqual(health.evaluate_site("s", [good], [problem], NOW).http_status, 503)


SAMPLE = re.compile(
	r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\} (\S+)$'
)


class TestPrometheusText(unittest.TestCase):
	def test_every_line_is_valid_exposition_and_values_are_right(self):
		policy = facts(
			name='Nightly "main"\\x',
			last_success_at=NOW - DAY,
			last_size_bytes=1234,
			last_duration_seconds=12.5,
			failures_since_success=2,
		)
		site = health.evaluate_site("erp.example.com", [policy], [], NOW)
		text = health.render_prometheus(site, epoch)
		self.assertTrue(text.endswith("\n"))
		typed = set()
		values = {}
		for line in text.splitlines():
			if line.startswith("# TYPE "):
				name, kind = line.split()[2:]
				self.assertEqual(kind, "gauge")
				typed.add(name)
				continue
			if line.startswith("# HELP "):
				continue
			match = SAMPLE.match(line)
			self.assertIsNotNone(match, line)
			self.assertIn(match.group(1), typed, "sample before its TYPE line")
			float(match.group(3))
			values[(match.group(1), match.group(2))] = float(match.group(3))
		labels = 'site="erp.example.com",policy="Nightly \\"main\\"\\\\x",'
		self.assertEqual(
			values[("backup_manager_last_success_timestamp_seconds", labels.rstrip(","))],
			epoch(NOW - DAY),
		)
		self.assertEqual(values[("backup_manager_last_backup_size_bytes", labels.rstrip(","))], 1234)
		self.assertEqual(values[("backup_manager_failures_since_success", labels.rstrip(","))], 2)
		self.assertEqual(values[("backup_manager_healthy", 'site="erp.example.com"')], 1)


class TestWatchdog(unittest.TestCase):
	def checks(self, **values):
		return [problem.check for problem in watchdog.find_problems(site_facts(**values))]

	def test_healthy_site_has_no_problem(self):
		self.assertEqual(self.checks(), [])

	def test_each_condition_is_found_with_a_fix(self):
		self.assertEqual(
			self.checks(scheduler_inactive=True, scheduler_reason="disabled"), ["scheduler_disabled"]
		)
		self.assertEqual(self.checks(long_queue_workers=0), ["no_long_worker"])
		self.assertEqual(self.checks(oldest_queued_minutes=20, queued_runs=2), ["runs_stuck_in_queue"])
		self.assertEqual(self.checks(oldest_queued_minutes=5, queued_runs=2), [])
		for problem in watchdog.find_problems(site_facts(scheduler_inactive=True, long_queue_workers=0)):
			self.assertTrue(problem.fix)

	def test_disk_is_nearly_full_below_one_and_a_half_backups(self):
		self.assertEqual(self.checks(free_bytes=int(1.4 * 2**30)), ["disk_nearly_full"])
		self.assertEqual(self.checks(free_bytes=int(1.6 * 2**30)), [])
		self.assertEqual(self.checks(free_bytes=10, last_backup_bytes=None), [])

	def test_scheduler_off_matters_only_with_an_enabled_policy(self):
		self.assertEqual(self.checks(scheduler_inactive=True, has_enabled_policy=False), [])
