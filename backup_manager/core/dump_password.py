"""Keep the site's database password off the command lines of a backup's dump.

Frappe's BackupGenerator.take_dump runs `bash -c "set -o pipefail; mariadb-dump ... --password=SECRET
... | gzip >> dump.sql.gz"`. mariadb-dump blanks its own copy of the argument, but the bash
process keeps the whole command line for the length of the dump, and any local user can read it
in the process list (`ps -ef`, /proc/PID/cmdline).

For the duration of the dump, a run hands the password to the dump program through its standard
environment variable instead (MYSQL_PWD for mariadb-dump and mysqldump, PGPASSWORD for pg_dump)
and gives the generator an empty password, which Frappe then leaves off the command. A process's
environment is readable only by its own user and root.

mariadb-dump prefers a password from an option file (~/.my.cnf, /etc/mysql/...) to MYSQL_PWD.
Where an option file sets one for it, the password is left on the command line as Frappe puts it,
so that the dump still connects with the site's own password, and a warning says why.
"""

import contextlib
import os
import re
import shutil
import subprocess

MARIADB = "mariadb"
POSTGRES = "postgres"
PASSWORD_VARIABLES = {MARIADB: "MYSQL_PWD", POSTGRES: "PGPASSWORD"}
# The programs Frappe's get_command looks up for a MariaDB dump, in its order.
MARIADB_DUMP_PROGRAMS = ("mariadb-dump", "mysqldump")
PRINT_DEFAULTS_TIMEOUT_SECONDS = 10
# --password=..., --password, or -pSECRET among the options mariadb-dump reads from option files.
PASSWORD_OPTION = re.compile(r"(?:^|\s)(?:--password\b|-p)")


def option_files_set_password() -> bool:
	"""True if an option file gives mariadb-dump a password, which would win over MYSQL_PWD.

	`--print-defaults` prints the options the program reads from its option files, and exits
	without connecting. When it cannot be run, True: Frappe's own way is kept.
	"""
	program = next(filter(None, (shutil.which(name) for name in MARIADB_DUMP_PROGRAMS)), None)
	if program is None:
		# Frappe reports the missing program itself when it builds the command.
		return False
	try:
		result = subprocess.run(
			[program, "--print-defaults"],
			capture_output=True,
			text=True,
			timeout=PRINT_DEFAULTS_TIMEOUT_SECONDS,
			check=False,
		)
	except (OSError, subprocess.TimeoutExpired):
		return True
	return result.returncode != 0 or bool(PASSWORD_OPTION.search(result.stdout))


@contextlib.contextmanager
def password_in_environment(generator, *, warn=None):
	"""During the block, `generator` (a BackupGenerator) dumps with its password in the environment.

	Yields True when the password was moved off the command line, False when Frappe's own way was
	kept (no password, an unknown database type, or an option file that sets one; `warn` is then
	called with the reason).
	"""
	password = getattr(generator, "password", None)
	db_type = getattr(generator, "db_type", None) or MARIADB
	variable = PASSWORD_VARIABLES.get(db_type)
	if not password or variable is None:
		yield False
		return
	if db_type == MARIADB and option_files_set_password():
		if warn:
			warn(
				"An option file (~/.my.cnf or /etc/mysql) sets a password for mariadb-dump, which would "
				"override the site's: the dump gets the site's database password on its command line, "
				"where local users can read it while it runs. Remove password= from the option file's "
				"[client] or [mysqldump] group to keep it off."
			)
		yield False
		return
	previous = os.environ.get(variable)
	os.environ[variable] = password
	generator.password = ""
	try:
		yield True
	finally:
		generator.password = password
		if previous is None:
			os.environ.pop(variable, None)
		else:
			os.environ[variable] = previous
