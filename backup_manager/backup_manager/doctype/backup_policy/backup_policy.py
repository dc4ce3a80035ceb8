# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

import re

import frappe
from frappe import _
from frappe.model.document import Document
from frappe.utils import get_datetime, get_time, now_datetime, validate_email_address

from backup_manager.core import schedule
from backup_manager.core.errors import InvalidPolicy
from backup_manager.core.retention import RetentionRules


class InvalidBackupPolicy(frappe.ValidationError):
	pass


class BackupPolicy(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from backup_manager.backup_manager.doctype.backup_policy_destination.backup_policy_destination import (
			BackupPolicyDestination,
		)
		from backup_manager.backup_manager.doctype.backup_policy_doctype.backup_policy_doctype import (
			BackupPolicyDocType,
		)

		alert_after_hours: DF.Int
		alert_no_verified_restore_days: DF.Int
		backup_before_migrate: DF.Check
		backup_time: DF.Time | None
		compress_files: DF.Check
		compression: DF.Literal["Fast", "Balanced", "Small"]
		cron_expression: DF.Data | None
		destinations: DF.Table[BackupPolicyDestination]
		drill_destination: DF.Link | None
		enabled: DF.Check
		exclude_doctypes: DF.TableMultiSelect[BackupPolicyDocType]
		frequency: DF.Literal["Hourly", "Every 6 Hours", "Daily", "Weekly", "Monthly", "Cron"]
		include_doctypes: DF.TableMultiSelect[BackupPolicyDocType]
		keep_daily: DF.Int
		keep_hourly: DF.Int
		keep_last: DF.Int
		keep_monthly: DF.Int
		keep_weekly: DF.Int
		keep_yearly: DF.Int
		last_backup_log: DF.Link | None
		last_drill_alert_at: DF.Datetime | None
		last_drill_status: DF.Data | None
		last_restore_drill: DF.Link | None
		last_stale_alert_at: DF.Datetime | None
		last_status: DF.Literal[
			"",
			"Queued",
			"Waiting for a slot",
			"Running",
			"Uploading",
			"Success",
			"Partial",
			"Failed",
			"Skipped",
		]
		last_success_at: DF.Datetime | None
		last_verified_restore_at: DF.Datetime | None
		next_run_at: DF.Datetime | None
		notify_on_failure: DF.Check
		notify_on_success: DF.Check
		offsite_storage_used: DF.SmallText | None
		partial_backup: DF.Check
		policy_name: DF.Data
		recipients: DF.SmallText | None
		restore_drill: DF.Literal["Off", "After every backup", "Daily", "Weekly"]
		start_window_minutes: DF.Int
		with_files: DF.Check

	# end: auto-generated types
	def validate(self):
		self.validate_schedule()
		self.validate_retention()
		self.validate_doctypes()
		self.validate_recipients()
		self.validate_drill()
		if (
			self.has_value_changed("frequency")
			or self.has_value_changed("cron_expression")
			or self.has_value_changed("start_window_minutes")
			or (self.has_value_changed("backup_time") or not self.next_run_at)
		):
			self.next_run_at = self.compute_next_run(now_datetime())

	def validate_schedule(self):
		try:
			schedule.cron_expression_for(self.frequency, self.cron_expression or "")
			schedule.validate_start_window(
				self.start_window_minutes or 0, self.get_cron_expression(), get_datetime(now_datetime())
			)
		except InvalidPolicy as exc:
			self.throw_invalid(exc)

	def validate_retention(self):
		try:
			self.get_retention_rules().validate()
		except InvalidPolicy as exc:
			self.throw_invalid(exc)
		if (self.alert_after_hours or 0) < 0:
			frappe.throw(
				_("{0} cannot be negative. Use 0 to turn the alert off.").format(
					frappe.bold(_(self.meta.get_label("alert_after_hours")))
				),
				exc=InvalidBackupPolicy,
			)

	def validate_doctypes(self):
		if not self.partial_backup:
			self.include_doctypes = []
			self.exclude_doctypes = []
			return
		include, exclude = self.get_include_doctypes(), self.get_exclude_doctypes()
		if not include and not exclude:
			frappe.throw(
				_(
					"Partial Backup is on but no DocType is listed. Add DocTypes to Include DocTypes or Exclude DocTypes, or turn Partial Backup off."
				),
				exc=InvalidBackupPolicy,
			)
		if include and exclude:
			frappe.throw(
				_(
					"Use either Include DocTypes or Exclude DocTypes, not both: Frappe's partial backup applies only one of them."
				),
				exc=InvalidBackupPolicy,
			)
		for fieldname, doctypes in (("include_doctypes", include), ("exclude_doctypes", exclude)):
			unknown = [doctype for doctype in doctypes if not frappe.db.exists("DocType", doctype)]
			if unknown:
				frappe.throw(
					_("{0}: unknown DocType {1}. Remove it or correct its name.").format(
						_(self.meta.get_label(fieldname)),
						", ".join(frappe.bold(doctype) for doctype in unknown),
					),
					exc=InvalidBackupPolicy,
				)

	def validate_recipients(self):
		recipients = self.get_recipients()
		invalid = [address for address in recipients if not validate_email_address(address)]
		if invalid:
			frappe.throw(
				_("Recipients: {0} is not a valid email address. Fix or remove it.").format(
					", ".join(frappe.bold(address) for address in invalid)
				),
				exc=InvalidBackupPolicy,
			)
		if (self.notify_on_failure or self.notify_on_success or self.alert_after_hours) and not recipients:
			frappe.msgprint(
				_("No Recipients set: alerts for this policy go to every System Manager."),
				indicator="orange",
				alert=True,
			)

	def validate_drill(self):
		if (self.alert_no_verified_restore_days or 0) < 0:
			frappe.throw(
				_("{0} cannot be negative. Use 0 to turn the alert off.").format(
					frappe.bold(_(self.meta.get_label("alert_no_verified_restore_days")))
				),
				exc=InvalidBackupPolicy,
			)
		destinations = [row.destination for row in self.destinations or []]
		if self.drill_destination and self.drill_destination not in destinations:
			frappe.throw(
				_(
					"{0}: {1} is not one of this policy's destinations. Add it under Destinations or clear the field."
				).format(_(self.meta.get_label("drill_destination")), frappe.bold(self.drill_destination)),
				exc=InvalidBackupPolicy,
			)

	def get_drill_destination(self) -> str | None:
		"""The destination drills restore from: the chosen one, else the first, else None (local files)."""
		if self.drill_destination:
			return self.drill_destination
		return self.destinations[0].destination if self.destinations else None

	def throw_invalid(self, exc: InvalidPolicy):
		frappe.throw(str(exc), title=_(self.meta.get_label(exc.field)), exc=InvalidBackupPolicy)

	def get_cron_expression(self) -> str:
		return schedule.cron_expression_for(
			self.frequency, self.cron_expression or "", get_time(self.backup_time or "00:00:00")
		)

	def compute_next_run(self, after):
		"""The next start: the schedule's next time, spread inside the Start Window (fixed per site and policy)."""
		return schedule.next_start_after(
			self.get_cron_expression(),
			get_datetime(after),
			site=frappe.local.site,
			policy=self.name or self.policy_name,
			window_minutes=self.start_window_minutes or 0,
		)

	def get_retention_rules(self) -> RetentionRules:
		return RetentionRules(
			keep_last=self.keep_last or 0,
			keep_hourly=self.keep_hourly or 0,
			keep_daily=self.keep_daily or 0,
			keep_weekly=self.keep_weekly or 0,
			keep_monthly=self.keep_monthly or 0,
			keep_yearly=self.keep_yearly or 0,
		)

	def get_include_doctypes(self) -> list[str]:
		return [row.document_type for row in self.include_doctypes or []] if self.partial_backup else []

	def get_exclude_doctypes(self) -> list[str]:
		return [row.document_type for row in self.exclude_doctypes or []] if self.partial_backup else []

	def get_recipients(self) -> list[str]:
		return [address for address in re.split(r"[\s,;]+", self.recipients or "") if address]
