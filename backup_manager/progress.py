"""Live progress of a run, published to Desk (realtime) and to whoever runs it in a terminal.

core.progress counts and throttles; this module delivers. Snapshots go to the Backup Log's
document room as the `backup_manager_progress` event, and the latest one is kept in Redis (one
small key, expiring) so a form opened mid-run shows it at once. The Backup Log itself is never
saved for progress.

Snapshots are emitted from whichever thread made progress (the hashing pool, boto3's transfer
threads, the dump poller), and frappe.local is not visible in those threads: everything the
emitter needs (site, Redis connection, room) is captured when the run's reporter is made.
"""

import json
import os
import threading
from collections.abc import Callable
from contextlib import contextmanager, suppress

import frappe
import redis
from frappe.realtime import get_doc_room
from frappe.utils.background_jobs import get_redis_connection_without_auth

from backup_manager.core.progress import ProgressReporter, Snapshot
from backup_manager.core.threads import thread_during_block

EVENT = "backup_manager_progress"
STORE_TTL_SECONDS = 24 * 60 * 60
# How often the dump poller measures the files Frappe is writing.
POLL_SECONDS = 1.0

# Terminal listeners (the CLI's progress bar); called with a snapshot dict from any thread.
_listeners: list[Callable[[dict], None]] = []


def add_listener(listener: Callable[[dict], None]) -> None:
	_listeners.append(listener)


def remove_listener(listener: Callable[[dict], None]) -> None:
	with suppress(ValueError):
		_listeners.remove(listener)


def progress_key(site: str, log_name: str) -> str:
	return f"backup_manager:progress:{site}:{log_name}"


def make_reporter(log_name: str, *, min_interval: float | None = None) -> ProgressReporter:
	"""A reporter for one run whose snapshots reach Desk, Redis and terminal listeners."""
	site = frappe.local.site
	room = get_doc_room("Backup Log", log_name)
	connection = get_redis_connection_without_auth()
	key = progress_key(site, log_name)
	interval = (
		min_interval if min_interval is not None else frappe.conf.get("backup_manager_progress_interval", 1.0)
	)

	def emit(snapshot: Snapshot) -> None:
		message = {**snapshot.as_dict(), "backup_log": log_name}
		payload = json.dumps(message)
		# Redis being away must never fail a backup: progress is a courtesy.
		with suppress(redis.exceptions.RedisError):
			connection.publish(
				"events",
				json.dumps({"event": EVENT, "message": message, "room": room, "namespace": site}),
			)
			connection.set(key, payload, ex=STORE_TTL_SECONDS)
		for listener in list(_listeners):
			listener(message)

	return ProgressReporter(emit, min_interval=float(interval))


def get_last_progress(log_name: str) -> dict | None:
	"""The latest snapshot of a run, or None."""
	with suppress(redis.exceptions.RedisError):
		value = get_redis_connection_without_auth().get(progress_key(frappe.local.site, log_name))
		return json.loads(value) if value else None
	return None


def folder_size(path: str, skip: tuple[str, ...] = ()) -> int:
	total = 0
	with suppress(FileNotFoundError):
		for entry in os.scandir(path):
			if entry.path in skip:
				continue
			with suppress(FileNotFoundError):
				if entry.is_file(follow_symlinks=False):
					total += entry.stat().st_size
	return total


@contextmanager
def watch_folder(reporter: ProgressReporter | None, path: str, skip: tuple[str, ...] = ()):
	"""While the block runs, report the bytes written into `path` (Frappe's dump and tars give no
	callback), leaving out the files in `skip` (written by an earlier phase)."""
	if reporter is None:
		yield
		return

	def poll(stop: threading.Event) -> None:
		while not stop.wait(POLL_SECONDS):
			reporter.set_done(folder_size(path, skip))

	try:
		with thread_during_block(poll, name="backup-manager-progress"):
			yield
	finally:
		reporter.set_done(folder_size(path, skip))
