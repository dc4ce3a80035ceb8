"""List, verify and download offsite backups without a working site (no frappe import).

For the day the site is gone: run it with the bench's Python (or any Python with boto3),

	AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\
	python -m backup_manager.core.offsite_tool list --bucket B --endpoint-url U --site S
	python -m backup_manager.core.offsite_tool download --bucket B ... --site S --backup-id ID --to DIR

	python -m backup_manager.core.offsite_tool list --type sftp --host H --user U --base-folder F \\
		--host-key "ssh-ed25519 AAAA..." --site S          (or --host-key-fingerprint SHA256:...)
	python -m backup_manager.core.offsite_tool list --type folder --folder /mnt/backups --site S

Credentials come only from environment variables, never from the command line, where any user
could read them in the process list: for S3 the standard AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (AWS_DEFAULT_REGION and AWS_ENDPOINT_URL are honoured
too); for SFTP SFTP_PRIVATE_KEY_FILE (a key file only you can read), SFTP_PRIVATE_KEY (the key
itself), SFTP_KEY_PASSPHRASE and SFTP_PASSWORD. The host key is public, so it is an argument.

The bucket is untrusted: a manifest is only believed when it verifies with the site's manifest
key (BACKUP_MANIFEST_KEY, the site's backup_manager_manifest_key) and names the site and backup
asked for. --trust-unverified reads one anyway (older unsigned backups), with a loud warning.
Exit status: 0 when it worked, 1 on failure (2 for a command line argparse rejects).
"""

import argparse
import os
import re
import sys
from collections.abc import Sequence

from backup_manager.core.checksums import format_size
from backup_manager.core.errors import BackupManagerError, InvalidPolicy
from backup_manager.core.manifest import (
	ENV_MANIFEST_KEY,
	VERIFIED,
	describe_authentication,
	escape_control_characters,
)
from backup_manager.core.offsite import (
	CHECK_EXISTS,
	TrustedManifest,
	download_backup,
	list_remote_backups,
	read_trusted_manifest,
	verify_remote_backup,
)
from backup_manager.core.storage import (
	AMAZON_S3,
	DEFAULT_SFTP_PORT,
	OTHER_S3_COMPATIBLE,
	STORAGE_FOLDER,
	STORAGE_S3,
	STORAGE_SFTP,
	FolderConfig,
	S3Config,
	SFTPConfig,
	StorageBackend,
	StorageConfig,
	fetch_host_key,
	get_backend,
)

VERSION_PATTERN = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)
TYPE_S3 = "s3"
TYPE_SFTP = "sftp"
TYPE_FOLDER = "folder"
# --type values and the Backup Destination "Type" they stand for.
STORAGE_TYPE_NAMES = {TYPE_S3: STORAGE_S3, TYPE_SFTP: STORAGE_SFTP, TYPE_FOLDER: STORAGE_FOLDER}
ENV_SFTP_PASSWORD = "SFTP_PASSWORD"
ENV_SFTP_PRIVATE_KEY = "SFTP_PRIVATE_KEY"
ENV_SFTP_PRIVATE_KEY_FILE = "SFTP_PRIVATE_KEY_FILE"
ENV_SFTP_KEY_PASSPHRASE = "SFTP_KEY_PASSPHRASE"
EXIT_OK = 0
EXIT_FAILURE = 1
RED = "\033[31m"
RESET = "\033[0m"


class ToolError(BackupManagerError):
	"""A problem with how the tool was called, e.g. missing credentials."""


