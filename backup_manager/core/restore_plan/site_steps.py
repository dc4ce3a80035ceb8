"""The steps that touch the site: replace its data, carry its keys, migrate, bring it back.

Builders return the plan-level warnings they raise (StepsWithWarnings) instead of adding them
to the plan: build_restore_plan collects them in order.
"""

import shlex

from backup_manager.core.manifest import (
	DATABASE,
	ENV_MANIFEST_KEY,
	MANIFEST_KEY_CONFIG,
	SITE_CONFIG,
	Manifest,
)
from backup_manager.core.restore_plan.constants import (
	COMMON_CONFIG_PATH,
	ENV_ALLOW_DOWNGRADE,
	ENV_DB_ROOT_PASSWORD,
	ENV_ENCRYPTION_KEY,
	FILES_RESTORE_PID,
	SKIP_MIGRATE_BACKUP_ENV,
)
from backup_manager.core.restore_plan.model import PlanStep, RestoreOptions, StepsWithWarnings
from backup_manager.core.restore_plan.paths import ResolvedPaths
from backup_manager.core.restore_plan.program_steps import (
	build_maintenance_step,
	build_restore_files_command,
	build_restore_files_step,
	describe_files_restore,
)
from backup_manager.core.restore_plan.programs import SITE_KEYS_SNIPPET
from backup_manager.core.restore_plan.secret_steps import (
	build_database_secrets_step,
	build_restore_common_config_step,
	build_root_password_check_step,
)
from backup_manager.core.restore_plan.shell import in_background, run_bench_python

# The shell function of the script's prelude (render.SHELL_PRELUDE) that runs a bench command
# with igzip or pigz standing in for Frappe's `gzip -cd DUMP`.
FAST_GUNZIP = "with_fast_gunzip "
FAST_GUNZIP_NOTE = (
	"Frappe reads the dump with `gzip -cd`; for that one call the plan puts igzip or pigz first on the "
	"command's PATH when installed (the same bytes, 2-3x faster; every other gzip call is gzip's own)."
)


def build_site_steps(manifest: Manifest, options: RestoreOptions, paths: ResolvedPaths) -> StepsWithWarnings:
	"""From the database secrets to the cleanup, with the warnings these steps raise."""
	half_restored = _describe_half_restored(options)
	restore = _build_restore_steps(manifest, options, paths, half_restored)
	finish = _build_finish_steps(options, paths, half_restored, partial=manifest.partial)
	return StepsWithWarnings(restore.steps + finish.steps, restore.warnings + finish.warnings)


def _describe_half_restored(options: RestoreOptions) -> str:
	target = options.target_site
	if options.new_site:
		return (
			f"The new site {target} is half-restored: drop it ({_drop_site_command(target)}; it asks for the "
			"database root password unless root_password is in sites/common_site_config.json) and run the "
			"plan again."
		)
	return (
		f"{target} may be half-restored and stays in maintenance mode: run the plan again from the start "
		"(it restores from the same files). Do not turn maintenance mode off before a restore has finished."
	)


def _drop_site_command(target: str) -> str:
	return shlex.join(["bench", "drop-site", target, "--force", "--no-backup"])


def _get_root_flags(options: RestoreOptions) -> list[str]:
	return [f"--db-root-username={options.db_root_username}"] if options.db_root_username else []


def _build_restore_steps(
	manifest: Manifest, options: RestoreOptions, paths: ResolvedPaths, half_restored: str
) -> StepsWithWarnings:
	"""Secrets in place, site created from the dump or locked and restored, files, keys carried."""
	target = options.target_site
	result = StepsWithWarnings()
	if manifest.partial:
		result.steps += [
			build_maintenance_step(target, True),
			_build_partial_restore_step(manifest, options, paths, half_restored),
		]
		return result
	if not options.new_site:
		# One step restores the database and the files, carries the key and migrates
		# (bench backup-manager restore-and-migrate); the root password never goes into a file.
		result.steps += [
			build_root_password_check_step(target),
			build_maintenance_step(target, True),
			build_restore_step(options, paths, half_restored),
		]
		return result
	result.steps += [
		build_database_secrets_step(target),
		build_create_site_step(options, paths),
		build_restore_common_config_step(),
	]
	# A new site's folder exists only once bench new-site has made it: its files follow it.
	files_step = build_restore_files_step(options, paths, half_restored)
	if files_step:
		result.steps.append(files_step)
	site_keys = build_site_keys_step(options, paths, half_restored)
	if site_keys:
		result.steps.append(site_keys)
	else:
		result.warnings.append(
			"This backup has no site config file: copy encryption_key from the original site's "
			f"site_config.json into sites/{target}/site_config.json by hand, or the passwords stored in "
			"the restored site (email accounts, integrations) cannot be decrypted."
		)
	return result


