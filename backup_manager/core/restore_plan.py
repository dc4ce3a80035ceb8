"""Restore plans: the exact commands that bring one backup back, as text, JSON or a bash script.

The plan is built from the manifest alone, so it can be produced anywhere (Desk, CLI, a laptop)
and run on the server that holds the bench. Rules it follows, each taken from Frappe v15's code:

- Every interpolated value is shlex-quoted. On top of that, the paths handed to `bench restore`
  and `bench partial-restore` must be free of shell metacharacters, because Frappe itself
  interpolates them unquoted into shell strings (`file {path}`, `zgrep -m1 __Auth {path}`,
  `gzip -cd {path} | ...`). Such paths are linked into a safe work folder first.
- Secrets never reach an argv or the plan. The backup key travels to gpg on a here-string; the
  database root password (and the throwaway Administrator password of a new site) are put
  into sites/common_site_config.json for the few commands that need them, because Frappe's
  get_root_connection and get_admin_password read them from the config when no flag is given.
- `bench restore` is always given decrypted files, so it never needs `--encryption-key`.
"""

import json
import logging
import os
import re
import shlex
import textwrap
from dataclasses import asdict, dataclass, field

from backup_manager.core.layout import BACKUP_ID_PATTERN
from backup_manager.core.manifest import (
	DATABASE,
	PRIVATE_FILES,
	PUBLIC_FILES,
	SITE_CONFIG,
	Artifact,
	InstalledApp,
	Manifest,
	sha256sum_lines,
)

logger = logging.getLogger(__name__)

ENV_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
ENV_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
ENV_SESSION_TOKEN = "AWS_SESSION_TOKEN"
ENV_ENCRYPTION_KEY = "BACKUP_ENCRYPTION_KEY"
ENV_DB_ROOT_PASSWORD = "DB_ROOT_PASSWORD"
ENV_ADMIN_PASSWORD = "ADMIN_PASSWORD"
ENV_ALLOW_DOWNGRADE = "ALLOW_DOWNGRADE"

STATUS_OK = "ok"
STATUS_MISSING = "missing"
STATUS_DOWNGRADE = "downgrade"
STATUS_UNKNOWN = "unknown"

BENCH_PYTHON = "./env/bin/python"
OFFSITE_TOOL_MODULE = "backup_manager.core.offsite_tool"
COMMON_CONFIG_PATH = "sites/common_site_config.json"
# Read by backup_manager.jobs.backup_before_migrate (the before_migrate hook); keep the two equal.
SKIP_MIGRATE_BACKUP_ENV = "BACKUP_MANAGER_SKIP_MIGRATE_BACKUP"
# The saved original sits next to the live file (same filesystem, same owner) under a dot name.
SAVED_COMMON_CONFIG_PATTERN = "sites/.common_site_config.json.*"
DEFAULT_WORK_FOLDER = "backup-restore"
PREPARED_FOLDER = "prepared"
CHECKSUMS_DELIMITER = "SHA256SUMS"
SNIPPET_DELIMITER = "PY"
# gpg >= 2.2.7 caches symmetric passphrases in gpg-agent unless told not to; a restore must
# not leave the backup key in an agent that outlives the script.
GPG_DECRYPT_ARGS = (
	"gpg",
	"--batch",
	"--yes",
	"--no-symkey-cache",
	"--pinentry-mode",
	"loopback",
	"--passphrase-fd",
	"0",
)
# Frappe's extract_files only unpacks names ending in .tar or .tgz and silently skips others;
# restore_database gunzips only names ending in .gz.
FRAPPE_ARCHIVE_SUFFIXES = (".tar", ".tgz")
PREPARED_BASE_NAMES = {
	DATABASE: "database",
	PUBLIC_FILES: "public-files",
	PRIVATE_FILES: "private-files",
	SITE_CONFIG: "site_config",
}
# What shlex.quote leaves unquoted: a path made only of these survives Frappe's unquoted shell use.
SHELL_SAFE_PATH = re.compile(r"[A-Za-z0-9@%+=:,./_-]+")
APP_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# Runs under the bench's python; reads the secrets from the environment and writes them where
# Frappe looks when no --db-root-password / --admin-password flag is given.
DATABASE_SECRETS_SNIPPET = """\
import json
import os
import secrets
import sys

site, new_site = sys.argv[1], sys.argv[2] == "1"
common_config_path = os.path.join("sites", "common_site_config.json")
with open(common_config_path) as handle:
	common_config = json.load(handle)
site_config = {}
site_config_path = os.path.join("sites", site, "site_config.json")
if not new_site and os.path.isfile(site_config_path):
	with open(site_config_path) as handle:
		site_config = json.load(handle)

added = []
if not (common_config.get("root_password") or site_config.get("root_password")):
	root_password = os.environ.get("DB_ROOT_PASSWORD")
	if not root_password:
		sys.exit(
			"Set DB_ROOT_PASSWORD to the database root password "
			"(or put root_password in sites/common_site_config.json), then run the plan again."
		)
	common_config["root_password"] = root_password
	added.append("root_password")
if new_site and not common_config.get("admin_password"):
	# The restore replaces the Administrator password with the backup's one, so this
	# password only lives between new-site and restore: random unless ADMIN_PASSWORD is set.
	common_config["admin_password"] = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(24)
	added.append("admin_password")

if added:
	with open(common_config_path, "w") as handle:
		json.dump(common_config, handle, indent=1, sort_keys=True)
	print("Added to sites/common_site_config.json until the restore is done: " + ", ".join(added))
else:
	print("sites/common_site_config.json already holds what the restore needs; left unchanged.")
"""

