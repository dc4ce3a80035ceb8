"""Emails about backup runs: failures, optional successes and missed-backup alerts."""

from datetime import datetime

import frappe
from frappe import _
from frappe.utils import cint, get_datetime, get_url_to_form

from backup_manager.core.alerts import missed_backup_alert_due


def get_alert_recipients(policy) -> list[str]:
	"""The policy's recipients, or every System Manager when it names none."""
	recipients = policy.get_recipients()
	if recipients:
		return recipients
	from frappe.utils.user import get_system_managers

	return get_system_managers(only_name=True)


def notify_run(policy, log):
	"""Send the run's email if the policy asks for one; a mail failure never fails the run."""
	try:
		send_run_notification(policy, log)
	except Exception:
		frappe.log_error(
			title=f"Backup Manager: notification for {log.name} failed",
			reference_doctype="Backup Log",
			reference_name=log.name,
		)


def send_missed_backup_alerts(now: datetime):
	"""Tick step: alert once per window for every policy with no success within its alert window."""
	_send_window_alerts(
		now,
		filters={"enabled": 1, "alert_after_hours": (">", 0)},
		window_field="alert_after_hours",
		window_unit_hours=1,
		last_good_field="last_success_at",
		last_alert_field="last_stale_alert_at",
		send=send_missed_backup_alert,
		what="missed-backup",
	)


def _send_window_alerts(
	now: datetime,
	*,
	filters: dict,
	window_field: str,
	window_unit_hours: int,
	last_good_field: str,
	last_alert_field: str,
	send,
	what: str,
):
	"""Send `send(policy)` once per window for every policy whose last good event is older than its window."""
	for policy in frappe.get_all(
		"Backup Policy",
		filters=filters,
		fields=["name", window_field, last_good_field, last_alert_field, "creation"],
	):
		if not missed_backup_alert_due(
			window_hours=window_unit_hours * cint(policy[window_field]),
			last_success_at=get_datetime(policy[last_good_field]) if policy[last_good_field] else None,
			watching_since=get_datetime(policy.creation),
			last_alert_at=get_datetime(policy[last_alert_field]) if policy[last_alert_field] else None,
			now=now,
		):
			continue
		try:
			send(frappe.get_doc("Backup Policy", policy.name))
		except Exception:
			frappe.db.rollback()
			frappe.log_error(
				title=f"Backup Manager: {what} alert for {policy.name} failed",
				reference_doctype="Backup Policy",
				reference_name=policy.name,
			)
		# Recorded even when sending failed: one attempt per window, never one per tick.
		frappe.db.set_value("Backup Policy", policy.name, last_alert_field, now, update_modified=False)
		frappe.db.commit()


def notify_drill(drill):
	"""Email the policy's recipients that a restore drill failed or was refused, with the failing check."""
	try:
		send_drill_failure(drill)
	except Exception:
		frappe.log_error(
			title=f"Backup Manager: notification for drill {drill.name} failed",
			reference_doctype="Backup Restore Drill",
			reference_name=drill.name,
		)


def send_drill_failure(drill):
	policy = frappe.get_doc("Backup Policy", drill.policy) if drill.policy else None
	if policy is None or not policy.notify_on_failure:
		return
	failing = next((check for check in drill.checks if check.result == "Failed"), None)
	lines = [
		_("Site: {0}").format(frappe.local.site),
		_("Policy: {0}").format(policy.name),
		_("Backup Log: {0}").format(drill.backup_log),
		_("Restore drill: {0}").format(drill.name),
		_("Status: {0}").format(drill.status),
		_("Source: {0}").format(drill.source or ""),
	]
	if failing:
		lines.append(_("Failing check: {0}").format(failing.check))
		lines += (failing.detail or "").splitlines()
	elif drill.error_message:
		lines.append(_("Reason: {0}").format(drill.error_message))
	send_email(
		recipients=get_alert_recipients(policy),
		subject=_("Restore drill {0}: {1} on {2}").format(
			drill.status.upper(), policy.name, frappe.local.site
		),
		lines=lines,
		link=get_url_to_form("Backup Restore Drill", drill.name),
		reference_doctype="Backup Restore Drill",
		reference_name=drill.name,
	)


