"""Live progress of a run: phases, bytes done and total, rate and time left, throttled.

A run feeds the reporter from several threads (hashing two files at a time, boto3's transfer
callbacks per part); the reporter keeps the counts and calls `emit` at most once per
`min_interval` seconds, plus once at every phase change, so a 20 GB upload costs a handful of
events a second at most. The clock is passed in, so the arithmetic is tested without sleeping.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from backup_manager.core.checksums import format_size

DUMP = "dump"
FILES = "files"
CHECKS = "checks"
UPLOAD = "upload"
DONE = "done"

DEFAULT_MIN_INTERVAL = 1.0
# The rate is a moving average over this many seconds, so a stall shows quickly.
RATE_HALF_LIFE_SECONDS = 5.0


@dataclass(frozen=True)
class Snapshot:
	phase: str
	label: str
	done_bytes: int
	total_bytes: int
	percent: float | None
	rate_bytes_per_second: float | None
	eta_seconds: float | None
	elapsed_seconds: float

	def as_dict(self) -> dict:
		return asdict(self)


class ProgressReporter:
	"""Counts bytes per phase and emits throttled snapshots through `emit`."""

	def __init__(
		self,
		emit: Callable[[Snapshot], None],
		*,
		clock: Callable[[], float] = time.monotonic,
		min_interval: float = DEFAULT_MIN_INTERVAL,
	):
		self._emit = emit
		self._clock = clock
		self._min_interval = min_interval
		self._lock = threading.Lock()
		self._phase = ""
		self._label = ""
		self._done = 0
		self._total = 0
		self._phase_started = clock()
		self._last_emit: float | None = None
		self._rate: float | None = None
		self._rate_sample_at = self._phase_started
		self._rate_sample_done = 0
		self._counts: dict[str, int] = {}

	def counter(self, label: str) -> Callable[[int], None]:
		"""A byte counter for work that may run before or beside its phase (an upload that starts
		while the backup is still being written): it counts all along, and drives the reported
		figures while the phase with this label is the current one."""

		def count(byte_count: int) -> None:
			with self._lock:
				self._counts[label] = self._counts.get(label, 0) + int(byte_count)
				if label != self._label:
					return
			self._update(lambda: self._counts.get(label, 0))

		return count

	def start_phase(self, phase: str, total_bytes: int = 0, label: str = "") -> None:
		"""Begin a phase (always emitted); `total_bytes` 0 means unknown.

		Bytes already counted under the same label (work that started early, see `counter`)
		count as done.
		"""
		with self._lock:
			now = self._clock()
			self._phase, self._label = phase, label or phase
			self._done, self._total = self._counts.get(self._label, 0), max(0, int(total_bytes))
			self._phase_started = self._rate_sample_at = now
			self._rate_sample_done = 0
			self._rate = None
			snapshot = self._take(now)
		self._emit(snapshot)

	def advance(self, byte_count: int) -> None:
		"""Add bytes done in the current phase (thread-safe; emits when the throttle allows)."""
		self._update(lambda: self._done + int(byte_count))

	def set_done(self, done_bytes: int) -> None:
		"""Set the bytes done in the current phase (for a poller that measures a growing file)."""
		self._update(lambda: int(done_bytes))

	def finish(self) -> None:
		"""End the run's progress (always emitted)."""
		with self._lock:
			now = self._clock()
			self._phase, self._label = DONE, DONE
			self._done = self._total = max(self._done, self._total)
			snapshot = self._take(now)
		self._emit(snapshot)

	def snapshot(self) -> Snapshot:
		with self._lock:
			return self._take(self._clock())

	def _update(self, compute_done: Callable[[], int]) -> None:
		with self._lock:
			now = self._clock()
			self._done = max(0, compute_done())
			self._sample_rate(now)
			if self._last_emit is not None and now - self._last_emit < self._min_interval:
				return
			snapshot = self._take(now)
		self._emit(snapshot)

	def _sample_rate(self, now: float) -> None:
		elapsed = now - self._rate_sample_at
		if elapsed < 0.25:
			return
		instant = (self._done - self._rate_sample_done) / elapsed
		if self._rate is None:
			self._rate = instant
		else:
			weight = 1 - 0.5 ** (elapsed / RATE_HALF_LIFE_SECONDS)
			self._rate += weight * (instant - self._rate)
		self._rate_sample_at, self._rate_sample_done = now, self._done

	def _take(self, now: float) -> Snapshot:
		self._last_emit = now
		return describe(
			phase=self._phase,
			label=self._label,
			done=self._done,
			total=self._total,
			rate=self._rate,
			elapsed=now - self._phase_started,
		)


def describe(
	*, phase: str, label: str, done: int, total: int, rate: float | None, elapsed: float
) -> Snapshot:
	"""A snapshot with percent and time left; both None while the total or the rate is unknown."""
	percent = min(100.0, 100.0 * done / total) if total > 0 else None
	if rate is None and elapsed > 0 and done > 0:
		rate = done / elapsed
	eta = None
	if total > 0 and rate and rate > 0:
		eta = max(0.0, (total - done) / rate)
	return Snapshot(
		phase=phase,
		label=label,
		done_bytes=done,
		total_bytes=total,
		percent=None if percent is None else round(percent, 1),
		rate_bytes_per_second=None if rate is None else round(rate, 1),
		eta_seconds=None if eta is None else round(eta, 1),
		elapsed_seconds=round(elapsed, 1),
	)


def format_line(snapshot: Snapshot | dict, *, width: int = 30) -> str:
	"""One terminal line: label, a bar when the total is known, bytes, time left."""
	data = snapshot.as_dict() if isinstance(snapshot, Snapshot) else snapshot
	done, total = data["done_bytes"], data["total_bytes"]
	parts = [f"{data['label']:<24}"]
	if data.get("percent") is not None:
		filled = int(width * data["percent"] / 100)
		parts.append(f"[{'#' * filled}{'.' * (width - filled)}] {data['percent']:5.1f}%")
		parts.append(f"{format_size(done)} / {format_size(total)}")
	else:
		parts.append(format_size(done))
	if data.get("eta_seconds") is not None and data["phase"] != DONE:
		parts.append(f"ETA {format_duration(data['eta_seconds'])}")
	return "  ".join(parts)


def format_duration(seconds: float) -> str:
	seconds = int(round(seconds))
	hours, rest = divmod(seconds, 3600)
	minutes, secs = divmod(rest, 60)
	return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