def _build_finish_steps(
	options: RestoreOptions, paths: ResolvedPaths, half_restored: str, *, partial: bool
) -> StepsWithWarnings:
	"""Migrate, put the site back in service, restart production, delete the decrypted copies."""
	target = options.target_site
	result = StepsWithWarnings()
	if options.new_site or partial:
		# A full same-site restore migrated in its restore step.
		result.steps.append(_build_migrate_step(target, half_restored))
	if not options.new_site:
		result.steps.append(build_maintenance_step(target, False))
	elif options.enable_scheduler:
		result.steps.append(_build_scheduler_step(target))
	else:
		result.warnings.append(
			f"The scheduler of {target} stays disabled (bench new-site --source-sql disables it, as bench "
			"restore into a new site did), so this copy sends no mail and runs no jobs, backups included. If it replaces the original "
			f"site, enable it: {shlex.join(['bench', '--site', target, 'scheduler', 'enable'])}"
		)
	if options.production:
		result.steps.append(build_production_step(options))
	if paths.decrypt or paths.links:
		result.steps.append(_build_cleanup_step(paths))
	return result


def build_create_site_step(options: RestoreOptions, paths: ResolvedPaths) -> PlanStep:
	"""bench new-site --source-sql: the site is created from the dump, with no blank install first."""
	target = options.target_site
	arguments = ["bench", "new-site", target, "--source-sql", paths.restore_paths[DATABASE]]
	return PlanStep(
		key="create_site",
		title=f"Create the new site {target} from the backup's database",
		explanation=(
			"Creates the site's folder, database user and database, and imports the dump into it: Frappe's "
			"own restore path (bench restore runs the same _new_site with this dump), without the blank "
			"install that bench new-site followed by bench restore builds and then throws away. The apps "
			"are not installed again: the dump already lists them. The database root password comes from "
			f"{COMMON_CONFIG_PATH} (previous step); no Administrator password is needed, the dump holds it. "
			f"Its input is /dev/null, so a prompt stops it instead of waiting. {FAST_GUNZIP_NOTE}"
		),
		commands=[FAST_GUNZIP + shlex.join([*arguments, *_get_root_flags(options)]) + " </dev/null"],
		on_failure=(
			f"If sites/{target} was created, drop it ({_drop_site_command(target)}) and run the plan again; "
			"otherwise fix the cause and run the plan again."
		),
	)


def build_restore_step(options: RestoreOptions, paths: ResolvedPaths, half_restored: str) -> PlanStep:
	"""bench restore + key + bench migrate in one process, the file archives unpacked by plain tar beside it."""
	target = options.target_site
	config_path = paths.restore_paths.get(SITE_CONFIG)
	arguments = [
		"bench",
		"--site",
		target,
		"backup-manager",
		"restore-and-migrate",
		paths.restore_paths[DATABASE],
		*(["--site-config", config_path] if config_path else []),
		*_get_root_flags(options),
	]
	database = FAST_GUNZIP + shlex.join(arguments) + f" ${{{ENV_ALLOW_DOWNGRADE}:+--force}} </dev/null"
	explanation = (
		f"Runs Frappe's own bench restore (the database only) and then bench migrate on {target}, one "
		"after the other in one bench process instead of two: the same two commands, without starting "
		"bench and importing Frappe a second time. bench restore drops and re-creates the database from "
		"the dump"
		+ (
			"; between the two, the original site's encryption_key is copied from the backup's site config "
			f"into sites/{target}/site_config.json without being printed (Password fields in the restored "
			"database are encrypted with it, and the migrate must read them). Other keys of the original "
			"config are listed by name only, for you to review"
			if config_path
			else ""
		)
		+ ". The migrate brings the restored database up to the code in this bench (patches, schema, "
		"fixtures); it needs Redis running, and Backup Manager's backup before migrate is skipped (it would "
		"only copy the backup just restored). The database root password comes from the site or common "
		f"config, else from ${ENV_DB_ROOT_PASSWORD} inside the process. Its input is /dev/null, so a prompt "
		"stops it instead of waiting: Frappe asks before restoring a backup of a newer Frappe; set "
		f"{ENV_ALLOW_DOWNGRADE}=1 to pass --force and go on anyway. {FAST_GUNZIP_NOTE}"
	)
	title, commands = "Restore the database, then migrate", [database]
	files = build_restore_files_command(options, paths)
	if files:
		title = "Restore the database and the files, then migrate"
		explanation += (
			" The file archives are unpacked by the plan's own program, not by bench restore (which first "
			"copies each archive into the site), started in the background before the database restore and "
			"waited for after the migrate: neither reads what the other writes, and the site is in "
			f"maintenance mode. {describe_files_restore(target)} If either fails, the step fails once both "
			"have ended."
		)
		commands = [
			in_background(files),
			f"{FILES_RESTORE_PID}=$!",
			database,
			f'wait "${FILES_RESTORE_PID}"',
			f"{FILES_RESTORE_PID}=",
		]
	return PlanStep(
		key="restore",
		title=title,
		explanation=explanation,
		commands=commands,
		on_failure=half_restored
		+ " If the migrate failed (a patch), fix it and run bench migrate again, or run the plan again.",
	)


