"""Named locks: one run (or upload retry) of a policy at a time, one restore drill at a time per bench.

A run holds a MariaDB named lock (GET_LOCK) on its own connection for its whole duration. The
server drops the lock when that connection dies, which is how a later tick tells a run whose
worker was killed from one still working.
"""

import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import frappe
from frappe.utils import cint, get_bench_id, get_datetime, get_system_timezone, now_datetime
from frappe.utils.background_jobs import get_redis_connection_without_auth

from backup_manager.core import slots


def policy_lock_name(policy: str) -> str:
	# MariaDB lock names are server-wide and at most 64 characters: scope by database, hash.
	digest = hashlib.sha256(f"{frappe.conf.db_name}:{policy}".encode()).hexdigest()[:40]
	return f"backup_manager_{digest}"


def acquire_policy_lock(policy: str) -> bool:
	"""Take the policy's lock without waiting; False when another connection holds it."""
	return cint(frappe.db.sql("SELECT GET_LOCK(%s, 0)", policy_lock_name(policy))[0][0]) == 1


def release_policy_lock(policy: str):
	frappe.db.sql("SELECT RELEASE_LOCK(%s)", policy_lock_name(policy))


def is_policy_locked(policy: str) -> bool:
	return frappe.db.sql("SELECT IS_USED_LOCK(%s)", policy_lock_name(policy))[0][0] is not None


@contextmanager
def policy_lock(policy: str):
	"""Hold the policy's lock for the block; yields False (and holds nothing) when it is taken."""
	if not acquire_policy_lock(policy):
		yield False
		return
	try:
		yield True
	finally:
		release_policy_lock(policy)


# --- Bench-wide run slots ---------------------------------------------------------------
# At most `backup_manager_max_concurrent_runs` runs (common_site_config.json; default one per
# two cores) hold a slot at once, across every site of the bench and every worker machine.
# A slot is a MariaDB named lock: named locks are server-wide (not scoped by database), and
# every site and worker of a bench talks to the same MariaDB server. Runs waiting for a slot
# queue in a Redis sorted set on the bench's RQ Redis (shared by all its workers), ordered by
# the time they were queued; a waiting run that died is dropped from it because its policy
# lock (held for the whole run, waiting included) is free.

SLOT_POLL_SECONDS = 2.0


def bench_id() -> str:
	"""This bench as RQ knows it (bench_id in common_site_config.json, else its path), hashed to fit
	MariaDB's 64-character lock names: the same on every worker machine that shares its queues."""
	return hashlib.sha256(get_bench_id().encode()).hexdigest()[:12]


def get_max_concurrent_runs() -> int:
	return slots.max_concurrent_runs(frappe.conf.get("backup_manager_max_concurrent_runs"), os.cpu_count())


def slot_lock_name(index: int) -> str:
	return f"backup_manager_slot_{bench_id()}_{index}"


def waiting_key() -> str:
	return f"backup_manager:waiting_runs:{bench_id()}"


@contextmanager
def run_slot(log_name: str, policy: str, queued_at, on_wait: Callable[[], None]):
	"""Hold one of the bench's run slots for the block, waiting in queue order for it.

	The caller holds the policy lock. `on_wait` is called once if the run has to wait.
	"""
	connection = get_redis_connection_without_auth()
	member = json.dumps([frappe.local.site, log_name, policy_lock_name(policy)])
	connection.zadd(waiting_key(), {member: queued_epoch(queued_at)}, nx=True)
	slot = None
	try:
		waited = False
		while slot is None:
			slot = take_free_slot(connection, member, get_max_concurrent_runs())
			if slot is None:
				if not waited:
					on_wait()
					waited = True
				time.sleep(SLOT_POLL_SECONDS)
	finally:
		connection.zrem(waiting_key(), member)
	try:
		yield slot
	finally:
		frappe.db.sql("SELECT RELEASE_LOCK(%s)", slot_lock_name(slot))


def take_free_slot(connection, member: str, limit: int) -> int | None:
	"""Take a free slot if it is this run's turn; the slot's index, or None."""
	waiting = [
		entry.decode() if isinstance(entry, bytes) else entry
		for entry in connection.zrange(waiting_key(), 0, -1)
	]
	live = []
	for entry in waiting:
		if entry == member or is_lock_used(json.loads(entry)[2]):
			live.append(entry)
		else:  # its run died while waiting: its policy lock went with its connection
			connection.zrem(waiting_key(), entry)
	free = [index for index in range(limit) if not is_lock_used(slot_lock_name(index))]
	if not slots.may_take_slot(live, member, len(free)):
		return None
	for index in free:
		if cint(frappe.db.sql("SELECT GET_LOCK(%s, 0)", slot_lock_name(index))[0][0]) == 1:
			return index
	return None


def is_lock_used(name: str) -> bool:
	return frappe.db.sql("SELECT IS_USED_LOCK(%s)", name)[0][0] is not None


def queued_epoch(queued_at) -> float:
	"""A run's queued time as Unix time, comparable across sites in different time zones."""
	moment = get_datetime(queued_at) if queued_at else now_datetime()
	return moment.replace(tzinfo=ZoneInfo(get_system_timezone())).timestamp()


def running_slot_count() -> int:
	"""How many of the bench's slots are held now."""
	return sum(is_lock_used(slot_lock_name(index)) for index in range(get_max_concurrent_runs()))


def drill_lock_name() -> str:
	# Bench-wide: every site of this bench shares it (drills create sites on the bench), while a
	# second bench on the same MariaDB server gets its own. Named locks are server-wide.
	return f"backup_manager_drill_{bench_id()}"


def acquire_drill_lock() -> bool:
	"""Take this bench's restore drill lock without waiting; False when another drill holds it."""
	return cint(frappe.db.sql("SELECT GET_LOCK(%s, 0)", drill_lock_name())[0][0]) == 1


def release_drill_lock():
	frappe.db.sql("SELECT RELEASE_LOCK(%s)", drill_lock_name())


def is_drill_locked() -> bool:
	return frappe.db.sql("SELECT IS_USED_LOCK(%s)", drill_lock_name())[0][0] is not None