# Runs under the bench's python; copies the original site's encryption_key (which decrypts the
# Password fields of the restored database) without ever printing it.
SITE_KEYS_SNIPPET = """\
import json
import os
import sys

backup_config_path, site, carry_backup_key = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
# These describe the original site's own database, not something the restored site needs.
site_specific_keys = {"db_name", "db_password", "db_type", "db_host", "db_port"}
with open(backup_config_path) as handle:
	backup_config = json.load(handle)
site_config_path = os.path.join("sites", site, "site_config.json")
with open(site_config_path) as handle:
	site_config = json.load(handle)

encryption_key = backup_config.get("encryption_key")
changed = []
if not encryption_key:
	# Frappe creates the key the first time it encrypts a Password field: without one, the
	# original site held no encrypted passwords and there is nothing to carry.
	print("The backup's site config has no encryption_key: the original site stored no encrypted passwords.")
elif site_config.get("encryption_key") != encryption_key:
	site_config["encryption_key"] = encryption_key
	changed.append("encryption_key")
if carry_backup_key:
	backup_key = os.environ.get("BACKUP_ENCRYPTION_KEY")
	if backup_key and site_config.get("backup_encryption_key") != backup_key:
		site_config["backup_encryption_key"] = backup_key
		changed.append("backup_encryption_key")

if changed:
	with open(site_config_path, "w") as handle:
		json.dump(site_config, handle, indent=1, sort_keys=True)
	print("Set in " + site_config_path + ": " + ", ".join(changed))
else:
	print(site_config_path + " left unchanged.")
not_copied = sorted(set(backup_config) - set(site_config) - site_specific_keys)
if not_copied:
	print("Keys of the original site config not copied (review them): " + ", ".join(not_copied))
"""


@dataclass
class OffsiteSource:
	"""Where to download from when the files are not on this server."""

	destination_name: str
	endpoint_url: str
	region: str
	bucket: str
	prefix: str
	addressing_style: str = "auto"


@dataclass
class RestoreOptions:
	target_site: str
	new_site: bool = False
	# Absolute path of the bench the commands run from. Required in practice: bench commands run
	# from sites/, so a relative path would point somewhere else.
	bench_path: str = "."
	local_dir: str | None = None
	source: OffsiteSource | None = None
	download_dir: str = ""
	bench_apps: dict[str, str] | None = None
	production: bool = False
	db_root_username: str = ""
	# New sites come out of `bench restore` with the scheduler disabled; True enables it
	# (for a replacement site, not for a copy that must not send mail or run jobs twice).
	enable_scheduler: bool = False


@dataclass
class PlanStep:
	key: str
	title: str
	explanation: str
	commands: list[str] = field(default_factory=list)
	warnings: list[str] = field(default_factory=list)
	on_failure: str = ""


@dataclass
class EnvVar:
	name: str
	required: bool
	description: str


@dataclass
class AppCheck:
	app: str
	backup_version: str
	bench_version: str
	status: str
	fix: str = ""


@dataclass
class RestorePlan:
	backup_id: str
	site: str
	target_site: str
	new_site: bool
	steps: list[PlanStep] = field(default_factory=list)
	env_vars: list[EnvVar] = field(default_factory=list)
	warnings: list[str] = field(default_factory=list)
	app_checks: list[AppCheck] = field(default_factory=list)
	created_at: str = ""
	partial: bool = False
	encrypted: bool = False


@dataclass
class _Paths:
	"""Where each artifact is read from, and the paths handed to Frappe."""

	bench: str
	source_dir: str
	work_dir: str
	prepared_dir: str
	sources: dict[str, str]
	restore_paths: dict[str, str]
	decrypt: list[Artifact]
	links: list[Artifact]


# Versions ------------------------------------------------------------------------------------

_PRE_RELEASE_RANKS = {
	"dev": 0,
	"develop": 0,
	"alpha": 1,
	"a": 1,
	"beta": 2,
	"b": 2,
	"rc": 3,
	"c": 3,
	"pre": 3,
}
_UNKNOWN_PRE_RELEASE_RANK = 4
_VERSION_PATTERN = re.compile(r"^\s*v?(\d+(?:\.\d+)*)(.*)$", re.IGNORECASE)


def parse_version(text: str) -> tuple[tuple[int, ...], tuple | None] | None:
	"""Split a dotted version into (release numbers, pre-release key or None); None if unreadable."""
	match = _VERSION_PATTERN.match(text or "")
	if not match:
		return None
	release = tuple(int(part) for part in match.group(1).split("."))
	tail = match.group(2).split("+", 1)[0].strip().lstrip(".-_")
	if not tail:
		return release, None
	tokens = re.findall(r"\d+|[A-Za-z]+", tail)
	if not tokens:
		return None
	key = []
	for token in tokens:
		if token.isdigit():
			key.append((0, int(token), ""))
		else:
			word = token.lower()
			rank = _PRE_RELEASE_RANKS.get(word, _UNKNOWN_PRE_RELEASE_RANK)
			# Spellings of one stage (b, beta) compare equal; unknown words compare by spelling.
			key.append((1, rank, "" if rank != _UNKNOWN_PRE_RELEASE_RANK else word))
	return release, tuple(key)


def compare_versions(left: str, right: str) -> int | None:
	"""Return -1, 0 or 1 as `left` is older, equal or newer than `right`; None if either is unreadable."""
	parsed_left, parsed_right = parse_version(left), parse_version(right)
	if parsed_left is None or parsed_right is None:
		return None
	(release_left, pre_left), (release_right, pre_right) = parsed_left, parsed_right
	width = max(len(release_left), len(release_right))
	release_left = release_left + (0,) * (width - len(release_left))
	release_right = release_right + (0,) * (width - len(release_right))
	if release_left != release_right:
		return -1 if release_left < release_right else 1
	# A pre-release (15.0.0-dev, 16.0.0-beta.1) comes before the release itself.
	if pre_left == pre_right:
		return 0
	if pre_left is None:
		return 1
	if pre_right is None:
		return -1
	return -1 if pre_left < pre_right else 1


