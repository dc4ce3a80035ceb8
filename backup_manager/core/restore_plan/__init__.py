"""Restore plans: the exact commands that bring one backup back, as text, JSON or a bash script.

The plan is built from the manifest alone, so it can be produced anywhere (Desk, CLI, a laptop)
and run on the server that holds the bench. Rules it follows, each taken from Frappe v15's code:

- Every interpolated value is shlex-quoted. On top of that, the paths handed to `bench restore`
  and `bench partial-restore` must be free of shell metacharacters, because Frappe itself
  interpolates them unquoted into shell strings (`file {path}`, `zgrep -m1 __Auth {path}`,
  `gzip -cd {path} | ...`). Such paths are linked into a safe work folder first.
- Secrets never reach an argv or the plan. The backup key travels to gpg on a here-string; the
  database root password is put into sites/common_site_config.json for the one command that
  needs it, because Frappe's get_root_connection reads it from the config when no flag is given.
- Frappe is always given decrypted files, so it never needs `--encryption-key`.
- Fast paths, each equivalent to the command it replaces: a new site is created from the dump
  (`bench new-site --source-sql`, the _new_site call bench restore makes) instead of a blank
  install then `bench restore`; the file archives are unpacked with plain tar by a program that
  checks every member first; files are hashed once with hashlib (not at all again after the
  download tool verified them); maintenance mode is written without starting bench.

The package, by concern (modules import their siblings directly, never this __init__):
  plan.py         build_restore_plan: validation -> paths -> app checks -> steps, warnings collected
  steps.py        steps before the site is touched (bench, apps, download, verify, prepare)
  site_steps.py   steps that touch the site; they return their warnings, never edit the plan
  program_steps.py  site steps done by the plan's own programs: maintenance mode, files
  programs/       python programs the plan runs on the bench, real files loaded as text
  render.py       text, JSON and bash renderings
  validation.py, paths.py, apps.py, versions.py, shell.py, model.py, constants.py
"""

from backup_manager.core.restore_plan.apps import check_apps
from backup_manager.core.restore_plan.constants import (
	APP_NAME_PATTERN,
	BENCH_PYTHON,
	CHECKSUMS_DELIMITER,
	COMMON_CONFIG_PATH,
	CONTROL_CHARACTERS,
	DEFAULT_WORK_FOLDER,
	ENV_ACCESS_KEY_ID,
	ENV_ADMIN_PASSWORD,
	ENV_ALLOW_DOWNGRADE,
	ENV_DB_ROOT_PASSWORD,
	ENV_ENCRYPTION_KEY,
	ENV_SECRET_ACCESS_KEY,
	ENV_SESSION_TOKEN,
	FRAPPE_ARCHIVE_SUFFIXES,
	GPG_DECRYPT_ARGS,
	OFFSITE_TOOL_MODULE,
	PREPARED_BASE_NAMES,
	PREPARED_FOLDER,
	SAVED_COMMON_CONFIG_PATTERN,
	SHA256_PATTERN,
	SHELL_SAFE_PATH,
	SKIP_MIGRATE_BACKUP_ENV,
	SNIPPET_DELIMITER,
	STATUS_DOWNGRADE,
	STATUS_MISSING,
	STATUS_OK,
	STATUS_UNKNOWN,
)
from backup_manager.core.restore_plan.model import (
	AppCheck,
	EnvVar,
	OffsiteSource,
	PlanStep,
	RestoreOptions,
	RestorePlan,
)
from backup_manager.core.restore_plan.plan import build_restore_plan
from backup_manager.core.restore_plan.programs import DATABASE_SECRETS_SNIPPET, SITE_KEYS_SNIPPET
from backup_manager.core.restore_plan.render import render_json, render_shell, render_text
from backup_manager.core.restore_plan.shell import is_shell_safe
from backup_manager.core.restore_plan.versions import compare_versions, parse_version

__all__ = [
	"APP_NAME_PATTERN",
	"BENCH_PYTHON",
	"CHECKSUMS_DELIMITER",
	"COMMON_CONFIG_PATH",
	"CONTROL_CHARACTERS",
	"DATABASE_SECRETS_SNIPPET",
	"DEFAULT_WORK_FOLDER",
	"ENV_ACCESS_KEY_ID",
	"ENV_ADMIN_PASSWORD",
	"ENV_ALLOW_DOWNGRADE",
	"ENV_DB_ROOT_PASSWORD",
	"ENV_ENCRYPTION_KEY",
	"ENV_SECRET_ACCESS_KEY",
	"ENV_SESSION_TOKEN",
	"FRAPPE_ARCHIVE_SUFFIXES",
	"GPG_DECRYPT_ARGS",
	"OFFSITE_TOOL_MODULE",
	"PREPARED_BASE_NAMES",
	"PREPARED_FOLDER",
	"SAVED_COMMON_CONFIG_PATTERN",
	"SHA256_PATTERN",
	"SHELL_SAFE_PATH",
	"SITE_KEYS_SNIPPET",
	"SKIP_MIGRATE_BACKUP_ENV",
	"SNIPPET_DELIMITER",
	"STATUS_DOWNGRADE",
	"STATUS_MISSING",
	"STATUS_OK",
	"STATUS_UNKNOWN",
	"AppCheck",
	"EnvVar",
	"OffsiteSource",
	"PlanStep",
	"RestoreOptions",
	"RestorePlan",
	"build_restore_plan",
	"check_apps",
	"compare_versions",
	"is_shell_safe",
	"parse_version",
	"render_json",
	"render_shell",
	"render_text",
]
