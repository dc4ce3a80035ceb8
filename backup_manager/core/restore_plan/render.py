"""The three renderings of a plan: JSON for programs, text for people, a bash script to run."""

import json
import shlex
import textwrap
from dataclasses import asdict

from backup_manager.core.encryption import REFUSED_DECRYPTION_STATUS, REQUIRED_DECRYPTION_STATUS
from backup_manager.core.manifest import escape_control_characters
from backup_manager.core.restore_plan.constants import (
	COMMON_CONFIG_PATH,
	CONTROL_CHARACTERS,
	ENV_ALLOW_DOWNGRADE,
	FILES_RESTORE_PID,
)
from backup_manager.core.restore_plan.model import PlanStep, RestorePlan

# Runs before the first step: stops at the first failure, says where and how to recover, and puts
# back sites/common_site_config.json if a step failed while it held the database root password.
SHELL_PRELUDE = (
	"set -euo pipefail",
	"",
	"CURRENT_STEP='before the first step'",
	"RECOVERY='Nothing has changed yet: fix the cause and run this script again.'",
	"COMMON_CONFIG_ORIGINAL=",
	"PREPARED_DIR=",
	"RESTORE_LOCK=",
	"FAST_GUNZIP_DIR=",
	f"{FILES_RESTORE_PID}=",
	"on_exit() {",
	"\tlocal status=$?",
	# Files still being unpacked beside a failed database restore are waited for, never left running
	# behind a script that has already said where it stopped.
	f'\tif [ -n "${FILES_RESTORE_PID}" ]; then',
	"\t\techo 'Waiting for the files being unpacked to finish...' >&2",
	f'\t\twait "${FILES_RESTORE_PID}" 2>/dev/null || true',
	"\tfi",
	'\tif [ -n "$COMMON_CONFIG_ORIGINAL" ] && [ -f "$COMMON_CONFIG_ORIGINAL" ]; then',
	f'\t\tmv -f -- "$COMMON_CONFIG_ORIGINAL" {COMMON_CONFIG_PATH}',
	f"\t\techo 'Put back the original {COMMON_CONFIG_PATH}.' >&2",
	"\tfi",
	# Decrypted (plain) copies never outlive the script, whether it ends, fails or is interrupted.
	'\tif [ -n "$PREPARED_DIR" ] && [ -e "$PREPARED_DIR" ]; then',
	'\t\trm -rf -- "$PREPARED_DIR"',
	"\tfi",
	'\tif [ -n "$RESTORE_LOCK" ]; then',
	'\t\trm -f -- "$RESTORE_LOCK"',
	"\tfi",
	'\tif [ -n "$FAST_GUNZIP_DIR" ]; then',
	'\t\trm -rf -- "$FAST_GUNZIP_DIR"',
	"\tfi",
	'\tif [ "$status" -ne 0 ]; then',
	'\t\tprintf \'Restore stopped at step %s.\\n%s\\n\' "$CURRENT_STEP" "$RECOVERY" >&2',
	"\tfi",
	"}",
	"trap on_exit EXIT",
	"trap 'exit 130' INT TERM HUP",
	# Frappe's restore reads the dump with exactly `gzip -cd DUMP` (frappe/database/db_manager.py).
	# For that call igzip, or pigz, writes the same bytes 2-3x faster; any other call (zgrep's
	# `gzip -cdfq --`, which must survive its reader stopping early) still runs gzip.
	"with_fast_gunzip() {",
	"\tlocal fast plain",
	"\tfast=$(command -v igzip || command -v pigz || true)",
	"\tplain=$(command -v gzip || true)",
	'\tif [ -z "$fast" ] || [ -z "$plain" ]; then',
	'\t\t"$@"',
	"\t\treturn",
	"\tfi",
	'\tif [ -z "$FAST_GUNZIP_DIR" ]; then',
	'\t\tFAST_GUNZIP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/backup-manager-gunzip-XXXXXX")',
	"\t\t{",
	"\t\t\tprintf '#!/bin/sh\\n'",
	'\t\t\tprintf \'if [ "$#" -eq 2 ] && [ "$1" = -cd ]; then exec %q -cd "$2"; fi\\n\' "$fast"',
	'\t\t\tprintf \'exec %q "$@"\\n\' "$plain"',
	'\t\t} >"$FAST_GUNZIP_DIR/gzip"',
	'\t\tchmod 700 "$FAST_GUNZIP_DIR/gzip"',
	"\tfi",
	'\tPATH="$FAST_GUNZIP_DIR:$PATH" "$@"',
	"}",
	# gpg's status lines must prove our passphrase unlocked a symmetric, integrity-checked packet.
	"require_decrypted() {",
	"\tlocal token",
	f"\tfor token in {' '.join(REQUIRED_DECRYPTION_STATUS)}; do",
	'\t\tif ! grep -q "^\\[GNUPG:\\] $token\\b" <<<"$1"; then',
	'\t\t\trm -f -- "$2"',
	"\t\t\tprintf '%s\\n' \"$2: gpg did not decrypt an encrypted packet with the backup key (no $token): the file is not a backup encrypted by this site. Nothing was restored from it.\" >&2",
	"\t\t\treturn 1",
	"\t\tfi",
	"\tdone",
	f"\tif grep -qE '^\\[GNUPG:\\] ({'|'.join(REFUSED_DECRYPTION_STATUS)})\\b' <<<\"$1\"; then",
	'\t\trm -f -- "$2"',
	"\t\tprintf '%s\\n' \"$2: gpg reported a packet this site never writes. Nothing was restored from it.\" >&2",
	"\t\treturn 1",
	"\tfi",
	"}",
	"",
)


