"""Operations at scale in a real bench: live progress, the CLI's progress display, the health
endpoint behind monitor tokens (over real HTTP), the watchdog, and the start window."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import unittest
from datetime import timedelta

import frappe
from frappe.realtime import get_doc_room
from frappe.utils import add_to_date, get_sites, now_datetime
from frappe.utils.background_jobs import get_redis_connection_without_auth

from backup_manager import api, jobs
from backup_manager.core import schedule
from backup_manager.health import TOKEN_DOCTYPE
from backup_manager.tests.serve import BenchServer
from backup_manager.tests.test_offsite_run import S3_ENDPOINT, make_destination, s3_client
from backup_manager.tests.utils import (
	FrappeTestCase,
	bench_argv,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	sites_path,
)
from backup_manager.watchdog import count_long_queue_workers

TOKEN_LABEL = "_Test BM monitor"


def run_now(policy_name: str):
	return jobs.execute_run(jobs.start_run(policy=policy_name, trigger="CLI", enqueue=False))


def drain(pubsub, seconds: float = 1.0) -> list[dict]:
	messages = []
	deadline = time.monotonic() + seconds
	while time.monotonic() < deadline:
		message = pubsub.get_message(timeout=0.2)
		if message and message["type"] == "message":
			messages.append(json.loads(message["data"]))
	return messages


class TestLiveProgress(FrappeTestCase):
	def setUp(self):
		frappe.set_user("Administrator")
		ensure_outgoing_email_account()

	def tearDown(self):
		frappe.db.rollback()
		delete_test_policies()
		for name in frappe.get_all(
			"Backup Destination", filters={"name": ("like", "_Test BM Dest progress%")}, pluck="name"
		):
			frappe.delete_doc("Backup Destination", name, force=True, ignore_permissions=True)
		frappe.db.commit()

	@unittest.skipUnless(S3_ENDPOINT, "no S3 server: BM_TEST_S3_ENDPOINT is not set")
	def test_a_real_run_publishes_its_phases_and_bytes_to_the_log_room(self):
		# BM_TEST_S3_BUCKET: an existing bucket to use (a long-lived dev S3 server can run out of
		# room for new buckets); otherwise the test makes its own and removes it.
		bucket = (
			os.environ.get("BM_TEST_S3_BUCKET") or "bm-progress-" + frappe.generate_hash(length=8).lower()
		)
		own_bucket = not os.environ.get("BM_TEST_S3_BUCKET")
		if own_bucket:
			s3_client().create_bucket(Bucket=bucket)
		log = None
		try:
			destination = make_destination("progress", bucket)
			policy = make_policy("progress", with_files=0, destinations=[{"destination": destination.name}])
			pubsub = get_redis_connection_without_auth().pubsub()
			pubsub.subscribe("events")
			drain(pubsub, 0.3)
			log = run_now(policy.name)
			events = [
				event
				for event in drain(pubsub, 1.5)
				if event["event"] == "backup_manager_progress" and event["namespace"] == frappe.local.site
			]
			pubsub.close()
		finally:
			client = s3_client()
			prefix = f"offsite-tests/{frappe.local.site}/{log.backup_id}/" if log else "offsite-tests/-none-/"
			for item in client.list_objects_v2(Bucket=bucket, Prefix="" if own_bucket else prefix).get(
				"Contents", []
			):
				client.delete_object(Bucket=bucket, Key=item["Key"])
			if own_bucket:
				client.delete_bucket(Bucket=bucket)

		self.assertEqual(log.status, "Success", log.error_message)
		self.assertTrue(events, "no progress event was published")
		self.assertTrue(all(event["room"] == get_doc_room("Backup Log", log.name) for event in events))
		self.assertTrue(all(event["message"]["backup_log"] == log.name for event in events))
		phases = [event["message"]["phase"] for event in events]
		self.assertEqual(phases[0], "dump")
		self.assertIn("checks", phases)
		self.assertIn("upload", phases)
		self.assertEqual(phases[-1], "done")
		uploads = [event["message"] for event in events if event["message"]["phase"] == "upload"]
		self.assertIn(destination.name, uploads[0]["label"])
		self.assertEqual(uploads[0]["total_bytes"], log.total_size)
		# The last snapshot is kept for a form opened mid-run; it says the run is done.
		self.assertEqual(api.get_run_progress(log.name)["phase"], "done")

	def test_progress_events_are_throttled(self):
		policy = make_policy("progress-throttle", with_files=1)
		pubsub = get_redis_connection_without_auth().pubsub()
		pubsub.subscribe("events")
		drain(pubsub, 0.3)
		started = time.monotonic()
		log = run_now(policy.name)
		seconds = time.monotonic() - started
		events = [event for event in drain(pubsub, 1.0) if event["event"] == "backup_manager_progress"]
		pubsub.close()
		self.assertEqual(log.status, "Success", log.error_message)
		phase_changes = len({event["message"]["label"] for event in events}) + 1
		# At most one event a second plus one per phase change.
		self.assertLessEqual(len(events), seconds + phase_changes + 1, (len(events), seconds))


class TestCliProgress(FrappeTestCase):
	def tearDown(self):
		delete_test_policies()

	def test_cli_draws_a_bar_on_a_terminal(self):
		policy = make_policy("cli-tty", with_files=1)
		main, child = pty.openpty()
		process = subprocess.Popen(
			bench_argv("backup-manager", "run", "--policy", policy.name),
			cwd=sites_path(),
			stdin=child,
			stdout=child,
			stderr=child,
			close_fds=True,
		)
		os.close(child)
		output = b""
		deadline = time.monotonic() + 300
		while time.monotonic() < deadline:
			ready, _, _ = select.select([main], [], [], 1)
			if ready:
				try:
					chunk = os.read(main, 65536)
				except OSError:  # the child closed the terminal
					break
				if not chunk:
					break
				output += chunk
			elif process.poll() is not None:
				break
		process.wait(timeout=60)
		os.close(main)
		text = output.decode(errors="replace")
		self.assertEqual(process.returncode, 0, text)
		self.assertIn("\r", text)
		self.assertRegex(text, r"\[[#.]{30}\]\s+\d+\.\d%")
		self.assertNotIn("progress: ", text)

	def test_cli_prints_plain_lines_without_a_terminal(self):
		policy = make_policy("cli-lines", with_files=1)
		result = subprocess.run(
			bench_argv("backup-manager", "run", "--policy", policy.name),
			cwd=sites_path(),
			capture_output=True,
			text=True,
			timeout=300,
			check=False,
		)
		self.assertEqual(result.returncode, 0, result.stderr)
		# stdout stays the one result line scripts read; progress goes to stderr.
		self.assertRegex(result.stdout, r"^BL-\d+\tSuccess\t")
		self.assertNotIn("\r", result.stderr)
		lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
		self.assertGreaterEqual(len(lines), 3, result.stderr)
		self.assertTrue(any(line.startswith("progress: database dump") for line in lines), lines)
		self.assertTrue(any(line.startswith("progress: checks") for line in lines), lines)


class TestHealthEndpoint(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.server = BenchServer()

	@classmethod
	def tearDownClass(cls):
		cls.server.stop()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")
		self.scheduler_was = frappe.db.get_single_value("System Settings", "enable_scheduler")
		for name in frappe.get_all(TOKEN_DOCTYPE, filters={"label": TOKEN_LABEL}, pluck="name"):
			frappe.delete_doc(TOKEN_DOCTYPE, name, force=True, ignore_permissions=True)
		self.token_doc = frappe.get_doc({"doctype": TOKEN_DOCTYPE, "label": TOKEN_LABEL}).insert()
		frappe.db.commit()
		self.token = api.generate_monitor_token(self.token_doc.name)
		frappe.db.commit()

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.set_single_value("System Settings", "enable_scheduler", self.scheduler_was)
		frappe.delete_doc(TOKEN_DOCTYPE, self.token_doc.name, force=True, ignore_permissions=True)
		frappe.db.commit()
		delete_test_policies()

	def health(self, token=None, query=""):
		headers = {"X-Backup-Manager-Token": token} if token is not None else {}
		return self.server.request(f"/api/method/backup_manager.api.health{query}", headers)

	def make_overdue_policy(self):
		policy = make_policy("overdue secret name", enabled=1, alert_after_hours=1)
		frappe.db.set_value(
			"Backup Policy",
			policy.name,
			{
				"creation": add_to_date(now_datetime(), days=-3),
				"last_success_at": add_to_date(now_datetime(), days=-2),
			},
			update_modified=False,
		)
		frappe.db.commit()
		return policy

	def test_without_a_valid_token_the_answer_is_401_and_says_nothing(self):
		policy = self.make_overdue_policy()
		stored = frappe.db.get_value(TOKEN_DOCTYPE, self.token_doc.name, "token_hash")
		self.assertNotEqual(stored, self.token)
		for token in (None, "", "bmt_wrong", stored, self.token + "x"):
			for query in ("", "?format=prometheus"):
				status, body, _ = self.health(token, query)
				self.assertEqual(status, 401, (token, body))
				self.assertNotIn(policy.name, body)
				self.assertNotIn("overdue", body)
				self.assertNotIn("backup_manager_", body)
		# A revoked token stops working at once.
		frappe.db.set_value(TOKEN_DOCTYPE, self.token_doc.name, "enabled", 0)
		frappe.db.commit()
		self.assertEqual(self.health(self.token)[0], 401)

	def test_an_overdue_policy_makes_the_endpoint_503_and_names_it(self):
		policy = self.make_overdue_policy()
		status, body, headers = self.health(self.token)
		self.assertEqual(status, 503, body)
		self.assertIn("application/json", headers.get("Content-Type", ""))
		answer = json.loads(body)
		self.assertFalse(answer["healthy"])
		mine = next(row for row in answer["policies"] if row["policy"] == policy.name)
		self.assertFalse(mine["healthy"])
		self.assertTrue(mine["enabled"])
		self.assertGreater(mine["last_success_age_seconds"], 40 * 3600)
		for key in ("last_success_at", "next_run_at", "last_error", "last_verified_restore_at"):
			self.assertIn(key, mine)
		self.assertIsNotNone(frappe.db.get_value(TOKEN_DOCTYPE, self.token_doc.name, "last_used_at"))

	def test_healthy_site_answers_200(self):
		policy = make_policy("fresh", enabled=1, with_files=0)
		self.assertEqual(run_now(policy.name).status, "Success")
		frappe.db.set_single_value("System Settings", "enable_scheduler", 1)
		frappe.db.commit()
		worker = subprocess.Popen(
			bench_argv("worker", "--queue", "long"),
			cwd=sites_path(),
			stdout=subprocess.DEVNULL,
			stderr=subprocess.DEVNULL,
			start_new_session=True,
		)
		try:
			deadline = time.monotonic() + 60
			while count_long_queue_workers() == 0 and time.monotonic() < deadline:
				time.sleep(0.5)
			status, body, _ = self.health(self.token)
		finally:
			worker.terminate()
			worker.wait(timeout=30)
		answer = json.loads(body)
		self.assertEqual(status, 200, body)
		self.assertTrue(answer["healthy"])
		self.assertEqual(answer["problems"], [])

	def test_scheduler_disabled_shows_in_the_endpoint_and_the_banner(self):
		frappe.db.set_single_value("System Settings", "enable_scheduler", 0)
		make_policy("watched", enabled=1)
		frappe.db.commit()
		status, body, _ = self.health(self.token)
		self.assertEqual(status, 503, body)
		checks = [problem["check"] for problem in json.loads(body)["problems"]]
		self.assertIn("scheduler_disabled", checks)
		banner = api.get_watchdog_problems()
		problem = next(problem for problem in banner if problem["check"] == "scheduler_disabled")
		self.assertIn("enable-scheduler", problem["fix"])
		self.assertIn("scheduler_disabled", [problem["check"] for problem in api.get_overview()["problems"]])

		frappe.db.set_single_value("System Settings", "enable_scheduler", 1)
		frappe.db.commit()
		status, body, _ = self.health(self.token)
		self.assertNotIn("scheduler_disabled", [problem["check"] for problem in json.loads(body)["problems"]])

	def test_prometheus_text_is_valid_exposition_with_the_policy_figures(self):
		policy = make_policy("prometheus", enabled=1, with_files=0)
		log = run_now(policy.name)
		self.assertEqual(log.status, "Success", log.error_message)
		status, body, headers = self.health(self.token, "?format=prometheus")
		self.assertEqual(status, 200)
		self.assertTrue(headers.get("Content-Type", "").startswith("text/plain"))
		samples = parse_exposition(body)
		labels = (("policy", policy.name), ("site", frappe.local.site))
		size = samples[("backup_manager_last_backup_size_bytes", labels)]
		self.assertEqual(size, log.total_size)
		last_success = samples[("backup_manager_last_success_timestamp_seconds", labels)]
		self.assertAlmostEqual(last_success, time.time(), delta=600)
		self.assertEqual(samples[("backup_manager_policy_enabled", labels)], 1)
		self.assertIn(("backup_manager_up", (("site", frappe.local.site),)), samples)


METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE_LINE = re.compile(rf"^({METRIC})(?:\{{((?:{LABEL},?)*)\}})? (\S+)(?: -?\d+)?$")


def parse_exposition(text: str) -> dict:
	"""A strict parser of Prometheus text format 0.0.4: raises AssertionError on any invalid line."""
	if not text.endswith("\n"):
		raise AssertionError("exposition must end with a newline")
	types, samples, seen_names = {}, {}, []
	for line in text.splitlines():
		if line.startswith("# HELP ") or line.startswith("# TYPE "):
			parts = line.split(" ", 3)
			if len(parts) < 4 or not re.fullmatch(METRIC, parts[2]):
				raise AssertionError(f"bad comment line: {line!r}")
			if parts[1] == "TYPE":
				if parts[2] in types or parts[3] not in (
					"counter",
					"gauge",
					"histogram",
					"summary",
					"untyped",
				):
					raise AssertionError(f"bad or repeated TYPE: {line!r}")
				types[parts[2]] = parts[3]
			continue
		if line.startswith("#") or not line:
			raise AssertionError(f"unexpected line: {line!r}")
		match = SAMPLE_LINE.match(line)
		if not match:
			raise AssertionError(f"bad sample line: {line!r}")
		name = match.group(1)
		if name not in types:
			raise AssertionError(f"sample before its TYPE: {line!r}")
		if seen_names and seen_names[-1] != name and name in seen_names:
			raise AssertionError(f"samples of {name} are not grouped")
		seen_names.append(name)
		labels = tuple(
			sorted(
				(key, value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
				for key, value in re.findall(LABEL, match.group(2) or "")
			)
		)
		value = match.group(5)
		if value not in ("NaN", "+Inf", "-Inf"):
			float(value)
		if (name, labels) in samples:
			raise AssertionError(f"duplicate sample: {line!r}")
		samples[(name, labels)] = float(value)
	return samples


class TestStartWindow(FrappeTestCase):
	def tearDown(self):
		delete_test_policies()

	def test_next_run_is_spread_inside_the_window_and_stable(self):
		policy = make_policy(
			"window", enabled=1, frequency="Daily", backup_time="02:00:00", start_window_minutes=120
		)
		next_run = frappe.utils.get_datetime(policy.next_run_at)
		scheduled = next_run.replace(hour=2, minute=0, second=0, microsecond=0)
		self.assertGreaterEqual(next_run, scheduled)
		self.assertLess(next_run, scheduled + timedelta(hours=2))
		self.assertEqual(
			(next_run - scheduled).total_seconds(),
			schedule.start_offset_seconds(frappe.local.site, policy.name, 120),
		)
		# Saving again keeps the same start.
		policy.reload()
		policy.save()
		self.assertEqual(frappe.utils.get_datetime(policy.next_run_at), next_run)

	def test_window_longer_than_the_gap_is_refused_naming_the_field(self):
		with self.assertRaises(frappe.ValidationError) as raised:
			make_policy("window-bad", frequency="Hourly", start_window_minutes=90)
		self.assertIn("Start Window", str(raised.exception))


class TestBenchStatus(FrappeTestCase):
	def tearDown(self):
		delete_test_policies()

	def status(self, *args: str) -> subprocess.CompletedProcess:
		# No --site: the command reads every site of the bench.
		return subprocess.run(
			[sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "backup-manager", "status", *args],
			cwd=sites_path(),
			capture_output=True,
			text=True,
			timeout=600,
			check=False,
		)

	def test_status_lists_every_site_with_its_policies_without_a_site_option(self):
		policy = make_policy("bench status", enabled=1)
		result = self.status("--json")
		self.assertEqual(result.returncode, 0, result.stderr)
		report = json.loads(result.stdout[result.stdout.index("[") :])
		self.assertEqual({entry["site"] for entry in report}, set(get_sites(sites_path())))
		mine = next(entry for entry in report if entry["site"] == frappe.local.site)
		row = next(row for row in mine["policies"] if row["policy"] == policy.name)
		self.assertTrue(row["enabled"])
		self.assertIsNone(row["last_success_at"])
		self.assertTrue(row["next_run_at"])

		table = self.status()
		self.assertEqual(table.returncode, 0, table.stderr)
		line = next(line for line in table.stdout.splitlines() if policy.name in line)
		self.assertTrue(line.startswith(frappe.local.site), line)
		self.assertIn("never run", line)
		self.assertTrue(table.stdout.startswith("SITE"), table.stdout[:200])
