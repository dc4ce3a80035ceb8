"""Bench-wide run slots: how many backups may run at once, and whose turn it is.

Fifty sites on one bench must not all dump their databases at 02:00 on two cores. A run
takes one of `limit` slots (held in MariaDB, see slots.py); runs beyond the limit wait in
the order they were queued, across every site and every worker machine of the bench.
"""

from collections.abc import Sequence

MIN_RUNS = 1


def default_max_concurrent_runs(cpu_count: int | None) -> int:
	"""One run per two cores, at least one."""
	return max(MIN_RUNS, (cpu_count or 1) // 2)


def max_concurrent_runs(configured, cpu_count: int | None) -> int:
	"""The configured limit (backup_manager_max_concurrent_runs) if it is a positive number, else the default."""
	try:
		value = int(configured)
	except (TypeError, ValueError):
		return default_max_concurrent_runs(cpu_count)
	return value if value >= MIN_RUNS else default_max_concurrent_runs(cpu_count)


def may_take_slot(waiting: Sequence[str], me: str, free_slots: int) -> bool:
	"""First come, first served: a waiting run may take a slot only if fewer runs queued before it
	than there are free slots. `waiting` is every live waiting run, oldest first."""
	if free_slots <= 0 or me not in waiting:
		return False
	return waiting.index(me) < free_slots