def build_parser() -> argparse.ArgumentParser:
	parser = argparse.ArgumentParser(
		prog="python -m backup_manager.core.offsite_tool",
		description="List, verify and download Backup Manager offsite backups without a site. "
		"Credentials are read from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).",
	)
	commands = parser.add_subparsers(dest="command", required=True)
	for name, help_text in (
		("list", "list the offsite backups of a site"),
		("verify", "check that a backup's files are offsite with the right size and checksum"),
		("download", "download a backup and verify every file's sha256"),
		("restore-plan", "print the commands that restore a backup, from its manifest in the bucket"),
	):
		command = commands.add_parser(name, help=help_text)
		command.add_argument(
			"--type", choices=tuple(STORAGE_TYPE_NAMES), default=TYPE_S3, dest="storage_type"
		)
		command.add_argument("--bucket", default="", help="S3: the bucket")
		command.add_argument("--host", default="", help="SFTP: the server")
		command.add_argument("--port", type=int, default=DEFAULT_SFTP_PORT, help="SFTP: the port")
		command.add_argument("--user", default="", help="SFTP: the user")
		command.add_argument("--base-folder", default="", help="SFTP: the destination's Base Folder")
		command.add_argument("--host-key", default="", help="SFTP: the accepted host key, '<type> <base64>'")
		command.add_argument(
			"--host-key-fingerprint", default="", help="SFTP: or the accepted key's fingerprint, SHA256:..."
		)
		command.add_argument("--folder", default="", help="folder: the mounted folder, e.g. /mnt/backups")
		command.add_argument(
			"--no-mount-check", action="store_true", help="folder: do not require a mount point"
		)
		command.add_argument("--endpoint-url", default="", help="default: AWS_ENDPOINT_URL, else Amazon S3")
		command.add_argument("--region", default="", help="default: AWS_DEFAULT_REGION, else us-east-1")
		command.add_argument("--prefix", default="", help="the policy's Prefix, if it has one")
		command.add_argument("--site", required=True, help="the site name, e.g. erp.example.com")
		command.add_argument("--addressing-style", choices=("auto", "path", "virtual"), default="auto")
		if name in ("verify", "download", "restore-plan"):
			command.add_argument("--backup-id", required=True)
			command.add_argument(
				"--trust-unverified",
				action="store_true",
				help=f"use a manifest that does not verify with {ENV_MANIFEST_KEY} (older unsigned backups); "
				"only for a bucket no one else can write to",
			)
		if name == "restore-plan":
			command.add_argument(
				"--new-site", default="", help="restore into this new site (default: the same site)"
			)
			command.add_argument(
				"--bench-path", default="", help="the bench to restore on (default: the current folder)"
			)
			command.add_argument(
				"--format", choices=("text", "json", "sh"), default="text", dest="output_format"
			)
			command.add_argument(
				"--production", action="store_true", help="add the nginx/supervisor restart step"
			)
		if name == "verify":
			command.add_argument("--read-back", action="store_true", help="download and hash every file")
		if name == "download":
			command.add_argument("--to", required=True, dest="to_dir", help="folder to download into")
	return parser


def config_from(arguments: argparse.Namespace, environ: dict) -> StorageConfig:
	"""Build the storage configuration from arguments and environment variables (the secrets)."""
	if arguments.storage_type == TYPE_SFTP:
		return sftp_config_from(arguments, environ)
	if arguments.storage_type == TYPE_FOLDER:
		if not arguments.folder:
			raise ToolError("Pass --folder, the folder the destination writes to (e.g. /mnt/backups).")
		config = FolderConfig(
			path=arguments.folder, prefix=arguments.prefix, must_be_mount_point=not arguments.no_mount_check
		)
		_validate(config)
		return config
	if not arguments.bucket:
		raise ToolError("Pass --bucket (or --type sftp / --type folder for other destinations).")
	access_key_id = environ.get("AWS_ACCESS_KEY_ID", "")
	secret_access_key = environ.get("AWS_SECRET_ACCESS_KEY", "")
	if not access_key_id or not secret_access_key:
		raise ToolError(
			"Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (never on the command line)."
		)
	endpoint_url = arguments.endpoint_url or environ.get("AWS_ENDPOINT_URL", "")
	return S3Config(
		provider=OTHER_S3_COMPATIBLE if endpoint_url else AMAZON_S3,
		endpoint_url=endpoint_url,
		region=arguments.region or environ.get("AWS_DEFAULT_REGION", "") or environ.get("AWS_REGION", ""),
		bucket=arguments.bucket,
		prefix=arguments.prefix,
		addressing_style=arguments.addressing_style,
		access_key_id=access_key_id,
		secret_access_key=secret_access_key,
		session_token=environ.get("AWS_SESSION_TOKEN", ""),
		# Reading needs no checksum headers, and an unknown provider might reject them.
		additional_checksums=False,
	)


