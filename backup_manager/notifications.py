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
	for policy in frappe.get_all(
		"Backup Policy",
		filters={"enabled": 1, "alert_after_hours": (">", 0)},
		fields=["name", "alert_after_hours", "last_success_at", "last_stale_alert_at", "creation"],
	):
		if not missed_backup_alert_due(
			window_hours=cint(policy.alert_after_hours),
			last_success_at=get_datetime(policy.last_success_at) if policy.last_success_at else None,
			watching_since=get_datetime(policy.creation),
			last_alert_at=get_datetime(policy.last_stale_alert_at) if policy.last_stale_alert_at else None,
			now=now,
		):
			continue
		try:
			send_missed_backup_alert(frappe.get_doc("Backup Policy", policy.name))
		except Exception:
			frappe.db.rollback()
			frappe.log_error(
				title=f"Backup Manager: missed-backup alert for {policy.name} failed",
				reference_doctype="Backup Policy",
				reference_name=policy.name,
			)
		# Recorded even when sending failed: one attempt per window, never one per tick.
		frappe.db.set_value("Backup Policy", policy.name, "last_stale_alert_at", now, update_modified=False)
		frappe.db.commit()


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
