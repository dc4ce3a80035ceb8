"""The steps before the site is touched: bench, apps, download, verify, prepare the files."""

import os
import shlex

from backup_manager.core.manifest import ENV_MANIFEST_KEY, Manifest
from backup_manager.core.restore_plan.apps import get_app_fix, list_apps_in_backup
from backup_manager.core.restore_plan.constants import (
	BENCH_PYTHON,
	COMMON_CONFIG_PATH,
	CONFIG_TEMP_PATTERN,
	ENV_ACCESS_KEY_ID,
	ENV_ALLOW_DOWNGRADE,
	ENV_ENCRYPTION_KEY,
	ENV_SECRET_ACCESS_KEY,
	ENV_SFTP_PASSWORD,
	ENV_SFTP_PRIVATE_KEY,
	ENV_SFTP_PRIVATE_KEY_FILE,
	GPG_DECRYPT_ARGS,
	OFFSITE_TOOL_MODULE,
	RESTORE_LOCK_PATH,
	SAVED_COMMON_CONFIG_PATTERN,
	SOURCE_FOLDER,
	SOURCE_SFTP,
	STATUS_DOWNGRADE,
	STATUS_MISSING,
)
from backup_manager.core.restore_plan.model import AppCheck, OffsiteSource, PlanStep, RestoreOptions
from backup_manager.core.restore_plan.paths import ResolvedPaths
from backup_manager.core.restore_plan.programs import FRAPPE_VERSION_SNIPPET, VERIFY_FILES_SNIPPET
from backup_manager.core.restore_plan.shell import guard, run_bench_python


def build_bench_step(options: RestoreOptions, paths: ResolvedPaths) -> PlanStep:
	"""Go to the bench and check it is one, and that the target site is (or is not yet) there."""
	commands = [
		shlex.join(["cd", paths.bench]),
		guard(
			f"[ -d sites ] && [ -x {BENCH_PYTHON} ]",
			f"{paths.bench} is not a bench folder (no sites/ or env/bin/python).",
		),
		guard("command -v bench >/dev/null", "The bench command is not on PATH: run this as the bench user."),
		_guard_target_site(options),
		*RECOVER_INTERRUPTED_RESTORE,
	]
	return PlanStep(
		key="bench",
		title="Work from the bench folder",
		explanation=(
			"Every command runs from the bench folder, as the user that owns the bench. Run the steps in "
			"order and never interrupt a restore: a stopped restore leaves a half-imported database. "
			+ _describe_recovery(options)
		),
		commands=commands,
		on_failure="Nothing has changed yet: fix the cause and run the plan again.",
	)


# One restore at a time on a bench; with the lock held, what an earlier run left (it was killed:
# its exit trap never ran) is found and put back: the saved common_site_config.json, and
# temporary config files that may hold the database root password.
RECOVER_INTERRUPTED_RESTORE = (
	f"exec 9>>{RESTORE_LOCK_PATH}",
	guard(
		"flock -n 9",
		"Another restore is running on this bench (it holds "
		f"{RESTORE_LOCK_PATH}): wait for it to finish, then run this again.",
	),
	f"RESTORE_LOCK={RESTORE_LOCK_PATH}",
	f"for leftover in {SAVED_COMMON_CONFIG_PATTERN}; do\n"
	'\t[ -e "$leftover" ] || continue\n'
	f'\tmv -f -- "$leftover" {COMMON_CONFIG_PATH}\n'
	f"\tprintf '%s\\n' \"An interrupted restore left its saved copy of {COMMON_CONFIG_PATH} ($leftover): put it back.\" >&2\n"
	"done",
	f"for leftover in {CONFIG_TEMP_PATTERN}; do\n"
	'\t[ -e "$leftover" ] || continue\n'
	'\trm -f -- "$leftover"\n'
	"\tprintf '%s\\n' \"Removed $leftover, left by an interrupted restore.\" >&2\n"
	"done",
)


def _guard_target_site(options: RestoreOptions) -> str:
	target = options.target_site
	site_folder = f"sites/{target}"
	if options.new_site:
		return guard(
			f"[ ! -e {shlex.quote(site_folder)} ]",
			f"{site_folder} already exists: choose another name for the new site, or restore into it "
			"as the same site.",
		)
	return guard(
		f"[ -f {shlex.quote(site_folder + '/site_config.json')} ]",
		f"Site {target} does not exist in this bench: restore the backup as a new site instead.",
	)


def _describe_recovery(options: RestoreOptions) -> str:
	if options.new_site:
		drop_command = shlex.join(["bench", "drop-site", options.target_site, "--force", "--no-backup"])
		return (
			f"If a step fails after the site was created, drop the half-restored site "
			f"({drop_command}) and start again."
		)
	return (
		"If a step fails after the restore began, the site may be half-restored: run the plan again "
		"from the start; it restores from the same files."
	)


