"""Restore drill rules: due times, source choice, refusals and recorded-vs-found comparisons."""

import unittest
from datetime import datetime, timedelta

from backup_manager.core import drill
from backup_manager.core.manifest import Artifact, InstalledApp, Manifest

NOW = datetime(2026, 12, 3, 4, 0)


def make_manifest(**values) -> Manifest:
	return Manifest(
		backup_id="b1",
		site="site.localhost",
		created_at="2026-12-03T03:00:00",
		frappe_version="15.44.2",
		apps=[InstalledApp("frappe", "15.44.2"), InstalledApp("backup_manager", "0.1.0")],
		artifacts=[Artifact("database", "db.sql.gz", 1000, "0" * 64, row_counts={"tabToDo": 3})],
		**values,
	)


class TestDrillDue(unittest.TestCase):
	def due(self, mode, last=None, drilled=False, has_backup=True):
		return drill.drill_due(
			mode=mode, last_drill_at=last, newest_backup_drilled=drilled, has_backup=has_backup, now=NOW
		)

	def test_off_and_no_backup_are_never_due(self):
		self.assertFalse(self.due("Off"))
		self.assertFalse(self.due("Daily", has_backup=False))

	def test_after_every_backup_drills_each_new_backup_once(self):
		self.assertTrue(self.due("After every backup"))
		self.assertFalse(self.due("After every backup", last=NOW, drilled=True))

	def test_daily_and_weekly_wait_their_interval(self):
		self.assertTrue(self.due("Daily"))
		self.assertFalse(self.due("Daily", last=NOW - timedelta(hours=23)))
		self.assertTrue(self.due("Daily", last=NOW - timedelta(hours=24)))
		self.assertFalse(self.due("Weekly", last=NOW - timedelta(days=6)))
		self.assertTrue(self.due("Weekly", last=NOW - timedelta(days=7)))


class TestDrillSource(unittest.TestCase):
	def test_preferred_complete_destination_wins(self):
		self.assertEqual(
			drill.choose_source(preferred="s3", complete_destinations=["b2", "s3"], has_local_files=True),
			"s3",
		)

	def test_local_files_stand_in_for_an_incomplete_preferred_destination(self):
		self.assertIsNone(drill.choose_source(preferred="s3", complete_destinations=[], has_local_files=True))

	def test_any_complete_destination_when_no_local_files(self):
		self.assertEqual(
			drill.choose_source(preferred="s3", complete_destinations=["b2"], has_local_files=False), "b2"
		)
		with self.assertRaises(ValueError):
			drill.choose_source(preferred=None, complete_destinations=[], has_local_files=False)


class TestDrillRefusal(unittest.TestCase):
	def test_low_disk_is_refused_naming_the_figures(self):
		manifest = make_manifest()
		apps = {"frappe": "15.44.2", "backup_manager": "0.1.0"}
		self.assertEqual(
			drill.refusal_reason(manifest=manifest, free_bytes=2500, bench_apps=apps, partial=False), ""
		)
		reason = drill.refusal_reason(manifest=manifest, free_bytes=2499, bench_apps=apps, partial=False)
		self.assertIn("Not enough free disk", reason)
		self.assertIn("2500 needed", reason)

	def test_missing_app_and_partial_backup_are_refused(self):
		manifest = make_manifest()
		reason = drill.refusal_reason(
			manifest=manifest, free_bytes=10**9, bench_apps={"frappe": "15"}, partial=False
		)
		self.assertIn("backup_manager", reason)
		reason = drill.refusal_reason(
			manifest=manifest, free_bytes=10**9, bench_apps={"frappe": "", "backup_manager": ""}, partial=True
		)
		self.assertIn("partial backup", reason)


