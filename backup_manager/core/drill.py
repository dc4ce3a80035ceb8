"""Restore drills: when one is due, where it restores from, and what recorded vs found means.

A drill restores a backup into a throwaway site and compares what the backup recorded when it
was taken (manifest: row counts, file statistics, apps) with what the restored site holds.
Every rule here is plain Python; the glue (backup_manager/drills.py) gathers the figures.
"""

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backup_manager.core.manifest import Manifest

MODE_OFF = "Off"
MODE_AFTER_EVERY_BACKUP = "After every backup"
MODE_DAILY = "Daily"
MODE_WEEKLY = "Weekly"
MODES = (MODE_OFF, MODE_AFTER_EVERY_BACKUP, MODE_DAILY, MODE_WEEKLY)
MODE_INTERVALS = {MODE_DAILY: timedelta(days=1), MODE_WEEKLY: timedelta(days=7)}

PASSED = "Passed"
FAILED = "Failed"
SKIPPED = "Skipped"

# RFC 2606 reserves .invalid: no real site is ever named like this, and the random part is
# lowercase hex, so the name is also a valid site folder and database-safe.
DRILL_SITE_PATTERN = re.compile(r"bm-drill-[0-9a-f]{12}\.invalid")
# Free disk a drill needs, as a multiple of the backup's size: downloaded copy, decrypted copy,
# the restored database and files.
DISK_FACTOR = 2.5
# Mismatching tables or files named in a check's detail; the rest are counted.
MAX_NAMED = 10


def make_drill_site_name() -> str:
	"""A fresh throwaway site name no user would choose."""
	return f"bm-drill-{secrets.token_hex(6)}.invalid"


def is_drill_site_name(name: str) -> bool:
	"""True only for names make_drill_site_name makes: the only sites a drill ever drops."""
	return bool(DRILL_SITE_PATTERN.fullmatch(name or ""))


@dataclass
class CheckResult:
	check: str
	result: str
	detail: str = ""

	@property
	def failed(self) -> bool:
		return self.result == FAILED


@dataclass
class FoundFiles:
	"""What a restored files folder holds: count, total bytes and sha256 of the sampled paths."""

	count: int
	total_bytes: int
	samples: dict[str, str | None] = field(default_factory=dict)


def drill_due(
	*, mode: str, last_drill_at: datetime | None, newest_backup_drilled: bool, has_backup: bool, now: datetime
) -> bool:
	"""True when a policy's newest successful backup should be drilled now."""
	if mode == MODE_OFF or mode not in MODES or not has_backup:
		return False
	if mode == MODE_AFTER_EVERY_BACKUP:
		return not newest_backup_drilled
	return last_drill_at is None or now - last_drill_at >= MODE_INTERVALS[mode]


def choose_source(
	*, preferred: str | None, complete_destinations: list[str], has_local_files: bool
) -> str | None:
	"""The destination to drill from, or None for the local files.

	The preferred destination (the policy's drill destination, else its first one) is the copy
	that matters; local files stand in when it has no complete copy, then any complete destination.
	"""
	if preferred and preferred in complete_destinations:
		return preferred
	if has_local_files:
		return None
	if complete_destinations:
		return complete_destinations[0]
	raise ValueError(
		"This backup has neither local files nor a complete offsite copy: there is nothing to restore."
	)


def refusal_reason(*, manifest: Manifest, free_bytes: int, bench_apps: dict[str, str], partial: bool) -> str:
	"""Why a drill of this backup must not start on this bench, or "" when it may."""
	if partial:
		return (
			"This is a partial backup: bench partial-restore only restores into an existing site, so it "
			"cannot be drilled into a throwaway site. Drill a full backup of this policy instead."
		)
	missing = [app.name for app in manifest.apps if app.name not in bench_apps]
	if missing:
		return (
			f"This bench lacks the app(s) {', '.join(missing)} that the backup needs: get them into the "
			"bench (bench get-app) before drilling it."
		)
	needed = int(manifest.total_size * DISK_FACTOR)
	if free_bytes < needed:
		return (
			f"Not enough free disk for a drill: {free_bytes} bytes free, {needed} needed "
			f"({DISK_FACTOR}x the backup's {manifest.total_size} bytes). Free some space and run it again."
		)
	return ""


def compare_row_counts(recorded: dict[str, int] | None, found: dict[str, int]) -> CheckResult:
	"""Every table the dump held has exactly the recorded number of rows in the restored database."""
	name = "Row counts"
	if recorded is None:
		return CheckResult(name, SKIPPED, "This backup recorded no row counts (taken before drills existed).")
	problems = []
	for table in sorted(recorded):
		if table not in found:
			problems.append(f"{table}: missing (recorded {recorded[table]} rows)")
		elif found[table] != recorded[table]:
			problems.append(f"{table}: {found[table]} rows, recorded {recorded[table]}")
	if problems:
		return CheckResult(name, FAILED, _name_some(problems, "table"))
	return CheckResult(name, PASSED, f"{len(recorded)} tables, {sum(recorded.values())} rows, all equal.")


def compare_files(label: str, artifact, found: FoundFiles | None) -> CheckResult:
	"""A restored files folder holds the recorded number of files and bytes, and the samples hash equal."""
	if artifact is None:
		return CheckResult(label, SKIPPED, "This backup holds no such files archive.")
	if artifact.file_count is None:
		return CheckResult(
			label, SKIPPED, "This backup recorded no file statistics (taken before drills existed)."
		)
	if found is None:
		return CheckResult(label, FAILED, "The restored site has no such files folder.")
	problems = []
	if found.count != artifact.file_count:
		problems.append(f"{found.count} files, recorded {artifact.file_count}")
	if found.total_bytes != artifact.file_bytes:
		problems.append(f"{found.total_bytes} bytes, recorded {artifact.file_bytes}")
	for path in sorted(artifact.file_samples or {}):
		sha256 = found.samples.get(path)
		if sha256 is None:
			problems.append(f"{path}: missing")
		elif sha256 != artifact.file_samples[path]:
			problems.append(f"{path}: sha256 differs")
	if problems:
		return CheckResult(label, FAILED, _name_some(problems, "difference"))
	return CheckResult(
		label,
		PASSED,
		f"{artifact.file_count} files, {artifact.file_bytes} bytes; "
		f"{len(artifact.file_samples or {})} sampled files hash equal.",
	)


def compare_apps(manifest: Manifest, found: dict[str, str]) -> CheckResult:
	"""The restored site has the backup's apps installed, at the versions the backup recorded."""
	name = "Apps"
	problems = []
	for app in manifest.apps:
		if app.name not in found:
			problems.append(f"{app.name}: not installed")
		elif app.version and found[app.name] != app.version:
			problems.append(f"{app.name}: {found[app.name]}, backup has {app.version}")
	extra = sorted(set(found) - {app.name for app in manifest.apps})
	problems += [f"{app}: installed but not in the backup" for app in extra]
	if problems:
		return CheckResult(name, FAILED, _name_some(problems, "app"))
	return CheckResult(name, PASSED, ", ".join(f"{app.name} {app.version}".strip() for app in manifest.apps))


def overall_status(checks: list[CheckResult]) -> str:
	"""A drill passes when no check failed (skipped checks say what an older backup cannot prove)."""
	return FAILED if any(check.failed for check in checks) else PASSED


def first_failure(checks: list[CheckResult]) -> CheckResult | None:
	return next((check for check in checks if check.failed), None)


def _name_some(problems: list[str], noun: str) -> str:
	named = problems[:MAX_NAMED]
	more = len(problems) - len(named)
	return "; ".join(named) + (f"; and {more} more {noun}(s)" if more else "")