def build_apps_step(app_checks: list[AppCheck], manifest: Manifest, new_site: bool) -> PlanStep:
	"""Stop before anything changes when an app of the backup is not in this bench (or frappe is older)."""
	apps = {app.name: app for app in list_apps_in_backup(manifest)}
	commands = []
	for check in app_checks:
		fix = check.fix or get_app_fix(apps[check.app], STATUS_MISSING)
		commands.append(
			guard(
				f"[ -d {shlex.quote('apps/' + check.app)} ]",
				f"App {check.app} ({check.backup_version or 'version unknown'} in the backup) is not in this "
				f"bench: get it with `{fix}`, then run the plan again.",
			)
		)
	explanation = ""
	if new_site:
		# bench new-site --source-sql skips the downgrade question bench restore asks: ask it here.
		frappe_version = next(app.version for app in apps.values() if app.name == "frappe")
		commands.append(run_bench_python([frappe_version or ""], FRAPPE_VERSION_SNIPPET))
		explanation = (
			" It also stops when the backup was taken on a newer Frappe than this bench's, the check bench "
			f"restore makes, unless {ENV_ALLOW_DOWNGRADE}=1."
		)
	step_warnings = [
		f"{check.app}: {check.status}" + (f" (fix: {check.fix})" if check.fix else "")
		for check in app_checks
		if check.status in (STATUS_MISSING, STATUS_DOWNGRADE)
	]
	return PlanStep(
		key="apps",
		title="Check that this bench has the backup's apps",
		explanation=(
			"The restored database expects every app that was installed on the site, in a version that is "
			"the same or newer: "
			+ ", ".join(f"{check.app} {check.backup_version}".strip() for check in app_checks)
			+ ". This runs first so that a missing app is found before anything is downloaded or replaced."
			+ explanation
		),
		commands=commands,
		warnings=step_warnings,
		on_failure="Nothing has changed yet: add or upgrade the app in this bench, then run the plan again.",
	)


def build_download_step(manifest: Manifest, options: RestoreOptions, paths: ResolvedPaths) -> PlanStep:
	"""Download the backup's files with the offsite tool, credentials from the environment only."""
	source = options.source
	values = source_arguments(source)
	values += [("--site", manifest.site), ("--backup-id", manifest.backup_id), ("--to", paths.work_dir)]
	arguments = [
		BENCH_PYTHON,
		"-m",
		OFFSITE_TOOL_MODULE,
		"download",
		*(name if name == NO_MOUNT_CHECK_FLAG else f"{name}={value}" for name, value in values),
	]
	return PlanStep(
		key="download",
		title=f"Download the backup from {source.label}",
		explanation=(
			"The download tool needs no site: it runs under the bench's python and takes its credentials "
			f"only from {_credential_names(source)}, never from its command line. It "
			f"refuses a manifest that does not verify with {ENV_MANIFEST_KEY} or that names another site or "
			"backup, and writes into a folder only the bench user can open."
		),
		commands=[shlex.join(["mkdir", "-p", os.path.dirname(paths.work_dir)]), shlex.join(arguments)],
		on_failure=(
			"Nothing has changed yet: check the credentials, the network and "
			f"{ENV_MANIFEST_KEY}, then run the plan again. If the manifest is refused, the bucket holds a "
			"manifest this site did not write: use another backup."
		),
	)


# The one offsite tool option without a value.
NO_MOUNT_CHECK_FLAG = "--no-mount-check"


def source_arguments(source: OffsiteSource) -> list[tuple[str, str]]:
	"""The offsite tool's arguments naming the destination (public values only, never a secret)."""
	# --name=value: a value starting with "-" (a bucket, a prefix) cannot be taken for an option.
	if source.storage_type == SOURCE_SFTP:
		values = [
			("--type", "sftp"),
			("--host", source.sftp_host),
			("--port", str(source.sftp_port or 22)),
			("--user", source.sftp_username),
			("--base-folder", source.base_folder or ""),
			("--host-key", source.host_key),
		]
	elif source.storage_type == SOURCE_FOLDER:
		values = [("--type", "folder"), ("--folder", source.folder_path)]
		if not source.must_be_mount_point:
			values.append((NO_MOUNT_CHECK_FLAG, ""))
	else:
		values = [("--bucket", source.bucket)]
		if source.endpoint_url:
			values.append(("--endpoint-url", source.endpoint_url))
		if source.region:
			values.append(("--region", source.region))
		values.append(("--prefix", source.prefix or ""))
		if source.addressing_style and source.addressing_style != "auto":
			values.append(("--addressing-style", source.addressing_style))
		return values
	values.append(("--prefix", source.prefix or ""))
	return values


