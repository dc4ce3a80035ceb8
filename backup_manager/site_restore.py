"""A same-site restore's database work in one process: Frappe's own `restore` and `migrate` commands.

`bench restore` then `bench migrate` start bench and import Frappe twice; the restore plan's
`backup-manager restore-and-migrate` runs the same two click commands one after the other in
the process bench already started, and carries the original site's encryption key between them
(the migrate must see it). The pieces live here; commands.py runs them in order and prints.
"""

import os
import subprocess
import sys

import click
import frappe
from frappe import _

from backup_manager.core.restore_plan import ENV_DB_ROOT_PASSWORD, SKIP_MIGRATE_BACKUP_ENV
from backup_manager.core.restore_plan.programs import SITE_KEYS_SNIPPET


class SiteRestoreError(frappe.ValidationError):
	pass


def get_frappe_command(name: str) -> click.Command:
	"""Frappe's own click command `name` (what `bench --site SITE <name>` runs), wherever Frappe keeps it."""
	import frappe.commands

	# Frappe 15 lists its commands with get_commands(); fall back to the module's list if it moves.
	get_commands = getattr(frappe.commands, "get_commands", None)
	commands = get_commands() if get_commands else getattr(frappe.commands, "commands", [])
	for command in commands:
		if getattr(command, "name", None) == name:
			return command
	raise SiteRestoreError(
		_("This Frappe has no bench command {0}: run bench restore and bench migrate by hand.").format(name)
	)


def get_root_password_to_pass(site: str) -> str | None:
	"""The database root password to hand to Frappe's restore in this process, never on a command line.

	None when the site or common config already holds root_password (Frappe reads it there, as
	`bench restore` does); else $DB_ROOT_PASSWORD. Raises when neither has it.
	"""
	frappe.init(site=site)
	if frappe.conf.get("root_password"):
		return None
	root_password = os.environ.get(ENV_DB_ROOT_PASSWORD)
	if not root_password:
		raise SiteRestoreError(
			_(
				"Set {0} to the database root password (or put root_password in "
				"sites/common_site_config.json), then run the plan again. Nothing was restored."
			).format(ENV_DB_ROOT_PASSWORD)
		)
	return root_password


def restore_database(*, site: str, dump: str, db_root_username: str | None, force: bool) -> None:
	"""Frappe's `bench restore DUMP` (database only), in this process."""
	context = click.get_current_context()
	root_password = get_root_password_to_pass(site)
	context.invoke(
		get_frappe_command("restore"),
		sql_file_path=dump,
		db_root_username=db_root_username,
		db_root_password=root_password,
		force=force,
	)
	# The migrate starts from a fresh frappe.init and connection to the restored database.
	frappe.destroy()


def carry_site_keys(*, site: str, backup_config_path: str) -> str:
	"""The restore plan's site_keys program (the new-site plan runs the same text) for this site.

	Run as its own small python from the bench folder: it copies encryption_key from the
	backup's site config without printing it. Returns what it printed; raises if it failed.
	"""
	result = subprocess.run(
		[sys.executable, "-", backup_config_path, site, "0", "0"],
		input=SITE_KEYS_SNIPPET,
		capture_output=True,
		text=True,
		cwd=frappe.utils.get_bench_path(),
		check=False,
	)
	if result.returncode:
		raise SiteRestoreError(
			_("Carrying the original site's encryption key failed: {0}").format(
				(result.stderr or result.stdout).strip()[-2000:]
			)
		)
	return result.stdout


def migrate_site() -> None:
	"""Frappe's `bench migrate`, in this process, without Backup Manager's backup before migrate.

	That backup would only copy the database just restored, and a failing one would stop the migrate.
	"""
	os.environ[SKIP_MIGRATE_BACKUP_ENV] = "1"
	click.get_current_context().invoke(get_frappe_command("migrate"))
