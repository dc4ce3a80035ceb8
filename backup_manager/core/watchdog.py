"""The watchdog: conditions under which backups stop silently, each with the fix.

The Frappe layer (watchdog.py) probes the site and hands the facts here; this module only
decides. A problem is shown on the workspace, on the policy form and in the health endpoint,
so an outside monitor learns what the scheduler can no longer report itself.
"""

from dataclasses import asdict, dataclass

from backup_manager.core.checksums import format_size

SCHEDULER_DISABLED = "scheduler_disabled"
NO_LONG_WORKER = "no_long_worker"
RUNS_STUCK_IN_QUEUE = "runs_stuck_in_queue"
DISK_NEARLY_FULL = "disk_nearly_full"
CHECKS = (SCHEDULER_DISABLED, NO_LONG_WORKER, RUNS_STUCK_IN_QUEUE, DISK_NEARLY_FULL)

# A run still Queued after this long means no worker picks up the long queue.
QUEUED_TOO_LONG_MINUTES = 15
# The next backup needs room for one more copy of the last one, plus a margin.
FREE_SPACE_FACTOR = 1.5


@dataclass(frozen=True)
class SiteFacts:
	scheduler_inactive: bool
	scheduler_reason: str
	long_queue_workers: int
	oldest_queued_minutes: float | None
	queued_runs: int
	backup_folder: str
	free_bytes: int | None
	last_backup_bytes: int | None
	has_enabled_policy: bool = True


@dataclass(frozen=True)
class Problem:
	check: str
	message: str
	fix: str

	def as_dict(self) -> dict:
		return asdict(self)


def find_problems(
	facts: SiteFacts, *, queued_too_long_minutes: int = QUEUED_TOO_LONG_MINUTES
) -> list[Problem]:
	"""Every condition under which scheduled backups stop or will fail, with the fix for each."""
	problems = []
	if facts.scheduler_inactive and facts.has_enabled_policy:
		problems.append(
			Problem(
				SCHEDULER_DISABLED,
				f"The scheduler of this site is off ({facts.scheduler_reason}): no scheduled backup will run.",
				"Turn it on: bench --site SITE enable-scheduler (and bench --site SITE set-maintenance-mode off "
				"if maintenance mode is on), and check that the bench's scheduler process runs.",
			)
		)
	if facts.long_queue_workers == 0:
		problems.append(
			Problem(
				NO_LONG_WORKER,
				"No background worker serves the long queue: queued backups will never start.",
				"Start the bench workers (bench start in development; supervisor or systemd in production) "
				"with a worker for the long queue, e.g. bench worker --queue short,default,long.",
			)
		)
	if facts.oldest_queued_minutes is not None and facts.oldest_queued_minutes >= queued_too_long_minutes:
		problems.append(
			Problem(
				RUNS_STUCK_IN_QUEUE,
				f"{facts.queued_runs} run(s) have waited in the queue for {int(facts.oldest_queued_minutes)} "
				f"minutes (limit {queued_too_long_minutes}).",
				"Check that workers for the long queue run and are not all busy (bench doctor; add workers).",
			)
		)
	if (
		facts.free_bytes is not None
		and facts.last_backup_bytes
		and facts.free_bytes < FREE_SPACE_FACTOR * facts.last_backup_bytes
	):
		problems.append(
			Problem(
				DISK_NEARLY_FULL,
				f"The disk of the backup folder {facts.backup_folder} has {format_size(facts.free_bytes)} free, "
				f"less than 1.5 x the last backup ({format_size(facts.last_backup_bytes)}): the next backup may fail.",
				"Free space on that disk, keep fewer local backups (Keep Last / Keep Daily), or set "
				"backup_manager_path in site config to a larger disk.",
			)
		)
	return problems