class TestDrillComparisons(unittest.TestCase):
	def test_row_counts_name_the_table_that_differs(self):
		recorded = {"tabToDo": 3, "tabNote": 0, "tabUser": 2}
		self.assertEqual(drill.compare_row_counts(recorded, dict(recorded)).result, "Passed")
		result = drill.compare_row_counts(recorded, {"tabToDo": 4, "tabUser": 2})
		self.assertEqual(result.result, "Failed")
		self.assertIn("tabToDo: 4 rows, recorded 3", result.detail)
		self.assertIn("tabNote: missing", result.detail)
		self.assertNotIn("tabUser", result.detail)
		self.assertEqual(drill.compare_row_counts(None, {}).result, "Skipped")

	def test_many_differences_are_summarised(self):
		recorded = {f"tab{index:02}": 1 for index in range(15)}
		result = drill.compare_row_counts(recorded, {})
		self.assertIn("and 5 more table(s)", result.detail)

	def test_files_compare_count_bytes_and_samples(self):
		artifact = Artifact(
			"public_files",
			"f.tar",
			10,
			"0" * 64,
			file_count=2,
			file_bytes=7,
			file_samples={"a": "x", "b/c": "y"},
		)
		same = drill.FoundFiles(2, 7, {"a": "x", "b/c": "y"})
		self.assertEqual(drill.compare_files("Public files", artifact, same).result, "Passed")
		result = drill.compare_files(
			"Public files", artifact, drill.FoundFiles(2, 8, {"a": "z", "b/c": None})
		)
		self.assertEqual(result.result, "Failed")
		self.assertIn("8 bytes, recorded 7", result.detail)
		self.assertIn("a: sha256 differs", result.detail)
		self.assertIn("b/c: missing", result.detail)
		fewer = drill.compare_files("Public files", artifact, drill.FoundFiles(1, 7, {"a": "x", "b/c": "y"}))
		self.assertEqual(fewer.result, "Failed")
		self.assertIn("1 files, recorded 2", fewer.detail)
		old = Artifact("public_files", "f.tar", 10, "0" * 64)
		self.assertEqual(drill.compare_files("Public files", old, same).result, "Skipped")
		self.assertEqual(drill.compare_files("Public files", None, same).result, "Skipped")

	def test_apps_must_match_names_and_versions(self):
		manifest = make_manifest()
		found = {"frappe": "15.44.2", "backup_manager": "0.1.0"}
		self.assertEqual(drill.compare_apps(manifest, found).result, "Passed")
		result = drill.compare_apps(manifest, {"frappe": "15.50.0", "erpnext": "15.0.0"})
		self.assertEqual(result.result, "Failed")
		self.assertIn("frappe: 15.50.0, backup has 15.44.2", result.detail)
		self.assertIn("backup_manager: not installed", result.detail)
		self.assertIn("erpnext: installed but not in the backup", result.detail)

	def test_drill_site_names_are_recognised_and_nothing_else(self):
		name = drill.make_drill_site_name()
		self.assertTrue(drill.is_drill_site_name(name))
		self.assertNotEqual(name, drill.make_drill_site_name())
		for other in ("site.localhost", "bm-drill-xyz.invalid", "bm-drill-0123456789ab.invalid/..", ""):
			self.assertFalse(drill.is_drill_site_name(other), other)

	def test_overall_status_fails_on_any_failed_check(self):
		checks = [drill.CheckResult("A", "Passed"), drill.CheckResult("B", "Skipped")]
		self.assertEqual(drill.overall_status(checks), "Passed")
		checks.append(drill.CheckResult("C", "Failed", "why"))
		self.assertEqual(drill.overall_status(checks), "Failed")
		self.assertEqual(drill.first_failure(checks).check, "C")

	def test_old_manifest_without_drill_fields_still_reads(self):
		manifest = Manifest.from_json(
			'{"backup_id": "b", "site": "s", "created_at": "", "frappe_version": "15", '
			'"artifacts": [{"kind": "database", "file_name": "d", "size": 1, "sha256": "0", "encrypted": false}]}'
		)
		self.assertIsNone(manifest.artifact("database").row_counts)
		again = Manifest.from_json(make_manifest().to_json())
		self.assertEqual(again.artifact("database").row_counts, {"tabToDo": 3})
