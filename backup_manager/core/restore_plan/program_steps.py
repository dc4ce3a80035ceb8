"""Steps the plan runs with its own small programs instead of starting bench: maintenance mode, files.

Starting bench costs seconds of imports; these steps only edit site_config.json or unpack
archives, which the programs in programs/ do in a fraction of that, with the same result.
"""

import shlex

from backup_manager.core.manifest import PRIVATE_FILES, PUBLIC_FILES
from backup_manager.core.restore_plan.model import PlanStep, RestoreOptions
from backup_manager.core.restore_plan.paths import ResolvedPaths
from backup_manager.core.restore_plan.programs import MAINTENANCE_MODE_SNIPPET, RESTORE_FILES_SNIPPET
from backup_manager.core.restore_plan.shell import run_bench_python


def build_maintenance_step(target: str, on: bool) -> PlanStep:
	"""What bench set-maintenance-mode on/off writes, by a small program instead of a bench start."""
	command = run_bench_python([target, "1" if on else "0"], MAINTENANCE_MODE_SNIPPET)
	if on:
		return PlanStep(
			key="maintenance_on",
			title=f"Put {target} in maintenance mode",
			explanation=(
				"Stops users, background jobs and the scheduler from writing to a database that is about "
				"to be replaced. Frappe keeps maintenance_mode in site_config.json, which the restore does "
				"not touch, so it stays on until the last step turns it off. Sets maintenance_mode to 1 "
				"there, as bench set-maintenance-mode on does, without starting bench."
			),
			commands=[command],
			on_failure="The site's data has not changed yet: fix the cause and run the plan again.",
		)
	return PlanStep(
		key="maintenance_off",
		title=f"Take {target} out of maintenance mode",
		explanation=(
			"Bench restore keeps the scheduler as it was on this site before the restore (it reads "
			"enable_scheduler before replacing the database and writes it back afterwards), so only "
			"maintenance mode needs undoing: maintenance_mode goes to 0, as bench set-maintenance-mode off does."
		),
		commands=[command],
		on_failure="The restore is done. Turn maintenance mode off by hand: "
		+ shlex.join(["bench", "--site", target, "set-maintenance-mode", "off"]),
	)


def build_restore_files_step(
	options: RestoreOptions, paths: ResolvedPaths, half_restored: str
) -> PlanStep | None:
	"""Unpack the public and private files archives with plain tar, each member checked first."""
	command = build_restore_files_command(options, paths)
	if not command:
		return None
	return PlanStep(
		key="restore_files",
		title="Restore the public and private files",
		explanation=describe_files_restore(options.target_site),
		commands=[command],
		on_failure=half_restored,
	)


def build_restore_files_command(options: RestoreOptions, paths: ResolvedPaths) -> str:
	"""The command unpacking the backup's file archives into the target site; "" when it has none."""
	arguments = [options.target_site]
	for kind, folder in ((PUBLIC_FILES, "public"), (PRIVATE_FILES, "private")):
		if kind in paths.restore_paths:
			arguments += [folder, paths.restore_paths[kind]]
	if len(arguments) == 1:
		return ""
	return run_bench_python(arguments, RESTORE_FILES_SNIPPET)


def describe_files_restore(target: str) -> str:
	return (
		f"Unpacks the archives into sites/{target}/public/files and private/files with plain "
		"tar, as bench restore --with-public-files/--with-private-files does (tar --strip-components, "
		"files added since are kept), without first copying each archive into the site. Every member is "
		"checked before anything is unpacked: it must lie under <site>/public/files or <site>/private/files "
		"of one site, which may be named differently from this one; absolute paths, '..', links leading "
		"elsewhere and devices stop the restore."
	)
