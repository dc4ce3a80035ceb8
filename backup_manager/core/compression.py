"""The gzip compressor of a backup run: igzip or pigz on every core when installed, gzip otherwise.

For Fast and Balanced a run prefers igzip (Intel ISA-L, Debian package `isal`): its levels 1 and 3
write standard gzip within ~2% of pigz -3's size on a Frappe dump with half of pigz's CPU, and
a tenth on random-looking text (benchmarks/README.md). Small needs deflate's higher levels, which
igzip does not have (its levels run 0-3), so it uses pigz -9, or gzip -9.

Frappe's BackupGenerator finds its compressor with `shutil.which("gzip")` and runs it in shell
pipelines (`mariadb-dump ... | gzip >> dump.sql.gz`, and `tar cf - ... | gzip > files.tgz` when
files are compressed), always at gzip's default level. To choose the program and the level
without changing Frappe, a run puts a private folder (mode 0700) holding an executable named
`gzip` first on its own PATH for the duration of the backup call, and restores PATH afterwards.
That script execs igzip, pigz or gzip with the policy's level and passes Frappe's arguments through.
The output is a standard gzip stream that gunzip, `bench restore` and Python's gzip read.

Only this process and the children it starts during the call see the folder: a `bench backup`
in any other process (cron, Frappe's scheduled backup, a shell) keeps Frappe's own gzip. Each RQ
job runs in its own forked work-horse and the CLI run is its own process, so a run never leaks
its PATH into another job.
"""

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace

from backup_manager.core.errors import InvalidPolicy

FAST = "Fast"
BALANCED = "Balanced"
SMALL = "Small"
SETTINGS = (FAST, BALANCED, SMALL)
# Balanced (level 3) is the default, chosen by measurement (benchmarks/README.md): on a real
# Frappe dump pigz -3 is within ~7% of pigz -1's time with a 13% smaller file, while -6 takes
# twice as long for another 15%, and -9 five times as long for another 3%.
DEFAULT_SETTING = BALANCED
LEVELS = {FAST: 1, BALANCED: 3, SMALL: 9}
# igzip's own scale (0-3) for the settings it serves; Small is left to pigz or gzip.
IGZIP_LEVELS = {FAST: 1, BALANCED: 3}

IGZIP = "igzip"
PIGZ = "pigz"
GZIP = "gzip"
# The private folder's name starts with this, so a lookup can skip folders of a running swap.
WRAPPER_DIR_PREFIX = "backup-manager-gzip-"
VERSION_TIMEOUT_SECONDS = 10
# How each parallel compressor is told its number of threads.
THREAD_OPTIONS = {IGZIP: "-T", PIGZ: "-p"}
VERSION_PATTERN = re.compile(r"\d+(?:\.\d+)+")


@dataclass(frozen=True)
class Compressor:
	"""The program (absolute path), level and threads a run compresses with."""

	program: str
	path: str
	level: int
	threads: int = 1
	version: str = ""

	def argv(self) -> list[str]:
		"""The command the `gzip` wrapper runs, before Frappe's own arguments."""
		arguments = [self.path, f"-{self.level}"]
		if self.program in THREAD_OPTIONS:
			arguments += [THREAD_OPTIONS[self.program], str(self.threads)]
		return arguments

	def describe(self) -> str:
		"""e.g. "igzip 2.30.0, 2 threads" or "gzip 1.12" (what the Backup Log shows)."""
		name = f"{self.program} {self.version}".strip()
		if self.program in THREAD_OPTIONS:
			return f"{name}, {self.threads} thread{'s' if self.threads != 1 else ''}"
		return name


def compression_level(setting: str | None) -> int:
	"""The gzip level of a policy's Compression setting ("" means the default)."""
	setting = setting or DEFAULT_SETTING
	if setting not in LEVELS:
		raise InvalidPolicy(
			"compression",
			f"Compression must be one of {', '.join(SETTINGS)}, not {setting!r}.",
		)
	return LEVELS[setting]


