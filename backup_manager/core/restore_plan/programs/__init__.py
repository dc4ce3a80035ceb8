"""Programs a restore plan runs under the bench's python, fed on stdin (`python - ARGS <<'PY'`).

They are real files so that linters and formatters read them, and are loaded as text. Never
import them: they act on sys.argv and the bench's sites/ folder as soon as they run. Their text
goes into every rendered plan verbatim, so keep them free of a line holding only the heredoc
delimiter (constants.SNIPPET_DELIMITER).
"""

from importlib import resources


def read_program(name: str) -> str:
	"""The source text of the program `<name>.py` in this folder."""
	return resources.files(__name__).joinpath(f"{name}.py").read_text(encoding="utf-8")


# Reads the secrets from the environment and writes them where Frappe looks when no
# --db-root-password / --admin-password flag is given.
DATABASE_SECRETS_SNIPPET = read_program("database_secrets")
# Copies the original site's encryption_key (which decrypts the Password fields of the restored
# database) without ever printing it.
SITE_KEYS_SNIPPET = read_program("site_keys")
# Hashes the backup files in parallel threads at hashlib speed, or, after a download that
# verified every file, compares the downloaded manifest's sha256 with the plan's.
VERIFY_FILES_SNIPPET = read_program("verify_files")
# Checks every member of the files archives, then unpacks them with plain GNU tar.
RESTORE_FILES_SNIPPET = read_program("restore_files")
# What `bench set-maintenance-mode` writes, without starting bench.
MAINTENANCE_MODE_SNIPPET = read_program("maintenance_mode")
# bench restore's downgrade check, for a site created by bench new-site --source-sql.
FRAPPE_VERSION_SNIPPET = read_program("frappe_version")
