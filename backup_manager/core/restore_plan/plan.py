"""build_restore_plan: validate, place the files, check the apps, then gather steps and warnings."""

import logging

from backup_manager.core.manifest import (
	DATABASE,
	ENV_MANIFEST_KEY,
	MANIFEST_KEY_CONFIG,
	PRIVATE_FILES,
	PUBLIC_FILES,
	SITE_CONFIG,
	Manifest,
)
from backup_manager.core.restore_plan.apps import check_apps, describe_app_problems
from backup_manager.core.restore_plan.constants import (
	COMMON_CONFIG_PATH,
	ENV_ACCESS_KEY_ID,
	ENV_ALLOW_DOWNGRADE,
	ENV_DB_ROOT_PASSWORD,
	ENV_ENCRYPTION_KEY,
	ENV_SECRET_ACCESS_KEY,
	ENV_SESSION_TOKEN,
	ENV_SFTP_KEY_PASSPHRASE,
	ENV_SFTP_PASSWORD,
	ENV_SFTP_PRIVATE_KEY,
	ENV_SFTP_PRIVATE_KEY_FILE,
	SOURCE_FOLDER,
	SOURCE_SFTP,
)
from backup_manager.core.restore_plan.model import EnvVar, RestoreOptions, RestorePlan
from backup_manager.core.restore_plan.paths import ResolvedPaths, resolve_paths
from backup_manager.core.restore_plan.site_steps import build_site_steps
from backup_manager.core.restore_plan.steps import (
	build_apps_step,
	build_bench_step,
	build_download_step,
	build_prepare_step,
	build_verify_step,
)
from backup_manager.core.restore_plan.validation import validate_restore

logger = logging.getLogger(__name__)


def build_restore_plan(manifest: Manifest, options: RestoreOptions) -> RestorePlan:
	"""Build the ordered steps, environment variables and warnings that restore one backup."""
	validate_restore(manifest, options)
	partial = manifest.partial
	restored_kinds = [DATABASE] if partial else [DATABASE, PUBLIC_FILES, PRIVATE_FILES, SITE_CONFIG]
	paths = resolve_paths(manifest, options, restored_kinds)
	downloading = not options.local_dir
	app_checks = check_apps(manifest, options.bench_apps)
	site_steps = build_site_steps(manifest, options, paths)
	plan = RestorePlan(
		backup_id=manifest.backup_id,
		site=manifest.site,
		target_site=options.target_site,
		new_site=options.new_site,
		app_checks=app_checks,
		created_at=manifest.created_at,
		partial=partial,
		encrypted=bool(paths.decrypt) or manifest.encrypted,
		env_vars=_list_env_vars(manifest, options, paths, downloading),
		warnings=[
			*describe_app_problems(manifest, app_checks),
			*_describe_restore_warnings(manifest, options),
			*site_steps.warnings,
		],
		steps=[
			build_bench_step(options, paths),
			build_apps_step(app_checks, manifest, options.new_site),
			*([build_download_step(manifest, options, paths)] if downloading else []),
			build_verify_step(manifest, options, paths),
			*([build_prepare_step(paths)] if paths.decrypt or paths.links else []),
			*site_steps.steps,
		],
	)
	logger.debug("Built a %s-step restore plan for backup %s", len(plan.steps), manifest.backup_id)
	return plan


def _describe_restore_warnings(manifest: Manifest, options: RestoreOptions) -> list[str]:
	"""What the restore replaces or leaves out, whatever its steps."""
	warnings = []
	target = options.target_site
	if not options.new_site and target != manifest.site:
		warnings.append(
			f"This is a backup of {manifest.site} restored over the existing site {target}: "
			f"everything in {target} is replaced."
		)
	if manifest.partial and any(manifest.artifact(kind) for kind in (PUBLIC_FILES, PRIVATE_FILES)):
		warnings.append(
			"bench partial-restore only restores database tables: the file archives of this backup "
			"are verified but not restored."
		)
	return warnings


def _list_env_vars(
	manifest: Manifest, options: RestoreOptions, paths: ResolvedPaths, downloading: bool
) -> list[EnvVar]:
	"""The environment variables the commands read, in the order they are first needed."""
	env_vars = []
	if downloading and options.source.storage_type == SOURCE_SFTP:
		destination = options.source.label
		env_vars += [
			EnvVar(
				ENV_SFTP_PRIVATE_KEY_FILE,
				False,
				f"Path of the SSH private key for {destination} (a file only you can read, chmod 600). "
				f"Or set {ENV_SFTP_PRIVATE_KEY} to the key itself, or {ENV_SFTP_PASSWORD}.",
			),
			EnvVar(ENV_SFTP_PRIVATE_KEY, False, f"The SSH private key for {destination}, if not in a file."),
			EnvVar(ENV_SFTP_KEY_PASSPHRASE, False, "Passphrase of the private key, if it has one."),
			EnvVar(
				ENV_SFTP_PASSWORD, False, f"Password of the SSH user on {destination}, if no key is used."
			),
		]
	elif downloading and options.source.storage_type != SOURCE_FOLDER:
		destination = options.source.label
		env_vars += [
			EnvVar(ENV_ACCESS_KEY_ID, True, f"Access key id of the offsite destination {destination}."),
			EnvVar(
				ENV_SECRET_ACCESS_KEY, True, f"Secret access key of the offsite destination {destination}."
			),
			EnvVar(ENV_SESSION_TOKEN, False, "Session token, only for temporary credentials."),
		]
	if downloading or options.new_site:
		needed = (
			"the download refuses a manifest it does not verify"
			if downloading
			else "optional here; without it the new site makes a key of its own"
		)
		env_vars.append(
			EnvVar(
				ENV_MANIFEST_KEY,
				downloading,
				f"Manifest key of {manifest.site} ({MANIFEST_KEY_CONFIG} in its site_config.json, kept offsite "
				f"with the backup encryption key): {needed}."
				+ (
					" The new site gets it, so that it can verify and prune the same backups."
					if options.new_site
					else ""
				),
			)
		)
	if paths.decrypt:
		env_vars.append(
			EnvVar(
				ENV_ENCRYPTION_KEY,
				True,
				f"Backup encryption key of {manifest.site} (backup_encryption_key in its site_config.json); "
				"gpg reads it on stdin.",
			)
		)
	if not manifest.partial:
		env_vars.append(
			EnvVar(
				ENV_DB_ROOT_PASSWORD,
				False,
				"Database root password. Needed unless root_password is already in "
				+ (
					f"{COMMON_CONFIG_PATH}; it is put there only while bench new-site needs it, then the "
					"original file is put back."
					if options.new_site
					else f"{COMMON_CONFIG_PATH} or the site's config; the restore step hands it to Frappe's "
					"restore inside its own process, never through a file."
				),
			)
		)
	if not manifest.partial:
		env_vars.append(
			EnvVar(
				ENV_ALLOW_DOWNGRADE,
				False,
				"Set to 1 only to restore a backup taken on a newer Frappe than this bench's: "
				+ (
					"the plan's version check then lets bench new-site --source-sql go on."
					if options.new_site
					else "bench restore then runs with --force, which also skips its check that the dump holds "
					"the __Auth table."
				),
			)
		)
	return env_vars
