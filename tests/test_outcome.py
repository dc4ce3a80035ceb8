import unittest
from datetime import datetime, timedelta

from backup_manager.core import outcome
from backup_manager.core.offsite import FAILED, MANIFEST_KIND, SKIPPED, UPLOADED
from backup_manager.core.outcome import UploadRow

NOW = datetime(2026, 11, 28, 12, 0, 0)
ARTIFACTS = ("database", "site_config")


def rows_for(destination, artifact_status=UPLOADED, manifest_status=UPLOADED):
	rows = [UploadRow(destination, kind, artifact_status) for kind in ARTIFACTS]
	if manifest_status is not None:
		rows.append(UploadRow(destination, MANIFEST_KIND, manifest_status))
	return rows


class TestDestinationComplete(unittest.TestCase):
	def test_every_artifact_and_the_manifest_uploaded_is_complete(self):
		self.assertTrue(outcome.destination_complete(rows_for("s3"), "s3"))

	def test_artifacts_without_the_manifest_are_not_complete(self):
		self.assertFalse(outcome.destination_complete(rows_for("s3", manifest_status=None), "s3"))
		self.assertFalse(outcome.destination_complete(rows_for("s3", manifest_status=SKIPPED), "s3"))

	def test_a_failed_artifact_is_not_complete_even_with_a_manifest_row(self):
		rows = rows_for("s3")
		rows[0] = UploadRow("s3", "database", FAILED)
		self.assertFalse(outcome.destination_complete(rows, "s3"))

	def test_no_rows_for_the_destination_is_not_complete(self):
		self.assertFalse(outcome.destination_complete(rows_for("s3"), "b2"))
		self.assertFalse(outcome.destination_complete([], "s3"))

	def test_complete_destinations_keeps_order_and_drops_duplicates(self):
		rows = rows_for("b2") + rows_for("s3") + rows_for("wasabi", artifact_status=FAILED)
		self.assertEqual(outcome.complete_destinations(rows, ["s3", "wasabi", "b2", "s3"]), ["s3", "b2"])


class TestRunStatus(unittest.TestCase):
	def test_no_destination_is_success(self):
		self.assertEqual(outcome.run_status([], []), outcome.SUCCESS)

	def test_every_destination_complete_is_success(self):
		rows = rows_for("s3") + rows_for("b2")
		self.assertEqual(outcome.run_status(rows, ["s3", "b2"]), outcome.SUCCESS)

	def test_one_destination_complete_is_partial(self):
		rows = rows_for("s3") + rows_for("b2", artifact_status=FAILED, manifest_status=SKIPPED)
		self.assertEqual(outcome.run_status(rows, ["s3", "b2"]), outcome.PARTIAL)

	def test_some_artifact_uploaded_without_any_complete_destination_is_partial(self):
		rows = [
			UploadRow("s3", "database", UPLOADED),
			UploadRow("s3", "site_config", FAILED),
			UploadRow("s3", MANIFEST_KIND, SKIPPED),
		]
		self.assertEqual(outcome.run_status(rows, ["s3"]), outcome.PARTIAL)

	def test_nothing_uploaded_is_failed(self):
		rows = rows_for("s3", artifact_status=FAILED, manifest_status=SKIPPED)
		self.assertEqual(outcome.run_status(rows, ["s3"]), outcome.FAILED)

	def test_a_destination_never_tried_keeps_the_run_from_success(self):
		self.assertEqual(outcome.run_status(rows_for("s3"), ["s3", "b2"]), outcome.PARTIAL)

	def test_an_interrupted_run_is_never_success(self):
		self.assertEqual(outcome.interrupted_run_status(rows_for("s3")), outcome.PARTIAL)
		self.assertEqual(
			outcome.interrupted_run_status(rows_for("s3", artifact_status=FAILED, manifest_status=None)),
			outcome.FAILED,
		)
		self.assertEqual(outcome.interrupted_run_status([]), outcome.FAILED)


class TestRetrySchedule(unittest.TestCase):
	def test_backoff_doubles_from_15_minutes(self):
		delays = [outcome.next_upload_retry_at(attempts, NOW) - NOW for attempts in (1, 2, 3)]
		self.assertEqual(delays, [timedelta(minutes=15), timedelta(minutes=30), timedelta(minutes=60)])

	def test_no_retry_once_attempts_are_spent(self):
		self.assertIsNone(outcome.next_upload_retry_at(outcome.MAX_UPLOAD_ATTEMPTS, NOW))
		self.assertIsNone(outcome.next_upload_retry_at(outcome.MAX_UPLOAD_ATTEMPTS + 3, NOW))

	def test_no_attempt_yet_schedules_nothing(self):
		self.assertIsNone(outcome.next_upload_retry_at(0, NOW))


if __name__ == "__main__":
	unittest.main()
