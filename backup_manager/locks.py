"""The policy lock: one run (or upload retry) of a policy at a time, across workers and machines.

A run holds a MariaDB named lock (GET_LOCK) on its own connection for its whole duration. The
server drops the lock when that connection dies, which is how a later tick tells a run whose
worker was killed from one still working.
"""

import hashlib
from contextlib import contextmanager

import frappe
from frappe.utils import cint


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