# Validation ----------------------------------------------------------------------------------


def is_shell_safe(path: str) -> bool:
	"""True when a path can pass through a shell unquoted (as Frappe's restore passes it)."""
	return bool(SHELL_SAFE_PATH.fullmatch(path))


def _validate(manifest: Manifest, options: RestoreOptions) -> None:
	if not BACKUP_ID_PATTERN.match(manifest.backup_id or ""):
		raise ValueError(f"Manifest backup_id {manifest.backup_id!r} is not a Backup Manager backup id")
	_validate_site_name("Manifest site", manifest.site)
	_validate_site_name("RestoreOptions.target_site", options.target_site)
	if not os.path.isabs(options.bench_path or ""):
		raise ValueError(
			f"RestoreOptions.bench_path {options.bench_path!r} must be the absolute path of the bench "
			"(e.g. /home/frappe/frappe-bench): bench commands run from its sites/ folder."
		)
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
	if options.source and not options.local_dir and not options.source.bucket:
		raise ValueError("OffsiteSource.bucket is empty: set the bucket the backup was uploaded to.")
	for artifact in manifest.artifacts:
		name = artifact.file_name or ""
		if not name or name in (".", "..") or "/" in name or "\\" in name or CONTROL_CHARACTERS.search(name):
			raise ValueError(f"Artifact file name {name!r} of kind {artifact.kind} is not a plain file name")
		if not SHA256_PATTERN.fullmatch(artifact.sha256 or ""):
			raise ValueError(f"Artifact {name} has no valid sha256 in the manifest; it cannot be verified")
	for app in manifest.apps:
		if not APP_NAME_PATTERN.fullmatch(app.name or ""):
			raise ValueError(f"Manifest app name {app.name!r} is not a Python package name")
		if any(CONTROL_CHARACTERS.search(value or "") for value in (app.version, app.branch, app.commit)):
			raise ValueError(
				f"Manifest app {app.name} has a version, branch or commit with control characters"
			)


def _validate_site_name(label: str, site: str) -> None:
	# A leading "-" would make bench read the site name as an option.
	if (
		not site
		or site in (".", "..")
		or site.startswith("-")
		or "/" in site
		or CONTROL_CHARACTERS.search(site)
	):
		raise ValueError(f"{label} {site!r} is not a site folder name")


# Apps ----------------------------------------------------------------------------------------


def _apps_in_backup(manifest: Manifest) -> list[InstalledApp]:
	"""The backup's apps in install order, frappe first (Frappe always installs it first)."""
	apps = list(manifest.apps)
	frappe_app = next((app for app in apps if app.name == "frappe"), None)
	if frappe_app:
		apps.remove(frappe_app)
	else:
		frappe_app = InstalledApp(name="frappe", version=manifest.frappe_version)
	if not frappe_app.version and manifest.frappe_version:
		frappe_app = InstalledApp(
			name="frappe", version=manifest.frappe_version, branch=frappe_app.branch, commit=frappe_app.commit
		)
	return [frappe_app, *apps]


def _known_branch(app: InstalledApp) -> str:
	# `git rev-parse --abbrev-ref HEAD` answers HEAD on a detached checkout: no branch to name.
	return app.branch if app.branch and app.branch != "HEAD" else ""


def _get_app_fix(app: InstalledApp, status: str) -> str:
	if status == STATUS_MISSING:
		branch = _known_branch(app)
		return shlex.join(["bench", "get-app", app.name, *(["--branch", branch] if branch else [])])
	if status == STATUS_DOWNGRADE:
		return shlex.join(["bench", "update", "--pull", "--requirements", "--build", "--apps", app.name])
	return ""


def check_apps(manifest: Manifest, bench_apps: dict[str, str] | None) -> list[AppCheck]:
	"""Compare the backup's apps with the bench's: each must be there at the same or a newer version."""
	checks = []
	for app in _apps_in_backup(manifest):
		if bench_apps is None:
			status, bench_version = STATUS_UNKNOWN, ""
		elif app.name not in bench_apps:
			status, bench_version = STATUS_MISSING, ""
		else:
			bench_version = bench_apps[app.name] or ""
			comparison = compare_versions(bench_version, app.version)
			if comparison is None:
				status = STATUS_UNKNOWN
			elif comparison < 0:
				status = STATUS_DOWNGRADE
			else:
				status = STATUS_OK
		checks.append(
			AppCheck(
				app=app.name,
				backup_version=app.version,
				bench_version=bench_version,
				status=status,
				fix=_get_app_fix(app, status),
			)
		)
	return checks