def render_json(plan: RestorePlan) -> str:
	"""The plan as JSON, field for field."""
	return json.dumps(asdict(plan), indent=1)


def render_text(plan: RestorePlan) -> str:
	"""The plan for people: context, environment, app checks, warnings and numbered steps."""
	lines = [
		*_render_text_header(plan),
		*_render_text_env_vars(plan),
		*_render_text_apps(plan),
		*_render_text_warnings(plan),
		"Steps. The shell script rendering holds the same commands, ready to run unattended. Commands are",
		"indented here for reading: remove the indentation when pasting (heredoc ends must start a line).",
		"",
	]
	for number, step in enumerate(plan.steps, start=1):
		lines += _render_text_step(number, step)
	return "\n".join(lines)


def _visible(text: str) -> str:
	# Values come from a manifest: a newline or escape sequence must not fake a line or a step.
	return escape_control_characters(str(text))


def _render_text_header(plan: RestorePlan) -> list[str]:
	lines = [f"Restore plan for backup {_visible(plan.backup_id)} of {_visible(plan.site)}"]
	if plan.created_at:
		lines.append(f"  Taken: {_visible(plan.created_at)}")
	mode = "new site" if plan.new_site else "existing site, replaced"
	lines.append(
		f"  Restores into: {_visible(plan.target_site)} ({mode})"
		+ (" - partial backup" if plan.partial else "")
	)
	lines.append("")
	return lines


def _render_text_env_vars(plan: RestorePlan) -> list[str]:
	if not plan.env_vars:
		return []
	lines = [
		"Environment variables (set them in the shell that runs the commands; values never appear in this plan):"
	]
	for env_var in plan.env_vars:
		need = "required" if env_var.required else "optional"
		lines.append(_visible(f"  {env_var.name} ({need}): {env_var.description}"))
	lines.append("  Set one without leaving it in the shell history: read -rs NAME && export NAME")
	lines.append("")
	return lines


def _render_text_apps(plan: RestorePlan) -> list[str]:
	lines = ["Apps (backup -> this bench):"]
	for check in plan.app_checks:
		bench_version = check.bench_version or "-"
		fix = f"  fix: {check.fix}" if check.fix else ""
		lines.append(
			_visible(f"  {check.app}: {check.backup_version or '?'} -> {bench_version} [{check.status}]{fix}")
		)
	lines.append("")
	return lines


def _render_text_warnings(plan: RestorePlan) -> list[str]:
	if not plan.warnings:
		return []
	return ["Warnings:", *(_wrap(warning, "  - ", "    ") for warning in plan.warnings), ""]


