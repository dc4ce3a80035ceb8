"""App checks: every app of the backup must be in the bench, at the same or a newer version."""

import shlex

from backup_manager.core.manifest import InstalledApp, Manifest
from backup_manager.core.restore_plan.constants import (
	ENV_ALLOW_DOWNGRADE,
	STATUS_DOWNGRADE,
	STATUS_MISSING,
	STATUS_OK,
	STATUS_UNKNOWN,
)
from backup_manager.core.restore_plan.model import AppCheck
from backup_manager.core.restore_plan.versions import compare_versions, get_major_version


def list_apps_in_backup(manifest: Manifest) -> list[InstalledApp]:
	"""The backup's apps in install order, frappe first (Frappe always installs it first)."""
	apps = list(manifest.apps)
	frappe_app = next((app for app in apps if app.name == "frappe"), None)
	if frappe_app:
		apps.remove(frappe_app)
	else:
		frappe_app = InstalledApp(name="frappe", version=manifest.frappe_version)
	if not frappe_app.version and manifest.frappe_version:
		frappe_app = InstalledApp(
			name="frappe", version=manifest.frappe_version, branch=frappe_app.branch, commit=frappe_app.commit
		)
	return [frappe_app, *apps]


def get_known_branch(app: InstalledApp) -> str:
	"""The branch the backup's copy of the app was on, or "" when it is not known."""
	# `git rev-parse --abbrev-ref HEAD` answers HEAD on a detached checkout: no branch to name.
	return app.branch if app.branch and app.branch != "HEAD" else ""


def get_app_fix(app: InstalledApp, status: str) -> str:
	"""The bench command that fixes a missing or too old app; "" for other statuses."""
	if status == STATUS_MISSING:
		branch = get_known_branch(app)
		return shlex.join(["bench", "get-app", app.name, *(["--branch", branch] if branch else [])])
	if status == STATUS_DOWNGRADE:
		return shlex.join(["bench", "update", "--pull", "--requirements", "--build", "--apps", app.name])
	return ""


def check_apps(manifest: Manifest, bench_apps: dict[str, str] | None) -> list[AppCheck]:
	"""Compare the backup's apps with the bench's: each must be there at the same or a newer version."""
	checks = []
	for app in list_apps_in_backup(manifest):
		status, bench_version = _get_app_status(app, bench_apps)
		checks.append(
			AppCheck(
				app=app.name,
				backup_version=app.version,
				bench_version=bench_version,
				status=status,
				fix=get_app_fix(app, status),
			)
		)
	return checks


def _get_app_status(app: InstalledApp, bench_apps: dict[str, str] | None) -> tuple[str, str]:
	"""(status, bench version) of one app of the backup."""
	if bench_apps is None:
		return STATUS_UNKNOWN, ""
	if app.name not in bench_apps:
		return STATUS_MISSING, ""
	bench_version = bench_apps[app.name] or ""
	comparison = compare_versions(bench_version, app.version)
	if comparison is None:
		return STATUS_UNKNOWN, bench_version
	if comparison < 0:
		return STATUS_DOWNGRADE, bench_version
	return STATUS_OK, bench_version


def describe_app_problems(manifest: Manifest, checks: list[AppCheck]) -> list[str]:
	"""One warning per app that is missing, too old, not comparable or a major version behind."""
	apps = {app.name: app for app in list_apps_in_backup(manifest)}
	warnings = (_describe_app_problem(check, apps[check.app]) for check in checks)
	return [warning for warning in warnings if warning]


def _describe_app_problem(check: AppCheck, app: InstalledApp) -> str:
	where = f" (branch {get_known_branch(app)})" if get_known_branch(app) else ""
	commit = f"; the backup ran commit {app.commit}" if app.commit else ""
	if check.status == STATUS_MISSING:
		return (
			f"App {check.app} is installed on the backed-up site but not in this bench. Get it first: "
			f"{check.fix} (use the app's git URL instead of its name when it is not hosted by Frappe){commit}."
		)
	if check.status == STATUS_DOWNGRADE:
		consequence = (
			"bench restore stops at its downgrade question (the plan gives it no input) unless you set "
			f"{ENV_ALLOW_DOWNGRADE}=1, which runs it with --force"
			if check.app == "frappe"
			else "migrate would run older code against a newer schema"
		)
		return (
			f"App {check.app} is {check.bench_version} in this bench but {check.backup_version} in the "
			f"backup{where}: {consequence}. Upgrade it in this bench to {check.backup_version} or newer first, "
			f"e.g. {check.fix}{commit}."
		)
	if check.status == STATUS_UNKNOWN and check.bench_version:
		return (
			f"Cannot compare the versions of {check.app} (bench {check.bench_version!r}, backup "
			f"{check.backup_version!r}): check that the bench's copy is not older than the backup's."
		)
	moves_major = get_major_version(check.bench_version) != get_major_version(check.backup_version)
	if check.status == STATUS_OK and check.bench_version and moves_major:
		return (
			f"App {check.app} moves from {check.backup_version} to {check.bench_version}: migrate runs "
			"a major-version upgrade, which takes long and may need the app's upgrade notes."
		)
	return ""