def _describe_app_problems(manifest: Manifest, checks: list[AppCheck]) -> list[str]:
	apps = {app.name: app for app in _apps_in_backup(manifest)}
	warnings = []
	for check in checks:
		app = apps[check.app]
		where = f" (branch {_known_branch(app)})" if _known_branch(app) else ""
		commit = f"; the backup ran commit {app.commit}" if app.commit else ""
		if check.status == STATUS_MISSING:
			warnings.append(
				f"App {check.app} is installed on the backed-up site but not in this bench. Get it first: "
				f"{check.fix} (use the app's git URL instead of its name when it is not hosted by Frappe){commit}."
			)
		elif check.status == STATUS_DOWNGRADE:
			consequence = (
				"bench restore stops at its downgrade question (the plan gives it no input) unless you set "
				f"{ENV_ALLOW_DOWNGRADE}=1, which runs it with --force"
				if check.app == "frappe"
				else "migrate would run older code against a newer schema"
			)
			warnings.append(
				f"App {check.app} is {check.bench_version} in this bench but {check.backup_version} in the "
				f"backup{where}: {consequence}. Upgrade it in this bench to {check.backup_version} or newer first, "
				f"e.g. {check.fix}{commit}."
			)
		elif check.status == STATUS_UNKNOWN and check.bench_version:
			warnings.append(
				f"Cannot compare the versions of {check.app} (bench {check.bench_version!r}, backup "
				f"{check.backup_version!r}): check that the bench's copy is not older than the backup's."
			)
		elif check.status == STATUS_OK and check.bench_version:
			if _major(check.bench_version) != _major(check.backup_version):
				warnings.append(
					f"App {check.app} moves from {check.backup_version} to {check.bench_version}: migrate runs "
					"a major-version upgrade, which takes long and may need the app's upgrade notes."
				)
	return warnings


def _major(version: str) -> int | None:
	parsed = parse_version(version)
	return parsed[0][0] if parsed else None


# Paths ---------------------------------------------------------------------------------------


def _prepared_name(artifact: Artifact) -> str:
	name = artifact.file_name.lower()
	if name.endswith(".gpg"):
		name = name[: -len(".gpg")]
	if artifact.kind == DATABASE:
		suffix = ".sql.gz" if name.endswith(".gz") else ".sql"
	elif artifact.kind in (PUBLIC_FILES, PRIVATE_FILES):
		suffix = ".tgz" if name.endswith((".tgz", ".gz")) else ".tar"
	else:
		suffix = ".json"
	return PREPARED_BASE_NAMES[artifact.kind] + suffix


def _is_usable_by_frappe(artifact: Artifact, path: str) -> bool:
	if not is_shell_safe(path):
		return False
	if artifact.kind in (PUBLIC_FILES, PRIVATE_FILES):
		return artifact.file_name.endswith(FRAPPE_ARCHIVE_SUFFIXES)
	return True


def _resolve_paths(manifest: Manifest, options: RestoreOptions, restored_kinds: list[str]) -> _Paths:
	bench = os.path.normpath(options.bench_path)

	def absolute(path: str) -> str:
		return os.path.normpath(path if os.path.isabs(path) else os.path.join(bench, path))

	work_dir = (
		absolute(options.download_dir)
		if options.download_dir
		else os.path.join(bench, DEFAULT_WORK_FOLDER, manifest.backup_id)
	)
	source_dir = absolute(options.local_dir) if options.local_dir else work_dir
	prepared_dir = os.path.join(work_dir, PREPARED_FOLDER)

	sources, restore_paths, decrypt, links = {}, {}, [], []
	for kind in restored_kinds:
		artifact = manifest.artifact(kind)
		if not artifact:
			continue
		source = os.path.join(source_dir, artifact.file_name)
		sources[kind] = source
		if artifact.encrypted or (manifest.encrypted and _looks_encrypted(artifact)):
			decrypt.append(artifact)
			restore_paths[kind] = os.path.join(prepared_dir, _prepared_name(artifact))
		elif kind == SITE_CONFIG or _is_usable_by_frappe(artifact, source):
			restore_paths[kind] = source
		else:
			links.append(artifact)
			restore_paths[kind] = os.path.join(prepared_dir, _prepared_name(artifact))

	uses_work_dir = not options.local_dir or decrypt or links
	if uses_work_dir and not is_shell_safe(work_dir):
		field_name = "download_dir" if options.download_dir else "bench_path"
		raise ValueError(
			f"RestoreOptions.{field_name} gives the work folder {work_dir!r}, which Frappe's restore cannot use: "
			"it passes file paths through a shell unquoted. Set RestoreOptions.download_dir to a path made "
			"only of letters, digits and . _ - / characters."
		)
	return _Paths(bench, source_dir, work_dir, prepared_dir, sources, restore_paths, decrypt, links)


def _looks_encrypted(artifact: Artifact) -> bool:
	# Older manifests only flag the whole backup; Frappe's own encrypted files carry "-enc".
	return "-enc." in artifact.file_name


# Steps ---------------------------------------------------------------------------------------


def _guard(test: str, message: str) -> str:
	"""A command that stops the script (and prints why) when `test` fails, without closing a terminal."""
	return f"{test} || {{ printf '%s\\n' {shlex.quote(message)} >&2; false; }}"


def _snippet(arguments: list[str], code: str) -> str:
	return f"{BENCH_PYTHON} - {shlex.join(arguments)} <<'{SNIPPET_DELIMITER}'\n{code}{SNIPPET_DELIMITER}"


def build_restore_plan(manifest: Manifest, options: RestoreOptions) -> RestorePlan:
	"""Build the ordered steps, environment variables and warnings that restore one backup."""
	_validate(manifest, options)
	target = options.target_site
	new_site = options.new_site
	partial = manifest.partial
	restored_kinds = [DATABASE] if partial else [DATABASE, PUBLIC_FILES, PRIVATE_FILES, SITE_CONFIG]
	paths = _resolve_paths(manifest, options, restored_kinds)
	downloading = not options.local_dir
	app_checks = check_apps(manifest, options.bench_apps)

	plan = RestorePlan(
		backup_id=manifest.backup_id,
		site=manifest.site,
		target_site=target,
		new_site=new_site,
		app_checks=app_checks,
		created_at=manifest.created_at,
		partial=partial,
		encrypted=bool(paths.decrypt) or manifest.encrypted,
	)
	plan.warnings.extend(_describe_app_problems(manifest, app_checks))
	if not new_site and target != manifest.site:
		plan.warnings.append(
			f"This is a backup of {manifest.site} restored over the existing site {target}: "
			f"everything in {target} is replaced."
		)
	if partial:
		if any(manifest.artifact(kind) for kind in (PUBLIC_FILES, PRIVATE_FILES)):
			plan.warnings.append(
				"bench partial-restore only restores database tables: the file archives of this backup "
				"are verified but not restored."
			)

	plan.env_vars = _env_vars(manifest, options, paths, downloading)
	site_steps = _site_steps(manifest, options, paths, plan)
	plan.steps = [
		_bench_step(options, paths),
		_apps_step(app_checks, manifest),
		*([_download_step(manifest, options, paths)] if downloading else []),
		_verify_step(manifest, options, paths),
		*([_prepare_step(paths)] if paths.decrypt or paths.links else []),
		*site_steps,
	]
	logger.debug("Built a %s-step restore plan for backup %s", len(plan.steps), manifest.backup_id)
	return plan


