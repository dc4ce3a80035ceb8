"""Backup health as an outside monitor sees it: per policy, overall, as JSON and as Prometheus text.

A policy is healthy while its last success is younger than its alert window. The site is
healthy (HTTP 200) when every enabled policy is and the watchdog found nothing; otherwise the
endpoint answers 503 so that Uptime Kuma, Nagios or Prometheus raise the alarm.
"""

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backup_manager.core.watchdog import CHECKS, Problem

TOKEN_PREFIX = "bmt_"
# Without "Alert if no successful backup for N hours", a policy may miss one run (plus this grace).
DEFAULT_WINDOW_GRACE = timedelta(hours=1)


def generate_token() -> str:
	"""A new monitor token: shown once, stored only as its sha256."""
	return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
	return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
	"""Constant-time comparison of a presented token with a stored hash."""
	if not token or not stored_hash:
		return False
	return hmac.compare_digest(hash_token(token), stored_hash)


def alert_window(alert_after_hours: int, schedule_gap: timedelta, start_window: timedelta) -> timedelta:
	"""How old the last success may be: the policy's alert setting, else two scheduled runs plus slack."""
	if alert_after_hours and alert_after_hours > 0:
		return timedelta(hours=alert_after_hours)
	return 2 * schedule_gap + start_window + DEFAULT_WINDOW_GRACE


@dataclass(frozen=True)
class PolicyFacts:
	name: str
	enabled: bool
	window: timedelta
	watching_since: datetime
	last_success_at: datetime | None = None
	last_status: str = ""
	last_error: str = ""
	next_run_at: datetime | None = None
	last_verified_restore_at: datetime | None = None
	last_size_bytes: int | None = None
	last_duration_seconds: float | None = None
	failures_since_success: int = 0


@dataclass(frozen=True)
class PolicyHealth:
	facts: PolicyFacts
	age_seconds: float | None
	healthy: bool
	reason: str

	def as_dict(self, iso: Callable[[datetime | None], str | None]) -> dict:
		facts = self.facts
		return {
			"policy": facts.name,
			"enabled": facts.enabled,
			"healthy": self.healthy,
			"reason": self.reason,
			"last_status": facts.last_status or None,
			"last_success_at": iso(facts.last_success_at),
			"last_success_age_seconds": None if self.age_seconds is None else int(self.age_seconds),
			"alert_window_seconds": int(facts.window.total_seconds()),
			"last_verified_restore_at": iso(facts.last_verified_restore_at),
			"last_error": facts.last_error or None,
			"next_run_at": iso(facts.next_run_at),
			"last_size_bytes": facts.last_size_bytes,
			"last_duration_seconds": facts.last_duration_seconds,
			"failures_since_success": facts.failures_since_success,
		}


@dataclass(frozen=True)
class SiteHealth:
	site: str
	policies: list[PolicyHealth]
	problems: list[Problem] = field(default_factory=list)

	@property
	def healthy(self) -> bool:
		return not self.problems and all(policy.healthy for policy in self.policies)

	@property
	def http_status(self) -> int:
		return 200 if self.healthy else 503


def evaluate_policy(facts: PolicyFacts, now: datetime) -> PolicyHealth:
	"""A policy is healthy when disabled, or when its last success (or its creation) is within its window."""
	age = (now - facts.last_success_at).total_seconds() if facts.last_success_at else None
	if not facts.enabled:
		return PolicyHealth(facts, age, True, "disabled")
	reference = facts.last_success_at or facts.watching_since
	if now - reference <= facts.window:
		return PolicyHealth(
			facts, age, True, "ok" if facts.last_success_at else "no backup yet, within window"
		)
	hours = facts.window.total_seconds() / 3600
	if facts.last_success_at:
		return PolicyHealth(facts, age, False, f"last success is older than {hours:g} hours")
	return PolicyHealth(facts, age, False, f"no successful backup in {hours:g} hours")


def evaluate_site(
	site: str, policies: Iterable[PolicyFacts], problems: list[Problem], now: datetime
) -> SiteHealth:
	return SiteHealth(site, [evaluate_policy(facts, now) for facts in policies], list(problems))