def sftp_config_from(arguments: argparse.Namespace, environ: dict) -> SFTPConfig:
	"""SFTP settings from arguments; key, passphrase and password only from the environment."""
	config = SFTPConfig(
		host=arguments.host,
		port=arguments.port,
		username=arguments.user,
		base_folder=arguments.base_folder,
		prefix=arguments.prefix,
		password=environ.get(ENV_SFTP_PASSWORD, ""),
		private_key=environ.get(ENV_SFTP_PRIVATE_KEY, ""),
		private_key_file=environ.get(ENV_SFTP_PRIVATE_KEY_FILE, ""),
		private_key_passphrase=environ.get(ENV_SFTP_KEY_PASSPHRASE, ""),
		host_key=arguments.host_key,
	)
	_validate(config)
	if not (config.password or config.private_key or config.private_key_file):
		raise ToolError(
			f"Set {ENV_SFTP_PRIVATE_KEY_FILE} (or {ENV_SFTP_PRIVATE_KEY}, or {ENV_SFTP_PASSWORD}) in the "
			"environment (never on the command line)."
		)
	if not config.host_key:
		if not arguments.host_key_fingerprint:
			raise ToolError(
				"Pass the server's accepted host key (--host-key) or its fingerprint (--host-key-fingerprint "
				"SHA256:...), as shown on the Backup Destination: an unknown server key is never trusted."
			)
		offered, offered_fingerprint = fetch_host_key(config)
		if offered_fingerprint != arguments.host_key_fingerprint.strip():
			raise ToolError(
				f"{config.host} offers host key {offered_fingerprint}, not {arguments.host_key_fingerprint}: "
				"refused. Check the fingerprint with the server's administrator."
			)
		config.host_key = offered
	return config


def _validate(config) -> None:
	try:
		config.validate()
	except InvalidPolicy as exc:
		raise ToolError(str(exc)) from exc


def run_list(backend: StorageBackend, arguments: argparse.Namespace) -> int:
	key = arguments.manifest_key
	backups = list_remote_backups(backend, prefix=arguments.prefix, site=arguments.site, hmac_key=key)
	if not backups:
		print(f"No backups of {arguments.site} in {backend.describe()}")
		return EXIT_OK
	rows = [("BACKUP ID", "CREATED (UTC)", "COMPLETE", "AUTHENTIC", "SIZE", "LOCKED UNTIL", "APPS")]
	for backup in backups:
		apps = (
			", ".join(f"{app.name} {app.version}" for app in backup.manifest.apps) if backup.manifest else ""
		)
		rows.append(
			(
				backup.backup_id,
				f"{backup.created_at:%Y-%m-%d %H:%M:%S}",
				"yes" if backup.complete else f"no: {backup.problem}",
				"yes"
				if backup.authentication == VERIFIED
				else f"NO ({backup.authentication or 'no manifest'})",
				format_size(backup.size),
				f"{backup.locked_until:%Y-%m-%d}" if backup.locked_until else "",
				# Values from the bucket: a newline or escape sequence must not fake a row.
				escape_control_characters(apps),
			)
		)
	widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
	for row in rows:
		print(
			"  ".join(value.ljust(width) for value, width in zip(row[:-1], widths, strict=True))
			+ "  "
			+ row[-1]
		)
	complete = sum(1 for backup in backups if backup.complete)
	authentic = sum(1 for backup in backups if backup.authentication == VERIFIED)
	print(f"{len(backups)} backup(s), {complete} complete, {authentic} authentic, in {backend.describe()}")
	if not key:
		print_error(f"Warning: {ENV_MANIFEST_KEY} is not set, so no manifest could be authenticated.")
	return EXIT_OK


def read_manifest_for(backend: StorageBackend, arguments: argparse.Namespace) -> TrustedManifest:
	"""The backup's manifest, refused unless it is authentic (or --trust-unverified, loudly)."""
	trusted = read_trusted_manifest(
		backend,
		prefix=arguments.prefix,
		site=arguments.site,
		backup_id=arguments.backup_id,
		hmac_key=arguments.manifest_key,
		trust_unverified=arguments.trust_unverified,
	)
	manifest = trusted.manifest
	if trusted.authentication != VERIFIED or (manifest.site, manifest.backup_id) != (
		arguments.site,
		arguments.backup_id,
	):
		print_error(
			"WARNING: --trust-unverified: the manifest of this backup is NOT authenticated ("
			+ describe_authentication(trusted.authentication)
			+ "). Anyone who could write to the bucket could have made it, and the files it lists. "
			"Continue only if you know where this backup comes from."
		)
	return trusted


def run_verify(backend: StorageBackend, arguments: argparse.Namespace) -> int:
	manifest = read_manifest_for(backend, arguments).manifest
	checks = verify_remote_backup(
		backend, manifest, prefix=arguments.prefix, site=arguments.site, read_back=arguments.read_back
	)
	for check in checks:
		state = "ok" if check.ok else "FAILED"
		print(f"{state:6}  {check.kind:14} {check.check:9} {check.key}: {check.message}")
	failed = [check for check in checks if not check.ok]
	if failed:
		missing = sum(1 for check in failed if check.check == CHECK_EXISTS)
		raise ToolError(
			f"{len(failed)} check(s) failed ({missing} missing file(s)) for backup {arguments.backup_id}."
		)
	print(f"Backup {arguments.backup_id} verified: {len(checks)} checks passed.")
	return EXIT_OK