def _env_vars(manifest: Manifest, options: RestoreOptions, paths: _Paths, downloading: bool) -> list[EnvVar]:
	env_vars = []
	if downloading:
		destination = options.source.destination_name or options.source.bucket
		env_vars += [
			EnvVar(ENV_ACCESS_KEY_ID, True, f"Access key id of the offsite destination {destination}."),
			EnvVar(
				ENV_SECRET_ACCESS_KEY, True, f"Secret access key of the offsite destination {destination}."
			),
			EnvVar(ENV_SESSION_TOKEN, False, "Session token, only for temporary credentials."),
		]
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
				f"{COMMON_CONFIG_PATH}; it is put there only while bench needs it, then the original file is put back.",
			)
		)
	if options.new_site:
		env_vars.append(
			EnvVar(
				ENV_ADMIN_PASSWORD,
				False,
				"Administrator password for bench new-site. Optional: the restore replaces it with the "
				"backup's Administrator password, so a random one is used when unset.",
			)
		)
	if not manifest.partial:
		env_vars.append(
			EnvVar(
				ENV_ALLOW_DOWNGRADE,
				False,
				"Set to 1 only to restore a backup taken on a newer Frappe than this bench's: bench restore "
				"then runs with --force, which also skips its check that the dump holds the __Auth table.",
			)
		)
	return env_vars


def _bench_step(options: RestoreOptions, paths: _Paths) -> PlanStep:
	target = options.target_site
	site_folder = f"sites/{target}"
	commands = [
		shlex.join(["cd", paths.bench]),
		_guard(
			f"[ -d sites ] && [ -x {BENCH_PYTHON} ]",
			f"{paths.bench} is not a bench folder (no sites/ or env/bin/python).",
		),
		_guard(
			"command -v bench >/dev/null", "The bench command is not on PATH: run this as the bench user."
		),
	]
	if options.new_site:
		commands.append(
			_guard(
				f"[ ! -e {shlex.quote(site_folder)} ]",
				f"{site_folder} already exists: choose another name for the new site, or restore into it "
				"as the same site.",
			)
		)
		recovery = (
			f"If a step fails after the site was created, drop the half-restored site "
			f"({shlex.join(['bench', 'drop-site', target, '--force', '--no-backup'])}) and start again."
		)
	else:
		commands.append(
			_guard(
				f"[ -f {shlex.quote(site_folder + '/site_config.json')} ]",
				f"Site {target} does not exist in this bench: restore the backup as a new site instead.",
			)
		)
		recovery = (
			"If a step fails after the restore began, the site may be half-restored: run the plan again "
			"from the start; it restores from the same files."
		)
	return PlanStep(
		key="bench",
		title="Work from the bench folder",
		explanation=(
			"Every command runs from the bench folder, as the user that owns the bench. Run the steps in "
			"order and never interrupt a restore: a stopped restore leaves a half-imported database. "
			+ recovery
		),
		commands=commands,
		on_failure="Nothing has changed yet: fix the cause and run the plan again.",
	)


def _apps_step(app_checks: list[AppCheck], manifest: Manifest) -> PlanStep:
	apps = {app.name: app for app in _apps_in_backup(manifest)}
	commands = []
	for check in app_checks:
		fix = check.fix or _get_app_fix(apps[check.app], STATUS_MISSING)
		commands.append(
			_guard(
				f"[ -d {shlex.quote('apps/' + check.app)} ]",
				f"App {check.app} ({check.backup_version or 'version unknown'} in the backup) is not in this "
				f"bench: get it with `{fix}`, then run the plan again.",
			)
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
		),
		commands=commands,
		warnings=step_warnings,
		on_failure="Nothing has changed yet: add or upgrade the app in this bench, then run the plan again.",
	)


def _download_step(manifest: Manifest, options: RestoreOptions, paths: _Paths) -> PlanStep:
	source = options.source
	# --name=value: a value starting with "-" (a bucket, a prefix) cannot be taken for an option.
	values = [("--bucket", source.bucket)]
	if source.endpoint_url:
		values.append(("--endpoint-url", source.endpoint_url))
	if source.region:
		values.append(("--region", source.region))
	values.append(("--prefix", source.prefix or ""))
	if source.addressing_style and source.addressing_style != "auto":
		values.append(("--addressing-style", source.addressing_style))
	values += [("--site", manifest.site), ("--backup-id", manifest.backup_id), ("--to", paths.work_dir)]
	arguments = [
		BENCH_PYTHON,
		"-m",
		OFFSITE_TOOL_MODULE,
		"download",
		*(f"{name}={value}" for name, value in values),
	]
	return PlanStep(
		key="download",
		title=f"Download the backup from {source.destination_name or source.bucket}",
		explanation=(
			"The download tool needs no site: it runs under the bench's python and takes its credentials "
			f"only from {ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY}, never from its command line."
		),
		commands=[shlex.join(["mkdir", "-p", paths.work_dir]), shlex.join(arguments)],
		on_failure="Nothing has changed yet: check the credentials and the network, then run the plan again.",
	)


