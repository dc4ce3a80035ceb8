"""Restore plans for a Backup Log: the log and the bench turned into core.restore_plan options."""

import os
from dataclasses import asdict

import frappe
from frappe import _

from backup_manager.core import outcome
from backup_manager.core.manifest import Manifest, escape_control_characters
from backup_manager.core.restore_plan import (
	OffsiteSource,
	RestoreOptions,
	build_restore_plan,
	render_json,
	render_shell,
	render_text,
)

RENDERERS = {"text": render_text, "json": render_json, "sh": render_shell}


def get_bench_apps() -> dict[str, str]:
	"""Every app present in this bench (installed on a site or not) with its version."""
	apps = {}
	for app in frappe.get_all_apps(with_internal_apps=True):
		try:
			apps[app] = str(frappe.get_attr(f"{app}.__version__"))
		except Exception:
			apps[app] = ""
	return apps


def has_local_files(log) -> bool:
	return bool(log.backup_dir) and not log.local_files_deleted and os.path.isdir(log.backup_dir)


def build_plan_for_log(
	log,
	*,
	new_site: str | None = None,
	destination: str | None = None,
	production: bool = False,
	enable_scheduler: bool = False,
	download_dir: str = "",
):
	"""Build the restore plan of a log, from its local files or from a destination."""
	if not log.manifest:
		frappe.throw(_("Backup Log {0} has no backup to restore (status {1}).").format(log.name, log.status))
	manifest = Manifest.from_json(log.manifest)
	source = None
	local_dir = None
	if destination or not has_local_files(log):
		# Imported here: a plan from local files (the common case) needs none of the upload machinery.
		from backup_manager.offsite import get_log_destination

		source = get_offsite_source(get_log_destination(log, destination))
	else:
		local_dir = log.backup_dir
	options = RestoreOptions(
		target_site=new_site or log.site,
		new_site=bool(new_site),
		bench_path=os.path.abspath(frappe.utils.get_bench_path()),
		local_dir=local_dir,
		source=source,
		bench_apps=get_bench_apps(),
		production=production,
		enable_scheduler=enable_scheduler,
		download_dir=download_dir,
	)
	try:
		return build_restore_plan(manifest, options)
	except ValueError as exc:
		frappe.throw(str(exc), title=_("Cannot build a restore plan"))


def get_offsite_source(target) -> OffsiteSource:
	"""Where a plan downloads from: the destination's public settings (never a secret)."""
	config = target.get_storage_config(with_secret=False)
	return OffsiteSource.from_config(config, destination_name=target.name, prefix=config.prefix)


def render_plan(plan, output_format: str) -> str:
	return RENDERERS[output_format](plan)


def describe_backup(log) -> dict:
	"""What the Restore Guide shows about a backup (no secret: keys are never read here)."""
	destinations = list(dict.fromkeys(row.destination for row in log.uploads))
	complete = outcome.complete_destinations(log.uploads, destinations)
	return {
		"name": log.name,
		"policy": log.policy,
		"site": log.site,
		"status": log.status,
		"backup_id": log.backup_id,
		"started_at": log.started_at,
		"total_size_human": log.total_size_human,
		"encrypted": bool(log.encrypted),
		"partial": bool(log.partial),
		"local_files": has_local_files(log),
		"backup_dir": log.backup_dir,
		"frappe_version": _visible(log.frappe_version),
		"apps": [
			{
				"app": _visible(row.app),
				"version": _visible(row.version),
				"branch": _visible(row.branch),
				"commit": _visible(row.commit),
			}
			for row in log.apps
		],
		"artifacts": [
			{
				"kind": row.kind,
				"file_name": _visible(row.file_name),
				"size_human": row.size_human,
				"sha256": row.sha256,
				"encrypted": bool(row.encrypted),
			}
			for row in log.artifacts
		],
		"destinations": [{"destination": name, "complete": name in complete} for name in destinations],
	}


def _visible(value) -> str:
	# Manifest values: a control character must not reach the page (or a copied command) as is.
	return escape_control_characters(value or "")


def get_restore_guide(backup_log: str, new_site: str | None = None, destination: str | None = None) -> dict:
	log = frappe.get_doc("Backup Log", backup_log)
	plan = build_plan_for_log(log, new_site=new_site or None, destination=destination or None)
	backup = describe_backup(log)
	return {
		"backup": backup,
		"plan": asdict(plan),
		"script": render_shell(plan),
		"destinations": [row["destination"] for row in backup["destinations"] if row["complete"]],
	}
