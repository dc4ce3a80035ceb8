import threading
import unittest

from backup_manager.core import progress, slots


class FakeClock:
	def __init__(self):
		self.now = 100.0

	def __call__(self):
		return self.now


class TestProgressReporter(unittest.TestCase):
	def setUp(self):
		self.clock = FakeClock()
		self.events = []
		self.reporter = progress.ProgressReporter(self.events.append, clock=self.clock, min_interval=1.0)

	def test_phase_changes_are_always_emitted(self):
		self.reporter.start_phase(progress.DUMP, 1000)
		self.reporter.start_phase(progress.CHECKS, 1000)
		self.assertEqual([event.phase for event in self.events], [progress.DUMP, progress.CHECKS])

	def test_updates_are_throttled_to_one_per_interval(self):
		self.reporter.start_phase(progress.UPLOAD, 10_000_000, label="upload s3")
		for _ in range(1000):  # 1000 chunks within 0.5 s: no event beyond the phase start
			self.clock.now += 0.0005
			self.reporter.advance(1000)
		self.assertEqual(len(self.events), 1)
		self.clock.now += 0.6
		self.reporter.advance(1000)
		self.assertEqual(len(self.events), 2)
		self.assertEqual(self.events[-1].done_bytes, 1_001_000)

	def test_percent_and_eta_from_the_rate(self):
		self.reporter.start_phase(progress.UPLOAD, 1000)
		for _ in range(4):
			self.clock.now += 1.0
			self.reporter.advance(100)  # 100 bytes a second
		last = self.events[-1]
		self.assertEqual(last.done_bytes, 400)
		self.assertEqual(last.percent, 40.0)
		self.assertAlmostEqual(last.rate_bytes_per_second, 100.0, delta=0.5)
		self.assertAlmostEqual(last.eta_seconds, 6.0, delta=0.1)

	def test_unknown_total_has_no_percent_or_eta(self):
		self.reporter.start_phase(progress.DUMP)
		self.clock.now += 2
		self.reporter.set_done(5000)
		self.assertIsNone(self.events[-1].percent)
		self.assertIsNone(self.events[-1].eta_seconds)
		self.assertIn("4.9 KiB", progress.format_line(self.events[-1]))

	def test_percent_never_exceeds_100_when_the_estimate_was_low(self):
		self.reporter.start_phase(progress.DUMP, 100)
		self.clock.now += 2
		self.reporter.set_done(500)
		self.assertEqual(self.events[-1].percent, 100.0)
		self.assertEqual(self.events[-1].eta_seconds, 0.0)

	def test_advance_from_many_threads_loses_no_bytes(self):
		self.reporter.start_phase(progress.UPLOAD, 0)
		threads = [
			threading.Thread(target=lambda: [self.reporter.advance(1) for _ in range(5000)]) for _ in range(4)
		]
		for thread in threads:
			thread.start()
		for thread in threads:
			thread.join()
		self.assertEqual(self.reporter.snapshot().done_bytes, 20000)

	def test_work_counted_before_its_phase_counts_as_done_when_the_phase_starts(self):
		upload = self.reporter.counter("upload to s3")
		self.reporter.start_phase(progress.DUMP, 1000, label="dump")
		upload(300)  # the dump's upload started early: it does not move the dump's figures
		self.assertEqual(self.reporter.snapshot().done_bytes, 0)
		self.reporter.start_phase(progress.UPLOAD, 1000, label="upload to s3")
		self.assertEqual(self.events[-1].done_bytes, 300)
		self.clock.now += 2
		upload(200)
		self.assertEqual(self.events[-1].done_bytes, 500)
		self.assertEqual(self.events[-1].percent, 50.0)

	def test_line_shows_bar_bytes_and_eta(self):
		snapshot = progress.describe(
			phase="upload", label="upload s3", done=512, total=1024, rate=64.0, elapsed=8
		)
		line = progress.format_line(snapshot, width=10)
		self.assertIn("[#####.....]  50.0%", line)
		self.assertIn("512 B / 1.0 KiB", line)
		self.assertIn("ETA 0:08", line)


class TestSlots(unittest.TestCase):
	def test_default_is_one_run_per_two_cores(self):
		self.assertEqual(slots.default_max_concurrent_runs(2), 1)
		self.assertEqual(slots.default_max_concurrent_runs(8), 4)
		self.assertEqual(slots.default_max_concurrent_runs(1), 1)
		self.assertEqual(slots.default_max_concurrent_runs(None), 1)

	def test_configured_limit_wins_when_valid(self):
		self.assertEqual(slots.max_concurrent_runs(3, 2), 3)
		self.assertEqual(slots.max_concurrent_runs("2", 8), 2)
		self.assertEqual(slots.max_concurrent_runs(0, 8), 4)
		self.assertEqual(slots.max_concurrent_runs("many", 8), 4)
		self.assertEqual(slots.max_concurrent_runs(None, 4), 2)

	def test_waiting_runs_take_slots_in_queue_order(self):
		waiting = ["a", "b", "c"]
		self.assertTrue(slots.may_take_slot(waiting, "a", 1))
		self.assertFalse(slots.may_take_slot(waiting, "b", 1))
		self.assertTrue(slots.may_take_slot(waiting, "b", 2))
		self.assertFalse(slots.may_take_slot(waiting, "c", 2))
		self.assertFalse(slots.may_take_slot(waiting, "a", 0))
		self.assertFalse(slots.may_take_slot(waiting, "z", 5))