def choose_compressor(
	setting: str | None,
	*,
	igzip_path: str | None = None,
	pigz_path: str | None,
	gzip_path: str | None,
	cpu_count: int,
) -> Compressor:
	"""igzip (Fast, Balanced) or pigz on every core when installed, gzip otherwise."""
	level = compression_level(setting)
	setting = setting or DEFAULT_SETTING
	if igzip_path and setting in IGZIP_LEVELS:
		return Compressor(IGZIP, igzip_path, IGZIP_LEVELS[setting], threads=max(1, cpu_count))
	if pigz_path:
		return Compressor(PIGZ, pigz_path, level, threads=max(1, cpu_count))
	if gzip_path:
		return Compressor(GZIP, gzip_path, level)
	raise FileNotFoundError(
		"Neither igzip, pigz nor gzip is installed. Install one: apt-get install isal pigz"
	)


def find_compressor(setting: str | None) -> Compressor:
	"""Look up igzip, pigz and gzip on this machine (never a wrapper of a running swap) and choose."""
	compressor = choose_compressor(
		setting,
		igzip_path=which_real(IGZIP),
		pigz_path=which_real(PIGZ),
		gzip_path=which_real(GZIP),
		cpu_count=usable_cpu_count(),
	)
	return replace(compressor, version=read_version(compressor.path))


def which_real(program: str) -> str | None:
	"""shutil.which, skipping the private folders that compressor_as_gzip puts on PATH."""
	entries = [
		entry
		for entry in os.environ.get("PATH", os.defpath).split(os.pathsep)
		if not os.path.basename(entry.rstrip(os.sep)).startswith(WRAPPER_DIR_PREFIX)
	]
	return shutil.which(program, path=os.pathsep.join(entries))


def usable_cpu_count() -> int:
	try:
		return len(os.sched_getaffinity(0))
	except (AttributeError, OSError):
		return os.cpu_count() or 1


def read_version(path: str) -> str:
	"""The version a compressor prints ("2.6" for "pigz 2.6"); "" when it cannot be read.

	igzip prints "igzip command line interface 2.30.0": the first dotted number is taken.
	"""
	try:
		result = subprocess.run(
			[path, "--version"],
			capture_output=True,
			text=True,
			timeout=VERSION_TIMEOUT_SECONDS,
			check=False,
		)
	except (OSError, subprocess.TimeoutExpired):
		return ""
	# pigz before 2.4 printed its version on stderr.
	first_line = (result.stdout or result.stderr).strip().splitlines()[:1]
	found = VERSION_PATTERN.search(first_line[0]) if first_line else None
	return found.group(0) if found else ""


def wrapper_script(compressor: Compressor) -> str:
	"""The `gzip` a run puts on its PATH: the chosen program and level, then Frappe's arguments."""
	return (
		"#!/bin/sh\n"
		"# Backup Manager: this run's compressor, in place of gzip for Frappe's backup pipeline.\n"
		f'exec {shlex.join(compressor.argv())} "$@"\n'
	)


@contextlib.contextmanager
def compressor_as_gzip(compressor: Compressor):
	"""Make `gzip` run `compressor` in this process (and children started meanwhile) until exit.

	Yields the wrapper's path, which is what `shutil.which("gzip")` returns inside the block.
	"""
	folder = tempfile.mkdtemp(prefix=WRAPPER_DIR_PREFIX)  # mode 0700: only this user reads it
	wrapper = os.path.join(folder, GZIP)
	descriptor = os.open(wrapper, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
	with os.fdopen(descriptor, "w") as handle:
		handle.write(wrapper_script(compressor))
	previous = os.environ.get("PATH")
	swapped = folder + os.pathsep + (previous if previous is not None else os.defpath)
	os.environ["PATH"] = swapped
	try:
		yield wrapper
	finally:
		current = os.environ.get("PATH")
		if current == swapped:
			if previous is None:
				del os.environ["PATH"]
			else:
				os.environ["PATH"] = previous
		elif current is not None:
			# Someone changed PATH meanwhile: keep their change, drop only our folder.
			os.environ["PATH"] = os.pathsep.join(
				entry for entry in current.split(os.pathsep) if entry != folder
			)
		shutil.rmtree(folder, ignore_errors=True)
