"""The steps that hand the database root password to Frappe without a command line.

A new site gets it through sites/common_site_config.json (the original saved, then put back); a
same-site restore only checks for it, and bench backup-manager restore-and-migrate hands it to
Frappe's restore inside its own process.
"""

from backup_manager.core.restore_plan.constants import (
	COMMON_CONFIG_PATH,
	ENV_DB_ROOT_PASSWORD,
	SAVED_COMMON_CONFIG_PATTERN,
)
from backup_manager.core.restore_plan.model import PlanStep
from backup_manager.core.restore_plan.programs import DATABASE_SECRETS_SNIPPET
from backup_manager.core.restore_plan.shell import run_bench_python

NO_ROOT_PASSWORD_YET = (
	f"Nothing in the site has changed yet. Set {ENV_DB_ROOT_PASSWORD} (or put root_password in "
	f"{COMMON_CONFIG_PATH}) and run the plan again."
)


def build_root_password_check_step(target: str) -> PlanStep:
	"""Before anything changes: the same-site restore will find the database root password."""
	return PlanStep(
		key="database_secrets",
		title="Check that the database root password is at hand",
		explanation=(
			"Restoring the database needs the database root password. The restore step takes it from "
			f"sites/{target}/site_config.json or {COMMON_CONFIG_PATH} (root_password), as bench restore does, "
			f"else from ${ENV_DB_ROOT_PASSWORD}, which it hands to Frappe's restore inside its own process: "
			"never on a command line, never in a file. This checks that one of them holds it."
		),
		commands=[run_bench_python([target, "check"], DATABASE_SECRETS_SNIPPET)],
		on_failure=NO_ROOT_PASSWORD_YET,
	)


def build_database_secrets_step(target: str) -> PlanStep:
	"""Put the database root password where bench new-site reads it, the original file saved."""
	return PlanStep(
		key="database_secrets",
		title="Hand the database root password to Frappe without a command line",
		explanation=(
			f"bench new-site needs the database root password. Frappe reads it from {COMMON_CONFIG_PATH} when "
			f"no flag is given, so the original file is saved (with its mode), ${ENV_DB_ROOT_PASSWORD} is added "
			"to it unless it already has root_password (the file is replaced atomically and is readable only by "
			"the bench user while it holds it), and the original is put back right after the database is "
			"restored (on exit if a step fails, by the next run if this one is killed). Nothing is added when "
			"the file already holds it."
		),
		commands=[
			# The saved copy keeps the original's mode (it holds nothing the original did not) and goes
			# back with an atomic rename; a killed run's copy is put back by the next run's first step.
			f"COMMON_CONFIG_ORIGINAL=$(mktemp {SAVED_COMMON_CONFIG_PATTERN[:-1]}XXXXXX)",
			f'cp -p {COMMON_CONFIG_PATH} "$COMMON_CONFIG_ORIGINAL"',
			run_bench_python([target, "1"], DATABASE_SECRETS_SNIPPET),
		],
		on_failure=NO_ROOT_PASSWORD_YET,
	)


def build_restore_common_config_step() -> PlanStep:
	return PlanStep(
		key="restore_common_config",
		title="Put back sites/common_site_config.json",
		explanation=(
			"The database root password is no longer needed: the original file goes back. The shell "
			"script also does this on exit if a step fails."
		),
		commands=[
			f'mv -f -- "$COMMON_CONFIG_ORIGINAL" {COMMON_CONFIG_PATH}',
			"COMMON_CONFIG_ORIGINAL=",
		],
		on_failure=(
			f"Move the saved original ({SAVED_COMMON_CONFIG_PATTERN}) back to {COMMON_CONFIG_PATH} "
			"(mv -f): the current file still holds the database root password. Running the plan again also "
			"puts it back."
		),
	)