# --- Prometheus text exposition format 0.0.4 ---------------------------------------------

METRICS = (
	("backup_manager_up", "1 when the health endpoint answered."),
	(
		"backup_manager_healthy",
		"1 when every enabled policy is within its alert window and the watchdog found nothing.",
	),
	("backup_manager_watchdog_problem", "1 for each watchdog check that found a problem."),
	("backup_manager_policy_enabled", "1 when the policy is enabled."),
	(
		"backup_manager_policy_healthy",
		"1 when the policy is disabled or its last success is within its alert window.",
	),
	("backup_manager_last_success_timestamp_seconds", "Unix time of the policy's last successful backup."),
	("backup_manager_last_success_age_seconds", "Seconds since the policy's last successful backup."),
	(
		"backup_manager_alert_window_seconds",
		"How old the last success may be before the policy is unhealthy.",
	),
	("backup_manager_last_backup_size_bytes", "Size of the policy's last successful backup."),
	("backup_manager_last_backup_duration_seconds", "Duration of the policy's last successful run."),
	("backup_manager_failures_since_success", "Failed runs of the policy since its last success."),
	(
		"backup_manager_last_verified_restore_timestamp_seconds",
		"Unix time of the policy's last verified restore.",
	),
	("backup_manager_next_run_timestamp_seconds", "Unix time of the policy's next scheduled run."),
)
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def escape_label_value(value: str) -> str:
	return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_sample(name: str, labels: dict[str, str], value: float) -> str:
	label_text = ",".join(f'{key}="{escape_label_value(val)}"' for key, val in labels.items())
	if isinstance(value, bool):
		value = int(value)
	if isinstance(value, float) and not math.isfinite(value):
		rendered = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
	else:
		rendered = repr(float(value)) if isinstance(value, float) else str(int(value))
	return f"{name}{{{label_text}}} {rendered}"


def render_prometheus(health: SiteHealth, epoch: Callable[[datetime], float]) -> str:
	"""The site's health as Prometheus text: one HELP/TYPE block per metric, all gauges."""
	samples: dict[str, list[str]] = {name: [] for name, _ in METRICS}
	site = {"site": health.site}
	samples["backup_manager_up"].append(format_sample("backup_manager_up", site, 1))
	samples["backup_manager_healthy"].append(format_sample("backup_manager_healthy", site, health.healthy))
	found = {problem.check for problem in health.problems}
	for check in CHECKS:
		samples["backup_manager_watchdog_problem"].append(
			format_sample("backup_manager_watchdog_problem", {**site, "check": check}, check in found)
		)
	for policy in health.policies:
		facts = policy.facts
		labels = {**site, "policy": facts.name}

		def add(name, value, labels=labels):
			if value is not None:
				samples[name].append(format_sample(name, labels, value))

		add("backup_manager_policy_enabled", facts.enabled)
		add("backup_manager_policy_healthy", policy.healthy)
		add(
			"backup_manager_last_success_timestamp_seconds",
			facts.last_success_at and epoch(facts.last_success_at),
		)
		add("backup_manager_last_success_age_seconds", policy.age_seconds)
		add("backup_manager_alert_window_seconds", facts.window.total_seconds())
		add("backup_manager_last_backup_size_bytes", facts.last_size_bytes)
		add("backup_manager_last_backup_duration_seconds", facts.last_duration_seconds)
		add("backup_manager_failures_since_success", facts.failures_since_success)
		add(
			"backup_manager_last_verified_restore_timestamp_seconds",
			facts.last_verified_restore_at and epoch(facts.last_verified_restore_at),
		)
		add("backup_manager_next_run_timestamp_seconds", facts.next_run_at and epoch(facts.next_run_at))
	lines = []
	for name, help_text in METRICS:
		lines.append(f"# HELP {name} {help_text}")
		lines.append(f"# TYPE {name} gauge")
		lines.extend(samples[name])
	return "\n".join(lines) + "\n"
