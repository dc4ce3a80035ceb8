"""Checks on the manifest and the options, before anything is built from them."""

import os

from backup_manager.core.layout import BACKUP_ID_PATTERN
from backup_manager.core.manifest import DATABASE, Manifest
from backup_manager.core.restore_plan.constants import (
	APP_NAME_PATTERN,
	CONTROL_CHARACTERS,
	SHA256_PATTERN,
	SOURCE_FOLDER,
	SOURCE_SFTP,
)
from backup_manager.core.restore_plan.model import RestoreOptions


def validate_restore(manifest: Manifest, options: RestoreOptions) -> None:
	"""Raise ValueError, naming the field and the fix, when the plan cannot be built or run safely."""
	_validate_names(manifest, options)
	_validate_request(manifest, options)
	_validate_artifacts(manifest)
	_validate_apps(manifest)


def validate_site_name(label: str, site: str) -> None:
	"""Raise ValueError unless `site` is a plain folder name bench takes as a site."""
	# A leading "-" would make bench read the site name as an option.
	if (
		not site
		or site in (".", "..")
		or site.startswith("-")
		or "/" in site
		or CONTROL_CHARACTERS.search(site)
	):
		raise ValueError(f"{label} {site!r} is not a site folder name")


def _validate_names(manifest: Manifest, options: RestoreOptions) -> None:
	if not BACKUP_ID_PATTERN.fullmatch(manifest.backup_id or ""):
		raise ValueError(f"Manifest backup_id {manifest.backup_id!r} is not a Backup Manager backup id")
	validate_site_name("Manifest site", manifest.site)
	validate_site_name("RestoreOptions.target_site", options.target_site)
	if not os.path.isabs(options.bench_path or ""):
		raise ValueError(
			f"RestoreOptions.bench_path {options.bench_path!r} must be the absolute path of the bench "
			"(e.g. /home/frappe/frappe-bench): bench commands run from its sites/ folder."
		)


def _validate_request(manifest: Manifest, options: RestoreOptions) -> None:
	if manifest.partial and options.new_site:
		raise ValueError(
			f"Backup {manifest.backup_id} is a partial backup (only some DocTypes): it cannot create a new "
			"site. Restore it into the existing site (new_site off), or pick a full backup."
		)
	if not manifest.artifact(DATABASE):
		raise ValueError(
			f"Backup {manifest.backup_id} has no database artifact: there is nothing to restore."
		)
	if not options.local_dir and not options.source:
		raise ValueError(
			"Set RestoreOptions.local_dir (the backup's files are on this server) or "
			"RestoreOptions.source (download them from an offsite destination)."
		)
	source = options.source
	if source and not options.local_dir:
		if source.storage_type == SOURCE_SFTP:
			if not (source.sftp_host and source.sftp_username and source.host_key):
				raise ValueError(
					"OffsiteSource needs sftp_host, sftp_username and the accepted host_key to download "
					"from an SFTP destination."
				)
		elif source.storage_type == SOURCE_FOLDER:
			if not source.folder_path:
				raise ValueError(
					"OffsiteSource.folder_path is empty: set the folder the backup was copied to."
				)
		elif not source.bucket:
			raise ValueError("OffsiteSource.bucket is empty: set the bucket the backup was uploaded to.")


def _validate_artifacts(manifest: Manifest) -> None:
	for artifact in manifest.artifacts:
		name = artifact.file_name or ""
		if not name or name in (".", "..") or "/" in name or "\\" in name or CONTROL_CHARACTERS.search(name):
			raise ValueError(f"Artifact file name {name!r} of kind {artifact.kind} is not a plain file name")
		if not SHA256_PATTERN.fullmatch(artifact.sha256 or ""):
			raise ValueError(f"Artifact {name} has no valid sha256 in the manifest; it cannot be verified")


def _validate_apps(manifest: Manifest) -> None:
	for app in manifest.apps:
		if not APP_NAME_PATTERN.fullmatch(app.name or ""):
			raise ValueError(f"Manifest app name {app.name!r} is not a Python package name")
		if any(CONTROL_CHARACTERS.search(value or "") for value in (app.version, app.branch, app.commit)):
			raise ValueError(
				f"Manifest app {app.name} has a version, branch or commit with control characters"
			)
