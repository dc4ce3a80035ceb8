"""How a run ends: when a destination holds a complete copy, the run's status, when to retry.

Each rule is defined here once; the Frappe layer (offsite, reaper, restore guide) only
feeds it the upload rows it recorded. A row is anything with `destination`, `kind` and
`status` attributes: a Backup Log Upload row, or an `UploadRow` in tests.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from backup_manager.core.offsite import MANIFEST_KIND, UPLOADED

SUCCESS = "Success"
PARTIAL = "Partial"
FAILED = "Failed"

# Automatic upload retries after a failed or partial upload: 15, 30 and 60 minutes later.
MAX_UPLOAD_ATTEMPTS = 4
RETRY_BASE_MINUTES = 15


class UploadRecord(Protocol):
	destination: str
	kind: str
	status: str


@dataclass(frozen=True)
class UploadRow:
	destination: str
	kind: str
	status: str


def destination_complete(rows: Iterable[UploadRecord], destination: str) -> bool:
	"""True once every artifact and the manifest (written last) reached the destination and verified."""
	mine = [row for row in rows if row.destination == destination]
	return (
		bool(mine)
		and any(row.kind == MANIFEST_KIND and row.status == UPLOADED for row in mine)
		and all(row.status == UPLOADED for row in mine)
	)


def complete_destinations(rows: Iterable[UploadRecord], destinations: Iterable[str]) -> list[str]:
	"""The destinations, in order, that hold a complete copy."""
	rows = list(rows)
	return [name for name in dict.fromkeys(destinations) if destination_complete(rows, name)]


def anything_uploaded(rows: Iterable[UploadRecord]) -> bool:
	return any(row.status == UPLOADED for row in rows)


def run_status(rows: Iterable[UploadRecord], destinations: Iterable[str]) -> str:
	"""The status of a run with a complete local backup, from its upload rows.

	Success: every destination holds a complete copy (or there is no destination).
	Partial: at least one artifact reached some destination. Failed: nothing did.
	"""
	rows = list(rows)
	destinations = list(dict.fromkeys(destinations))
	if len(complete_destinations(rows, destinations)) == len(destinations):
		return SUCCESS
	return PARTIAL if anything_uploaded(rows) else FAILED


def interrupted_run_status(rows: Iterable[UploadRecord]) -> str:
	"""The status of a run whose worker died while uploading: never Success, since it did not finish.

	Partial when something reached a destination (a retry completes it), Failed otherwise.
	"""
	return PARTIAL if anything_uploaded(rows) else FAILED


def next_upload_retry_at(attempts: int, now: datetime) -> datetime | None:
	"""When to retry an incomplete upload after `attempts` attempts: 15·2ⁿ minutes, or None when spent."""
	if attempts < 1 or attempts >= MAX_UPLOAD_ATTEMPTS:
		return None
	return now + timedelta(minutes=RETRY_BASE_MINUTES * 2 ** (attempts - 1))
