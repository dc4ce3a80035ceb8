"""Names and fixed values of restore plans: environment variables, paths, delimiters, patterns."""

import re

from backup_manager.core.manifest import DATABASE, PRIVATE_FILES, PUBLIC_FILES, SITE_CONFIG

ENV_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
ENV_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
ENV_SESSION_TOKEN = "AWS_SESSION_TOKEN"
# Read by core.offsite_tool for SFTP destinations; keep equal to its ENV_SFTP_* names.
ENV_SFTP_PRIVATE_KEY_FILE = "SFTP_PRIVATE_KEY_FILE"
ENV_SFTP_PRIVATE_KEY = "SFTP_PRIVATE_KEY"
ENV_SFTP_KEY_PASSPHRASE = "SFTP_KEY_PASSPHRASE"
ENV_SFTP_PASSWORD = "SFTP_PASSWORD"
SOURCE_SFTP = "SFTP"
SOURCE_FOLDER = "Folder"
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
# The shell variable holding the process id of the files being unpacked beside a database restore.
FILES_RESTORE_PID = "FILES_RESTORE_PID"
# Read by backup_manager.jobs.backup_before_migrate (the before_migrate hook); keep the two equal.
SKIP_MIGRATE_BACKUP_ENV = "BACKUP_MANAGER_SKIP_MIGRATE_BACKUP"
# The saved original sits next to the live file (same filesystem, same owner) under a dot name,
# with the original's mode; it goes back with an atomic rename. A killed script leaves it there:
# the next run (holding RESTORE_LOCK_PATH, so no restore is running) puts it back.
SAVED_COMMON_CONFIG_PATTERN = "sites/.common_site_config.json.*"
RESTORE_LOCK_PATH = "sites/.backup-manager-restore.lock"
# Temporary files a step writes before renaming them over a config (0600, they may hold secrets).
CONFIG_TEMP_PATTERN = "sites/.backup-manager-tmp-* sites/*/.backup-manager-tmp-*"
CONFIG_TEMP_PREFIX = ".backup-manager-tmp-"
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
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
