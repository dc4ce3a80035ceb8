"""Shell building blocks shared by the steps: safe paths, guards, programs on stdin."""

import shlex

from backup_manager.core.restore_plan.constants import BENCH_PYTHON, SHELL_SAFE_PATH, SNIPPET_DELIMITER


def is_shell_safe(path: str) -> bool:
	"""True when a path can pass through a shell unquoted (as Frappe's restore passes it)."""
	return bool(SHELL_SAFE_PATH.fullmatch(path))


def guard(test: str, message: str) -> str:
	"""A command that stops the script (and prints why) when `test` fails, without closing a terminal."""
	return f"{test} || {{ printf '%s\\n' {shlex.quote(message)} >&2; false; }}"


def run_bench_python(arguments: list[str], program: str) -> str:
	"""A command that runs `program` under the bench's python, fed on a quoted heredoc."""
	if SNIPPET_DELIMITER in program.splitlines():
		# The line would end the heredoc early and run the rest of the program as shell commands.
		raise ValueError(f"A program run by the restore plan holds a line {SNIPPET_DELIMITER!r}")
	return f"{BENCH_PYTHON} - {shlex.join(arguments)} <<'{SNIPPET_DELIMITER}'\n{program}{SNIPPET_DELIMITER}"


def in_background(command: str) -> str:
	"""`command` started in the background: `&` ends its first line (before a heredoc's body)."""
	first, _, rest = command.partition("\n")
	return f"{first} &" + (f"\n{rest}" if rest else "")
