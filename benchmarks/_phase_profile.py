"""Phase timings of a plain new_backup and of a Backup Manager policy run, in one process.

Run by backup_benchmark.py with the bench's Python from the bench's sites/ folder:

	../env/bin/python /path/to/benchmarks/_phase_profile.py --site S --policy P --rounds N

No CLI start-up is involved, so the difference between the two is the app's own work. Each
phase is timed by wrapping the function that does it; a phase whose function no longer exists
under that name is left out rather than failing. Prints one JSON object per run.
"""

import argparse
import functools
import glob
import json
import os
import time

import frappe


class PhaseTimer:
	"""Wraps functions so that each call adds its wall time to a named phase."""

	def __init__(self):
		self.phases: dict[str, float] = {}
		# Calls that run in parallel threads: the phase is the span from the first start to the last end.
		self.spans: dict[str, list[float]] = {}

	def wrap(self, owner, attribute: str, phase: str, span: bool = False) -> None:
		original = getattr(owner, attribute, None)
		if original is None:
			return

		@functools.wraps(original)
		def timed(*args, **kwargs):
			started = time.perf_counter()
			try:
				return original(*args, **kwargs)
			finally:
				ended = time.perf_counter()
				if span:
					first, last = self.spans.get(phase, [started, ended])
					self.spans[phase] = [min(first, started), max(last, ended)]
				else:
					self.phases[phase] = self.phases.get(phase, 0.0) + ended - started

		setattr(owner, attribute, timed)

	def reset(self) -> None:
		self.phases.clear()
		self.spans.clear()

	def collect(self) -> dict[str, float]:
		result = dict(self.phases)
		for phase, (first, last) in self.spans.items():
			result[phase] = last - first
		return result


def install_timers(timer: PhaseTimer) -> None:
	from frappe.utils import backups

	from backup_manager import jobs, local_backup, locks

	timer.wrap(
		backups.BackupGenerator,
		"take_dump",
		"frappe: database dump (mariadb-dump | gzip, or the policy's igzip or pigz)",
	)
	timer.wrap(backups.BackupGenerator, "backup_files", "frappe: file tars")
	timer.wrap(backups.BackupGenerator, "copy_site_config", "frappe: site config copy")
	timer.wrap(backups, "delete_temp_backups", "frappe: delete_temp_backups")
	timer.wrap(local_backup, "inspect_artifact", "app: check + sha256 artifacts (parallel span)", span=True)
	timer.wrap(local_backup, "get_installed_apps", "app: installed apps (git)")
	timer.wrap(jobs, "find_compressor", "app: find the compressor (its --version)")
	timer.wrap(jobs, "upload_log", "app: uploads after the local backup (wait + manifest)")
	timer.wrap(jobs, "record_local_backup", "app: record artifacts on the Backup Log")
	timer.wrap(jobs, "finish_log", "app: finish log + policy status")
	timer.wrap(jobs, "apply_retention_after_run", "app: local retention (delete previous backup)")
	timer.wrap(jobs, "notify_run", "app: notification")
	timer.wrap(locks, "acquire_policy_lock", "app: policy lock")
	timer.wrap(jobs, "start_run", "app: start_run (insert the Backup Log)")


def remove_plain_backups() -> None:
	for path in glob.glob(frappe.get_site_path("private", "backups", "*")):
		if os.path.isfile(path):
			os.remove(path)


def run_plain() -> str:
	from frappe.utils.backups import new_backup

	# What `bench backup --with-files` does (through scheduled_backup).
	new_backup(ignore_files=False, force=True)
	return "Success"


def run_app(policy: str) -> str:
	from backup_manager.jobs import execute_run, start_run

	return execute_run(start_run(policy=policy, trigger="CLI", enqueue=False)).status


def main() -> None:
	parser = argparse.ArgumentParser()
	parser.add_argument("--site", required=True)
	parser.add_argument("--policy", required=True)
	parser.add_argument("--rounds", type=int, default=2)
	arguments = parser.parse_args()

	frappe.init(site=arguments.site, sites_path=".")
	frappe.connect()
	try:
		timer = PhaseTimer()
		install_timers(timer)
		for round_number in range(arguments.rounds):
			sides = ("plain", "app") if round_number % 2 == 0 else ("app", "plain")
			for side in sides:
				timer.reset()
				if side == "plain":
					remove_plain_backups()
				# Flush the previous run's writes outside the timing, as the CLI rounds do.
				os.sync()
				time.sleep(1)
				started = time.perf_counter()
				status = run_plain() if side == "plain" else run_app(arguments.policy)
				total = time.perf_counter() - started
				print(
					json.dumps({"side": side, "status": status, "total": total, "phases": timer.collect()}),
					flush=True,
				)
	finally:
		remove_plain_backups()
		frappe.destroy()


if __name__ == "__main__":
	main()