def _credential_names(source: OffsiteSource) -> str:
	if source.storage_type == SOURCE_SFTP:
		return f"{ENV_SFTP_PRIVATE_KEY_FILE} (or {ENV_SFTP_PRIVATE_KEY}, {ENV_SFTP_PASSWORD})"
	if source.storage_type == SOURCE_FOLDER:
		return "nothing (it reads the mounted folder)"
	return f"{ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY}"


def build_verify_step(manifest: Manifest, options: RestoreOptions, paths: ResolvedPaths) -> PlanStep:
	"""Check every file against the sha256 the manifest recorded, before the site is touched."""
	downloaded = not options.local_dir
	arguments = [paths.source_dir, "downloaded" if downloaded else "hash"]
	for artifact in manifest.artifacts:
		arguments += [artifact.file_name, artifact.sha256]
	if downloaded:
		explanation = (
			"The download tool hashed every file against the authenticated manifest while downloading it and "
			"kept none that differed. This step checks, without hashing again, that the manifest it wrote "
			"records the same sha256 as this plan (written into it from the authenticated manifest), and that "
			"every file is there, before anything is decrypted or restored."
		)
	else:
		explanation = (
			"Hashes every file on this server (in parallel, at disk speed) and compares it with the sha256 "
			"recorded in the manifest when the backup was taken (written into this plan from the authenticated "
			"manifest), so that a truncated, altered or swapped file is found before anything is decrypted or "
			"restored. Same check as sha256sum -c, each file read once."
		)
	return PlanStep(
		key="verify",
		title="Verify the backup files",
		explanation=explanation,
		commands=[run_bench_python(arguments, VERIFY_FILES_SNIPPET)],
		on_failure=(
			"Nothing has changed yet. A file is missing or damaged: download it again, or use another backup."
		),
	)


def build_prepare_step(paths: ResolvedPaths) -> PlanStep:
	"""Decrypt, or link under safe names, the files Frappe's restore cannot take as they are."""
	prepared = shlex.quote(paths.prepared_dir)
	commands = [
		# Plain files an interrupted (killed) run left behind go first; the exit trap removes them
		# from now on, whatever happens.
		f"if [ -e {prepared} ]; then rm -rf -- {prepared}; "
		"echo 'Removed the decrypted files of an interrupted restore.' >&2; fi",
		f"PREPARED_DIR={prepared}",
		shlex.join(["mkdir", "-p", "--", os.path.dirname(paths.prepared_dir)]),
		shlex.join(["mkdir", "-m", "700", "--", paths.prepared_dir]),
	]
	for artifact in paths.decrypt:
		output = paths.restore_paths[artifact.kind]
		arguments = [
			*GPG_DECRYPT_ARGS,
			"--status-fd",
			"1",
			"--output",
			output,
			"--decrypt",
			paths.sources[artifact.kind],
		]
		# gpg "decrypts" literal data (gpg --store) without a key and exits 0: its status lines must
		# prove that our passphrase unlocked a symmetric, integrity-checked packet.
		# umask 077 in the subshell: the plain file is never readable by others, even for a moment.
		commands.append(
			f'GPG_STATUS=$(umask 077; {shlex.join(arguments)} <<<"${ENV_ENCRYPTION_KEY}")\n'
			f'require_decrypted "$GPG_STATUS" {shlex.quote(output)}'
		)
	for artifact in paths.links:
		commands.append(
			shlex.join(["ln", "-sf", "--", paths.sources[artifact.kind], paths.restore_paths[artifact.kind]])
		)
	parts = []
	if paths.decrypt:
		parts.append(
			"Decrypts the encrypted files into a folder only the bench user can read. The key goes to gpg "
			f"on stdin from ${ENV_ENCRYPTION_KEY}, so it is never on a command line, and bench restore gets "
			"plain files, so it is given no key either. A file that gpg did not really decrypt with this key "
			"(not an encrypted packet) is refused. The decrypted files are removed when the script ends, "
			"even when it fails or is interrupted."
		)
	if paths.links:
		parts.append(
			"Links files whose path or name Frappe's restore cannot take (it passes paths through a shell "
			"unquoted, and only unpacks .tar and .tgz archives) under safe names."
		)
	title = "Decrypt the backup files" if paths.decrypt else "Prepare the backup files for Frappe"
	return PlanStep(
		key="prepare_files",
		title=title,
		explanation=" ".join(parts),
		commands=commands,
		on_failure=(
			f"Nothing in the site has changed yet. If gpg failed, check {ENV_ENCRYPTION_KEY} "
			"(the backup_encryption_key of the original site), then run the plan again."
		),
	)