def send_unverified_restore_alerts(now: datetime):
	"""Tick step: alert once per window for every policy with no verified restore within its window."""
	_send_window_alerts(
		now,
		filters={"alert_no_verified_restore_days": (">", 0)},
		window_field="alert_no_verified_restore_days",
		window_unit_hours=24,
		last_good_field="last_verified_restore_at",
		last_alert_field="last_drill_alert_at",
		send=send_unverified_restore_alert,
		what="no-verified-restore",
	)


def send_unverified_restore_alert(policy):
	"""Email that no drill has proven a backup of this policy restorable within its window."""
	days = policy.alert_no_verified_restore_days
	lines = [
		_("Site: {0}").format(frappe.local.site),
		_("Policy: {0}").format(policy.name),
		_("No backup was proven restorable by a restore drill in the last {0} days.").format(days),
		_("Last verified restore: {0}").format(policy.last_verified_restore_at or _("never")),
		_("Last drill: {0} ({1})").format(
			policy.last_restore_drill or _("none"), policy.last_drill_status or ""
		),
		_("Restore Drill setting: {0}").format(policy.restore_drill or "Off"),
	]
	send_email(
		recipients=get_alert_recipients(policy),
		subject=_("No verified restore for {0} days: {1} on {2}").format(
			days, policy.name, frappe.local.site
		),
		lines=lines,
		link=get_url_to_form("Backup Policy", policy.name),
		reference_doctype="Backup Policy",
		reference_name=policy.name,
	)


def send_run_notification(policy, log):
	"""Email the policy's recipients about a finished run, as the policy asks."""
	if log.status == "Failed" and policy.notify_on_failure:
		subject = _("Backup FAILED: {0} on {1}").format(policy.name, log.site)
	elif log.status == "Partial" and policy.notify_on_failure:
		subject = _("Backup only partly uploaded: {0} on {1}").format(policy.name, log.site)
	elif log.status == "Success" and policy.notify_on_success:
		subject = _("Backup succeeded: {0} on {1}").format(policy.name, log.site)
	else:
		return

	lines = [
		_("Site: {0}").format(log.site),
		_("Policy: {0}").format(policy.name),
		_("Backup Log: {0}").format(log.name),
		_("Status: {0}").format(log.status),
		_("Started: {0}").format(log.started_at or ""),
		_("Finished: {0}").format(log.finished_at or ""),
	]
	if log.total_size_human:
		lines.append(_("Size: {0}").format(log.total_size_human))
	if log.error_message:
		lines.append(_("Error: {0}: {1}").format(log.error_class or "", log.error_message))
	send_email(
		recipients=get_alert_recipients(policy),
		subject=subject,
		lines=lines,
		link=get_url_to_form("Backup Log", log.name),
		reference_doctype="Backup Log",
		reference_name=log.name,
	)


def send_missed_backup_alert(policy):
	"""Email that a policy has had no successful backup within its alert window."""
	lines = [
		_("Site: {0}").format(frappe.local.site),
		_("Policy: {0}").format(policy.name),
		_("No successful backup in the last {0} hours.").format(policy.alert_after_hours),
		_("Last successful backup: {0}").format(policy.last_success_at or _("never")),
		_("Last run: {0} ({1})").format(policy.last_backup_log or _("none"), policy.last_status or ""),
	]
	send_email(
		recipients=get_alert_recipients(policy),
		subject=_("No successful backup for {0} hours: {1} on {2}").format(
			policy.alert_after_hours, policy.name, frappe.local.site
		),
		lines=lines,
		link=get_url_to_form("Backup Policy", policy.name),
		reference_doctype="Backup Policy",
		reference_name=policy.name,
	)


def send_email(*, recipients, subject, lines, link, reference_doctype, reference_name):
	if not recipients:
		return
	body = "<br>".join(frappe.utils.escape_html(line) for line in lines)
	body += f'<br><br><a href="{link}">{frappe.utils.escape_html(link)}</a>'
	frappe.sendmail(
		recipients=recipients,
		subject=subject,
		message=body,
		reference_doctype=reference_doctype,
		reference_name=reference_name,
	)
