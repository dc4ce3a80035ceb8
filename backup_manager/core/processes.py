"""Stopping the commands a failed backup started, read from Linux's /proc.

Frappe runs each backup step as a shell command it waits for, and gives no handle on the process:
when the dump fails while the file tars are still being written beside it, the tars are found
among this process's children by the backup folder their command line names.
"""

import os
import signal


def _processes() -> dict[int, tuple[int, bytes]]:
	"""Every process: pid -> (parent pid, command line as raw bytes)."""
	found = {}
	for entry in os.scandir("/proc"):
		if not entry.name.isdigit():
			continue
		try:
			with open(f"/proc/{entry.name}/stat", "rb") as handle:
				# "pid (comm) state ppid ...": comm may hold spaces and parentheses.
				parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
			with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
				command = handle.read()
		except (OSError, ValueError, IndexError):
			continue
		found[int(entry.name)] = (parent, command)
	return found


def terminate_children_naming(path: str, *, parent: int | None = None) -> list[int]:
	"""SIGTERM each child of `parent` (this process) whose command line names `path`, and its descendants.

	Returns the pids signalled. Processes that end meanwhile are skipped.
	"""
	parent = os.getpid() if parent is None else parent
	processes = _processes()
	marker = os.fsencode(path)
	targets = [pid for pid, (ppid, command) in processes.items() if ppid == parent and marker in command]
	signalled = []
	while targets:
		pid = targets.pop()
		try:
			os.kill(pid, signal.SIGTERM)
		except OSError:
			continue
		signalled.append(pid)
		targets.extend(child for child, (ppid, _command) in processes.items() if ppid == pid)
	return signalled