def _build_partial_restore_step(
	manifest: Manifest, options: RestoreOptions, paths: ResolvedPaths, half_restored: str
) -> PlanStep:
	database = paths.restore_paths[DATABASE]
	return PlanStep(
		key="restore",
		title="Restore the partial backup's tables",
		explanation=(
			"bench partial-restore imports only the tables in this partial backup "
			+ (f"({', '.join(manifest.include_doctypes)}) " if manifest.include_doctypes else "")
			+ "into the existing site; every other table stays as it is. A partial backup cannot "
			"create a site. It connects as the site's own database user, so no root password is needed."
		),
		commands=[
			FAST_GUNZIP
			+ shlex.join(["bench", "--site", options.target_site, "partial-restore", database])
			+ " </dev/null"
		],
		on_failure=half_restored,
	)


def build_site_keys_step(
	options: RestoreOptions, paths: ResolvedPaths, half_restored: str
) -> PlanStep | None:
	"""Copy the original site's keys into the new site; None without a site config.

	A same-site restore runs the same program inside bench backup-manager restore-and-migrate.
	"""
	config_path = paths.restore_paths.get(SITE_CONFIG)
	if not config_path:
		return None
	target = options.target_site
	carry_backup_key = bool(paths.decrypt)
	arguments = [config_path, target, "1" if carry_backup_key else "0", "1"]
	return PlanStep(
		key="site_keys",
		title="Carry the original site's encryption key",
		explanation=(
			"Password fields in the restored database are encrypted with the original site's encryption_key. "
			f"It is copied from the backup's site config into sites/{target}/site_config.json without being "
			"printed"
			+ (
				f", together with ${ENV_ENCRYPTION_KEY} as backup_encryption_key so the new site's encrypted backups use the same key"
				if carry_backup_key
				else ""
			)
			+ f", and ${ENV_MANIFEST_KEY} (if set) as {MANIFEST_KEY_CONFIG}, so the new site can verify and "
			"prune the same offsite backups. Other keys of the original config are listed by name only, for "
			"you to review."
		),
		commands=[run_bench_python(arguments, SITE_KEYS_SNIPPET)],
		on_failure=half_restored,
	)


def _build_migrate_step(target: str, half_restored: str) -> PlanStep:
	return PlanStep(
		key="migrate",
		title=f"Migrate {target}",
		explanation=(
			"Brings the restored database up to the code in this bench (patches, schema, fixtures). "
			"It needs Redis running (bench start in development, supervisor in production). Backup "
			"Manager's backup before migrate is skipped: it would only copy the backup just restored "
			"(to the original site's destinations, for a new site) and could stop the migrate."
		),
		commands=[f"{SKIP_MIGRATE_BACKUP_ENV}=1 " + shlex.join(["bench", "--site", target, "migrate"])],
		on_failure=half_restored + " Or fix the failing patch and run bench migrate again.",
	)


def _build_scheduler_step(target: str) -> PlanStep:
	return PlanStep(
		key="scheduler",
		title=f"Enable the scheduler of {target}",
		explanation=(
			"A site made by bench new-site has its scheduler disabled, and bench restore keeps that. "
			"Enabled because this site replaces the original: its scheduled jobs (mail, backups, "
			"integrations) run from now on."
		),
		commands=[shlex.join(["bench", "--site", target, "scheduler", "enable"])],
		on_failure="The restore is done. Enable the scheduler by hand with the command above.",
	)


def build_production_step(options: RestoreOptions) -> PlanStep:
	"""Restart the bench's processes; for a new site, first make nginx serve it."""
	commands = []
	explanation = (
		"Restarts the bench's web and worker processes so that none keeps the old database state cached."
	)
	if options.new_site:
		commands += [
			shlex.join(["bench", "setup", "nginx", "--yes"]),
			shlex.join(["bench", "setup", "reload-nginx"]),
		]
		explanation = (
			"Regenerates the nginx config so that it serves the new site, reloads nginx, and restarts the "
			"bench's web and worker processes."
		)
	commands.append(shlex.join(["bench", "restart"]))
	return PlanStep(
		key="production",
		title="Restart the production processes",
		explanation=explanation
		+ " bench uses sudo for supervisor and nginx (bench setup sudoers allows it).",
		commands=commands,
		on_failure="The restore is done. Run the commands of this step by hand.",
	)


def _build_cleanup_step(paths: ResolvedPaths) -> PlanStep:
	return PlanStep(
		key="cleanup",
		title="Delete the decrypted copies",
		explanation=(
			f"Removes {paths.prepared_dir}, which holds the decrypted (plain) files or links. The "
			"downloaded or local backup files are kept."
		),
		commands=[shlex.join(["rm", "-rf", "--", paths.prepared_dir])],
		on_failure=f"The restore is done. Delete {paths.prepared_dir} by hand.",
	)
