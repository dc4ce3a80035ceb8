"""Many sites per bench: six sites back up at once with a limit of two concurrent runs.

Creating six sites is slow, so they are made once (bm-conc-1..6.localhost) and kept for
later runs; each run migrates them only when the app's doctypes changed, and removes the
policies and backups it made on them.
"""

import hashlib
import json
import os
import subprocess
import sys

import frappe

from backup_manager.health import to_epoch
from backup_manager.tests.utils import FrappeTestCase, delete_policy, make_policy, sites_path

SITES = [f"bm-conc-{index}.localhost" for index in range(1, 7)]
LIMIT = 2
POLICY = "_Test BM conc"


def site_argv(site: str, *args: str) -> list[str]:
	return [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site, *args]


def bench(*args: str, site: str | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
	argv = (
		site_argv(site, *args)
		if site
		else [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", *args]
	)
	result = subprocess.run(
		argv, cwd=sites_path(), capture_output=True, text=True, timeout=timeout, check=False
	)
	if result.returncode != 0:
		raise AssertionError(f"{' '.join(args)} on {site} failed:\n{result.stdout}\n{result.stderr}")
	return result


def schema_fingerprint() -> str:
	"""A hash of the app's doctype definitions: the kept sites are migrated only when it changes."""
	digest = hashlib.sha256()
	root = frappe.get_app_path("backup_manager")
	for folder, _, files in sorted(os.walk(root)):
		for name in sorted(files):
			if name.endswith(".json") and "/doctype/" in folder:
				with open(os.path.join(folder, name), "rb") as handle:
					digest.update(handle.read())
	return digest.hexdigest()[:16]


def ensure_site(site: str, fingerprint: str):
	config_path = os.path.join(sites_path(), site, "site_config.json")
	if not os.path.exists(config_path):
		password = frappe.generate_hash(length=16)
		bench("new-site", site, "--admin-password", password, "--install-app", "backup_manager", timeout=1800)
		bench("set-config", "backup_manager_test_schema", fingerprint, site=site)
	with open(config_path) as handle:
		config = json.load(handle)
	if config.get("backup_manager_test_schema") != fingerprint:
		bench("migrate", "--skip-search-index", site=site, timeout=1800)
		bench("set-config", "backup_manager_test_schema", fingerprint, site=site)
	if config.get("backup_manager_max_concurrent_runs") != LIMIT:
		bench("set-config", "-p", "backup_manager_max_concurrent_runs", str(LIMIT), site=site)


def prepare_site():
	"""Run on a kept site: a fresh tiny policy (database only)."""
	make_policy("conc", with_files=0, keep_last=1)


def clean_site():
	delete_policy(POLICY)


def report_runs() -> None:
	"""Print this site's runs of the test policy with their start and end as Unix time."""
	runs = frappe.get_all(
		"Backup Log",
		filters={"policy": POLICY},
		fields=["name", "status", "started_at", "finished_at", "error_message"],
	)
	print(
		"BM-RUNS "
		+ json.dumps(
			[
				{
					"site": frappe.local.site,
					"name": run.name,
					"status": run.status,
					"start": to_epoch(run.started_at) if run.started_at else None,
					"end": to_epoch(run.finished_at) if run.finished_at else None,
					"error": run.error_message,
				}
				for run in runs
			]
		)
	)


def most_at_once(intervals: list[tuple[float, float]]) -> int:
	"""The largest number of intervals that overlap at one moment."""
	events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
	current = peak = 0
	for _, change in events:  # an end sorts before a start at the same instant
		current += change
		peak = max(peak, current)
	return peak


class TestConcurrentRunsAcrossSites(FrappeTestCase):
	def test_six_sites_with_a_limit_of_two_all_succeed_and_never_more_than_two_run(self):
		fingerprint = schema_fingerprint()
		for site in SITES:
			ensure_site(site, fingerprint)
			bench("execute", "backup_manager.tests.test_concurrency.prepare_site", site=site)
		try:
			processes = [
				subprocess.Popen(
					site_argv(site, "backup-manager", "run", "--policy", POLICY),
					cwd=sites_path(),
					stdout=subprocess.PIPE,
					stderr=subprocess.STDOUT,
					text=True,
				)
				for site in SITES
			]
			outputs = [process.communicate(timeout=1200)[0] for process in processes]
			for site, process, output in zip(SITES, processes, outputs, strict=True):
				self.assertEqual(process.returncode, 0, f"{site}:\n{output}")
			runs = []
			for site in SITES:
				result = bench("execute", "backup_manager.tests.test_concurrency.report_runs", site=site)
				line = next(line for line in result.stdout.splitlines() if line.startswith("BM-RUNS "))
				runs += json.loads(line[len("BM-RUNS ") :])
		finally:
			for site in SITES:
				bench("execute", "backup_manager.tests.test_concurrency.clean_site", site=site)

		self.assertEqual(len(runs), len(SITES), runs)
		self.assertTrue(all(run["status"] == "Success" for run in runs), runs)
		peak = most_at_once([(run["start"], run["end"]) for run in runs])
		self.assertEqual(peak, LIMIT, runs)

	def test_overlap_counting(self):
		self.assertEqual(most_at_once([(0, 2), (1, 3), (2, 4)]), 2)
		self.assertEqual(most_at_once([(0, 10), (1, 2), (3, 4), (5, 6)]), 2)
		self.assertEqual(most_at_once([(0, 1), (1, 2)]), 1)