def _verify_step(manifest: Manifest, options: RestoreOptions, paths: _Paths) -> PlanStep:
	command = (
		f"(cd {shlex.quote(paths.source_dir)} && sha256sum -c --strict) <<'{CHECKSUMS_DELIMITER}'\n"
		f"{sha256sum_lines(manifest)}{CHECKSUMS_DELIMITER}"
	)
	where = "downloaded" if not options.local_dir else "on this server"
	return PlanStep(
		key="verify",
		title="Verify the backup files",
		explanation=(
			f"Checks every file {where} against the sha256 recorded in the manifest when the backup was "
			"taken, so that a truncated or altered file is found before the site is touched."
		),
		commands=[command],
		on_failure=(
			"Nothing has changed yet. A file is missing or damaged: download it again, or use another backup."
		),
	)


def _prepare_step(paths: _Paths) -> PlanStep:
	commands = [
		shlex.join(["mkdir", "-p", paths.prepared_dir]),
		shlex.join(["chmod", "700", paths.prepared_dir]),
	]
	for artifact in paths.decrypt:
		output = paths.restore_paths[artifact.kind]
		arguments = [*GPG_DECRYPT_ARGS, "--output", output, "--decrypt", paths.sources[artifact.kind]]
		commands.append(f'{shlex.join(arguments)} <<<"${ENV_ENCRYPTION_KEY}"')
	for artifact in paths.links:
		commands.append(
			shlex.join(["ln", "-sf", "--", paths.sources[artifact.kind], paths.restore_paths[artifact.kind]])
		)
	parts = []
	if paths.decrypt:
		parts.append(
			"Decrypts the encrypted files into a folder only the bench user can read. The key goes to gpg "
			f"on stdin from ${ENV_ENCRYPTION_KEY}, so it is never on a command line, and bench restore gets "
			"plain files, so it is given no key either."
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


def _site_steps(
	manifest: Manifest, options: RestoreOptions, paths: _Paths, plan: RestorePlan
) -> list[PlanStep]:
	target = options.target_site
	new_site = options.new_site
	partial = manifest.partial
	root_flags = [f"--db-root-username={options.db_root_username}"] if options.db_root_username else []
	drop_command = shlex.join(["bench", "drop-site", target, "--force", "--no-backup"])
	if new_site:
		half_restored = (
			f"The new site {target} is half-restored: drop it ({drop_command}; it asks for the database "
			"root password unless root_password is in sites/common_site_config.json) and run the plan again."
		)
	else:
		half_restored = (
			f"{target} may be half-restored and stays in maintenance mode: run the plan again from the start "
			"(it restores from the same files). Do not turn maintenance mode off before a restore has finished."
		)

	steps = []
	if not partial:
		steps.append(_database_secrets_step(target, new_site))
	if new_site:
		steps.append(
			PlanStep(
				key="create_site",
				title=f"Create the new site {target}",
				explanation=(
					"Creates an empty site with its own database and site_config.json for the restore to "
					"replace. Apps are not installed here: bench restore drops and re-creates the database, "
					"and the restored database already lists the backup's apps. The database root password "
					"and Administrator password come from sites/common_site_config.json (previous step)."
				),
				commands=[shlex.join(["bench", "new-site", target, *root_flags]) + " </dev/null"],
				on_failure=(
					f"If sites/{target} was created, drop it ({drop_command}) and run the plan again; "
					"otherwise fix the cause and run the plan again."
				),
			)
		)
	else:
		steps.append(
			PlanStep(
				key="maintenance_on",
				title=f"Put {target} in maintenance mode",
				explanation=(
					"Stops users, background jobs and the scheduler from writing to a database that is about "
					"to be replaced. Frappe keeps maintenance_mode in site_config.json, which the restore does "
					"not touch, so it stays on until the last step turns it off."
				),
				commands=[shlex.join(["bench", "--site", target, "set-maintenance-mode", "on"])],
				on_failure="The site's data has not changed yet: fix the cause and run the plan again.",
			)
		)

	steps.append(_restore_step(manifest, options, paths, root_flags, half_restored))
	if not partial:
		steps.append(
			PlanStep(
				key="restore_common_config",
				title="Put back sites/common_site_config.json",
				explanation=(
					"The database root password is no longer needed: the original file goes back. The shell "
					"script also does this on exit if a step fails."
				),
				commands=[
					f'cp "$COMMON_CONFIG_ORIGINAL" {COMMON_CONFIG_PATH}',
					'rm -f "$COMMON_CONFIG_ORIGINAL"',
					"COMMON_CONFIG_ORIGINAL=",
				],
				on_failure=(
					f"Copy the saved original ({SAVED_COMMON_CONFIG_PATTERN}) back to {COMMON_CONFIG_PATH} "
					"by hand: it still holds the database root password."
				),
			)
		)
		site_keys = _site_keys_step(manifest, options, paths, half_restored)
		if site_keys:
			steps.append(site_keys)
		elif new_site:
			plan.warnings.append(
				"This backup has no site config file: copy encryption_key from the original site's "
				f"site_config.json into sites/{target}/site_config.json by hand, or the passwords stored in "
				"the restored site (email accounts, integrations) cannot be decrypted."
			)

	steps.append(
		PlanStep(
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
	)
	if not new_site:
		steps.append(
			PlanStep(
				key="maintenance_off",
				title=f"Take {target} out of maintenance mode",
				explanation=(
					"Bench restore keeps the scheduler as it was on this site before the restore (it reads "
					"enable_scheduler before replacing the database and writes it back afterwards), so only "
					"maintenance mode needs undoing."
				),
				commands=[shlex.join(["bench", "--site", target, "set-maintenance-mode", "off"])],
				on_failure=(
					"The restore is done. Turn maintenance mode off by hand: "
					+ shlex.join(["bench", "--site", target, "set-maintenance-mode", "off"])
				),
			)
		)
	elif options.enable_scheduler:
		steps.append(
			PlanStep(
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
		)
	else:
		plan.warnings.append(
			f"The scheduler of {target} stays disabled (bench new-site disables it and bench restore keeps "
			"that), so this copy sends no mail and runs no jobs, backups included. If it replaces the original "
			f"site, enable it: {shlex.join(['bench', '--site', target, 'scheduler', 'enable'])}"
		)
	if options.production:
		steps.append(_production_step(options))
	if paths.decrypt or paths.links:
		steps.append(
			PlanStep(
				key="cleanup",
				title="Delete the decrypted copies",
				explanation=(
					f"Removes {paths.prepared_dir}, which holds the decrypted (plain) files or links. The "
					"downloaded or local backup files are kept."
				),
				commands=[shlex.join(["rm", "-rf", "--", paths.prepared_dir])],
				on_failure=f"The restore is done. Delete {paths.prepared_dir} by hand.",
			)
		)
	return steps


def _database_secrets_step(target: str, new_site: bool) -> PlanStep:
	secrets = (
		"database root password and the new site's Administrator password"
		if new_site
		else ("database root password")
	)
	return PlanStep(
		key="database_secrets",
		title="Hand the database root password to Frappe without a command line",
		explanation=(
			f"bench {'new-site and restore need' if new_site else 'restore needs'} the {secrets}. Frappe reads "
			f"them from {COMMON_CONFIG_PATH} when no flag is given, so the original file is saved, "
			f"${ENV_DB_ROOT_PASSWORD}"
			+ (f" and ${ENV_ADMIN_PASSWORD} (random if unset)" if new_site else "")
			+ " are added to it unless it already has them, and the original is put back right after the "
			"restore (and on exit if a step fails). Nothing is added when the file already holds them."
		),
		commands=[
			_guard(
				f"! compgen -G '{SAVED_COMMON_CONFIG_PATTERN}' >/dev/null",
				f"An earlier restore left its saved copy of {COMMON_CONFIG_PATH} ({SAVED_COMMON_CONFIG_PATTERN}), "
				"or another restore is running on this bench: wait for it to finish. If none is running, the "
				"saved copy is the original file: move it back over the current one, then run the plan again.",
			),
			f"COMMON_CONFIG_ORIGINAL=$(mktemp {SAVED_COMMON_CONFIG_PATTERN[:-1]}XXXXXX)",
			f'cp {COMMON_CONFIG_PATH} "$COMMON_CONFIG_ORIGINAL"',
			_snippet([target, "1" if new_site else "0"], DATABASE_SECRETS_SNIPPET),
		],
		on_failure=(
			f"Nothing in the site has changed yet. Set {ENV_DB_ROOT_PASSWORD} (or put root_password in "
			f"{COMMON_CONFIG_PATH}) and run the plan again."
		),
	)


def _restore_step(
	manifest: Manifest, options: RestoreOptions, paths: _Paths, root_flags: list[str], half_restored: str
) -> PlanStep:
	target = options.target_site
	database = paths.restore_paths[DATABASE]
	if manifest.partial:
		return PlanStep(
			key="restore",
			title="Restore the partial backup's tables",
			explanation=(
				"bench partial-restore imports only the tables in this partial backup "
				+ (f"({', '.join(manifest.include_doctypes)}) " if manifest.include_doctypes else "")
				+ "into the existing site; every other table stays as it is. A partial backup cannot "
				"create a site. It connects as the site's own database user, so no root password is needed."
			),
			commands=[shlex.join(["bench", "--site", target, "partial-restore", database]) + " </dev/null"],
			on_failure=half_restored,
		)
	arguments = ["bench", "--site", target, "restore", database]
	if PUBLIC_FILES in paths.restore_paths:
		arguments += ["--with-public-files", paths.restore_paths[PUBLIC_FILES]]
	if PRIVATE_FILES in paths.restore_paths:
		arguments += ["--with-private-files", paths.restore_paths[PRIVATE_FILES]]
	arguments += root_flags
	with_files = PUBLIC_FILES in paths.restore_paths or PRIVATE_FILES in paths.restore_paths
	command = shlex.join(arguments) + f" ${{{ENV_ALLOW_DOWNGRADE}:+--force}} </dev/null"
	return PlanStep(
		key="restore",
		title="Restore the database and files" if with_files else "Restore the database",
		explanation=(
			f"Drops and re-creates the database of {target} from the dump"
			+ (
				", then unpacks the file archives over the site's files (files added since are kept)"
				if with_files
				else ""
			)
			+ ". Its input is /dev/null, so a prompt stops it instead of waiting: Frappe asks before restoring "
			f"a backup of a newer Frappe; set {ENV_ALLOW_DOWNGRADE}=1 to pass --force and go on anyway."
		),
		commands=[command],
		on_failure=half_restored,
	)


def _site_keys_step(
	manifest: Manifest, options: RestoreOptions, paths: _Paths, half_restored: str
) -> PlanStep | None:
	config_path = paths.restore_paths.get(SITE_CONFIG)
	if not config_path:
		return None
	target = options.target_site
	carry_backup_key = options.new_site and bool(paths.decrypt)
	arguments = [config_path, target, "1" if carry_backup_key else "0"]
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
			+ ". Other keys of the original config are listed by name only, for you to review."
		),
		commands=[_snippet(arguments, SITE_KEYS_SNIPPET)],
		on_failure=half_restored,
	)


def _production_step(options: RestoreOptions) -> PlanStep:
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


# Rendering -----------------------------------------------------------------------------------


def render_json(plan: RestorePlan) -> str:
	"""The plan as JSON, field for field."""
	return json.dumps(asdict(plan), indent=1)


def render_text(plan: RestorePlan) -> str:
	"""The plan for people: context, environment, app checks, warnings and numbered steps."""
	lines = [f"Restore plan for backup {plan.backup_id} of {plan.site}"]
	if plan.created_at:
		lines.append(f"  Taken: {plan.created_at}")
	mode = "new site" if plan.new_site else "existing site, replaced"
	lines.append(
		f"  Restores into: {plan.target_site} ({mode})" + (" - partial backup" if plan.partial else "")
	)
	lines.append("")
	if plan.env_vars:
		lines.append(
			"Environment variables (set them in the shell that runs the commands; values never appear in this plan):"
		)
		for env_var in plan.env_vars:
			need = "required" if env_var.required else "optional"
			lines.append(f"  {env_var.name} ({need}): {env_var.description}")
		lines.append("  Set one without leaving it in the shell history: read -rs NAME && export NAME")
		lines.append("")
	lines.append("Apps (backup -> this bench):")
	for check in plan.app_checks:
		bench_version = check.bench_version or "-"
		fix = f"  fix: {check.fix}" if check.fix else ""
		lines.append(f"  {check.app}: {check.backup_version or '?'} -> {bench_version} [{check.status}]{fix}")
	lines.append("")
	if plan.warnings:
		lines.append("Warnings:")
		lines.extend(_wrap(warning, "  - ", "    ") for warning in plan.warnings)
		lines.append("")
	lines.append(
		"Steps. The shell script rendering holds the same commands, ready to run unattended. Commands are"
	)
	lines.append(
		"indented here for reading: remove the indentation when pasting (heredoc ends must start a line)."
	)
	lines.append("")
	for number, step in enumerate(plan.steps, start=1):
		lines.append(f"{number}. {step.title}")
		if step.explanation:
			lines.append(_wrap(step.explanation, "   ", "   "))
		for warning in step.warnings:
			lines.append(_wrap(warning, "   Warning: ", "   "))
		for command in step.commands:
			lines.extend("      " + line for line in command.split("\n"))
		if step.on_failure:
			lines.append(_wrap(step.on_failure, "   If this step fails: ", "   "))
		lines.append("")
	return "\n".join(lines)


def _wrap(text: str, first_indent: str, indent: str) -> str:
	return textwrap.fill(
		text, width=100, initial_indent=first_indent, subsequent_indent=indent, break_on_hyphens=False
	)


def _comment(text: str) -> str:
	# A newline in a site name or version must not end the comment and start a command.
	return "# " + CONTROL_CHARACTERS.sub("?", text)


def render_shell(plan: RestorePlan) -> str:
	"""The plan as a bash script that runs unattended and stops at the first failing step."""
	apps = ", ".join(f"{check.app} {check.backup_version}".strip() for check in plan.app_checks)
	total = len(plan.steps)
	lines = [
		"#!/usr/bin/env bash",
		_comment("Restore script generated by Backup Manager"),
		_comment(f"Backup:  {plan.backup_id}"),
		_comment(f"Site:    {plan.site}"),
		_comment(f"Taken:   {plan.created_at}"),
		_comment(
			f"Target:  {plan.target_site} ({'new site' if plan.new_site else 'existing site, replaced'})"
		),
		_comment(f"Apps:    {apps}"),
		_comment(
			"Environment: "
			+ (
				", ".join(
					f"{env_var.name} ({'required' if env_var.required else 'optional'})"
					for env_var in plan.env_vars
				)
				or "none"
			)
		),
		"#",
		_comment("Run it as the bench user; it needs no input. Never interrupt it while it restores."),
	]
	for warning in plan.warnings:
		lines.append(_comment(f"Warning: {warning}"))
	lines += [
		"set -euo pipefail",
		"",
		"CURRENT_STEP='before the first step'",
		"RECOVERY='Nothing has changed yet: fix the cause and run this script again.'",
		"COMMON_CONFIG_ORIGINAL=",
		"on_exit() {",
		"\tlocal status=$?",
		'\tif [ -n "$COMMON_CONFIG_ORIGINAL" ] && [ -f "$COMMON_CONFIG_ORIGINAL" ]; then',
		f'\t\tcp "$COMMON_CONFIG_ORIGINAL" {COMMON_CONFIG_PATH} && rm -f "$COMMON_CONFIG_ORIGINAL"',
		f"\t\techo 'Put back the original {COMMON_CONFIG_PATH}.' >&2",
		"\tfi",
		'\tif [ "$status" -ne 0 ]; then',
		'\t\tprintf \'Restore stopped at step %s.\\n%s\\n\' "$CURRENT_STEP" "$RECOVERY" >&2',
		"\tfi",
		"}",
		"trap on_exit EXIT",
		"trap 'exit 130' INT TERM HUP",
		"",
	]
	for env_var in plan.env_vars:
		if env_var.required:
			lines += [
				f'if [ -z "${{{env_var.name}:-}}" ]; then',
				f"\tprintf '%s\\n' {shlex.quote(f'Set the environment variable {env_var.name}: {env_var.description}')} >&2",
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
	lines += [
		"",
		"CURRENT_STEP='done'",
		f"printf '%s\\n' {shlex.quote(f'==> Backup {plan.backup_id} is restored into {plan.target_site}.')}",
		"",
	]
	return "\n".join(lines)