def run_download(backend: StorageBackend, arguments: argparse.Namespace) -> int:
	trusted = read_manifest_for(backend, arguments)
	manifest = download_backup(
		backend,
		prefix=arguments.prefix,
		site=arguments.site,
		backup_id=arguments.backup_id,
		to_dir=arguments.to_dir,
		manifest=trusted.manifest,
	)
	for artifact in manifest.artifacts:
		path = os.path.join(arguments.to_dir, artifact.file_name)
		print(f"{path}  {format_size(artifact.size)}  sha256 {artifact.sha256} verified")
	print(os.path.join(arguments.to_dir, "manifest.json"))
	print(
		f"Downloaded backup {manifest.backup_id} of {manifest.site} "
		f"({'encrypted with gpg' if manifest.encrypted else 'not encrypted'})."
	)
	return EXIT_OK


def read_bench_apps(bench_path: str) -> dict[str, str]:
	"""The apps in a bench folder with their versions, read from apps/<app>/<app>/__init__.py (no import)."""
	apps = {}
	apps_dir = os.path.join(bench_path, "apps")
	if not os.path.isdir(apps_dir):
		return apps
	for app in sorted(os.listdir(apps_dir)):
		init_path = os.path.join(apps_dir, app, app, "__init__.py")
		if not os.path.isfile(init_path):
			continue
		with open(init_path, encoding="utf-8", errors="replace") as handle:
			match = VERSION_PATTERN.search(handle.read())
		apps[app] = match.group(1) if match else ""
	return apps


def run_restore_plan(backend: StorageBackend, arguments: argparse.Namespace) -> int:
	"""Build the restore plan of an offsite backup from its manifest, for the bench given."""
	from backup_manager.core.restore_plan import (
		RestoreOptions,
		build_restore_plan,
		render_json,
		render_shell,
		render_text,
	)

	manifest = read_manifest_for(backend, arguments).manifest
	bench_path = os.path.abspath(arguments.bench_path or os.getcwd())
	options = RestoreOptions(
		target_site=arguments.new_site or arguments.site,
		new_site=bool(arguments.new_site),
		bench_path=bench_path,
		source=source_from(backend.config, arguments),
		bench_apps=read_bench_apps(bench_path),
		production=arguments.production,
	)
	try:
		plan = build_restore_plan(manifest, options)
	except ValueError as exc:
		raise ToolError(str(exc)) from exc
	renderer = {"text": render_text, "json": render_json, "sh": render_shell}[arguments.output_format]
	sys.stdout.write(renderer(plan))
	return EXIT_OK


def source_from(config: StorageConfig, arguments: argparse.Namespace):
	"""Where the restore plan downloads from: the same destination this tool was pointed at."""
	from backup_manager.core.restore_plan import OffsiteSource

	# No Desk name here: the plan names the destination by its bucket, host or folder.
	return OffsiteSource.from_config(
		config, destination_name="", prefix=arguments.prefix, addressing_style=arguments.addressing_style
	)


COMMANDS = {
	"list": run_list,
	"verify": run_verify,
	"download": run_download,
	"restore-plan": run_restore_plan,
}


def print_error(message: str) -> None:
	if sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
		message = f"{RED}{message}{RESET}"
	print(message, file=sys.stderr)


def main(argv: Sequence[str] | None = None, environ: dict | None = None) -> int:
	"""Run the tool; return the exit status instead of exiting, so tests can call it."""
	arguments = build_parser().parse_args(argv)
	environ = dict(os.environ if environ is None else environ)
	# The key is a secret: from the environment only, never a command-line argument.
	arguments.manifest_key = environ.get(ENV_MANIFEST_KEY, "")
	try:
		backend = get_backend(config_from(arguments, environ))
		try:
			return COMMANDS[arguments.command](backend, arguments)
		finally:
			backend.close()
	except BackupManagerError as exc:
		print_error(f"Error: {exc}")
		return EXIT_FAILURE
	except KeyboardInterrupt:
		print_error("Interrupted.")
		return EXIT_FAILURE


if __name__ == "__main__":
	sys.exit(main())