def _render_text_step(number: int, step: PlanStep) -> list[str]:
	lines = [f"{number}. {_visible(step.title)}"]
	if step.explanation:
		lines.append(_wrap(step.explanation, "   ", "   "))
	for warning in step.warnings:
		lines.append(_wrap(warning, "   Warning: ", "   "))
	for command in step.commands:
		# Tabs stay (the programs are indented with them); every other control character is shown escaped.
		lines.extend(
			"      " + "\t".join(_visible(part) for part in line.split("\t")) for line in command.split("\n")
		)
	if step.on_failure:
		lines.append(_wrap(step.on_failure, "   If this step fails: ", "   "))
	lines.append("")
	return lines


def _wrap(text: str, first_indent: str, indent: str) -> str:
	return textwrap.fill(
		_visible(text),
		width=100,
		initial_indent=first_indent,
		subsequent_indent=indent,
		break_on_hyphens=False,
	)


def _comment(text: str) -> str:
	# A newline in a site name or version must not end the comment and start a command.
	return "# " + CONTROL_CHARACTERS.sub("?", text)


def render_shell(plan: RestorePlan) -> str:
	"""The plan as a bash script that runs unattended and stops at the first failing step."""
	lines = [
		*_render_shell_header(plan),
		*SHELL_PRELUDE,
		*_render_shell_env_checks(plan),
		*_render_shell_steps(plan),
		"",
		"CURRENT_STEP='done'",
		f"printf '%s\\n' {shlex.quote(f'==> Backup {plan.backup_id} is restored into {plan.target_site}.')}",
		"",
	]
	return "\n".join(lines)


def _render_shell_header(plan: RestorePlan) -> list[str]:
	apps = ", ".join(f"{check.app} {check.backup_version}".strip() for check in plan.app_checks)
	mode = "new site" if plan.new_site else "existing site, replaced"
	environment = ", ".join(
		f"{env_var.name} ({'required' if env_var.required else 'optional'})" for env_var in plan.env_vars
	)
	return [
		"#!/usr/bin/env bash",
		_comment("Restore script generated by Backup Manager"),
		_comment(f"Backup:  {plan.backup_id}"),
		_comment(f"Site:    {plan.site}"),
		_comment(f"Taken:   {plan.created_at}"),
		_comment(f"Target:  {plan.target_site} ({mode})"),
		_comment(f"Apps:    {apps}"),
		_comment("Environment: " + (environment or "none")),
		"#",
		_comment("Run it as the bench user; it needs no input. Never interrupt it while it restores."),
		*(_comment(f"Warning: {warning}") for warning in plan.warnings),
	]


def _render_shell_env_checks(plan: RestorePlan) -> list[str]:
	"""Stop before the first step when a required variable is unset or ALLOW_DOWNGRADE is odd."""
	lines = []
	for env_var in plan.env_vars:
		if env_var.required:
			message = f"Set the environment variable {env_var.name}: {env_var.description}"
			lines += [
				f'if [ -z "${{{env_var.name}:-}}" ]; then',
				f"\tprintf '%s\\n' {shlex.quote(message)} >&2",
				"\texit 1",
				"fi",
			]
	if any(env_var.name == ENV_ALLOW_DOWNGRADE for env_var in plan.env_vars):
		lines += [
			f'case "${{{ENV_ALLOW_DOWNGRADE}:-}}" in',
			"\t''|1) ;;",
			f"\t*) echo '{ENV_ALLOW_DOWNGRADE} must be 1 or unset.' >&2; exit 1 ;;",
			"esac",
		]
	return lines


def _render_shell_steps(plan: RestorePlan) -> list[str]:
	lines = []
	total = len(plan.steps)
	for number, step in enumerate(plan.steps, start=1):
		label = f"{number}/{total} ({step.title})"
		lines += [
			"",
			_comment(f"Step {number}/{total}: {step.title}"),
			f"CURRENT_STEP={shlex.quote(label)}",
			f"RECOVERY={shlex.quote(step.on_failure)}",
			f"printf '%s\\n' {shlex.quote(f'==> Step {number}/{total}: {step.title}')}",
			*step.commands,
		]
	return lines
