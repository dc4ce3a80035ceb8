# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

import frappe
from frappe import _
from frappe.model import no_value_fields, table_fields
from frappe.model.document import Document
from frappe.utils import cstr, flt

from backup_manager.core.manifest import Manifest

USER_EDITABLE_FIELDS = {"keep_forever"}


class BackupLogReadOnly(frappe.ValidationError):
	pass


class BackupLog(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from backup_manager.backup_manager.doctype.backup_log_app.backup_log_app import BackupLogApp
		from backup_manager.backup_manager.doctype.backup_log_artifact.backup_log_artifact import (
			BackupLogArtifact,
		)
		from backup_manager.backup_manager.doctype.backup_log_upload.backup_log_upload import BackupLogUpload

		apps: DF.Table[BackupLogApp]
		artifacts: DF.Table[BackupLogArtifact]
		backup_dir: DF.SmallText | None
		backup_id: DF.Data | None
		compression_level: DF.Int
		compressor: DF.Data | None
		duration: DF.Duration | None
		encrypted: DF.Check
		error_class: DF.Data | None
		error_message: DF.SmallText | None
		finished_at: DF.Datetime | None
		frappe_version: DF.Data | None
		keep_forever: DF.Check
		last_restore_drill: DF.Link | None
		local_files_deleted: DF.Check
		manifest: DF.Code | None
		next_upload_retry_at: DF.Datetime | None
		offsite_savings: DF.SmallText | None
		partial: DF.Check
		policy: DF.Link | None
		prune_reason: DF.SmallText | None
		pruned_at: DF.Datetime | None
		queued_at: DF.Datetime | None
		restore_verified: DF.Check
		restore_verified_at: DF.Datetime | None
		site: DF.Data | None
		skip_reason: DF.SmallText | None
		started_at: DF.Datetime | None
		status: DF.Literal[
			"Queued", "Waiting for a slot", "Running", "Uploading", "Success", "Partial", "Failed", "Skipped"
		]
		total_size: DF.Int
		total_size_human: DF.Data | None
		traceback: DF.Code | None
		trigger: DF.Literal["Scheduled", "Manual", "Before Migrate", "CLI"]
		unrecognised_objects: DF.SmallText | None
		upload_attempts: DF.Int
		uploads: DF.Table[BackupLogUpload]
		with_files: DF.Check

	# end: auto-generated types
	def validate(self):
		if self.is_new() or self.flags.written_by_backup_manager:
			return
		before = self.get_doc_before_save()
		changed = [
			df.label
			for df in self.meta.fields
			if df.fieldtype not in no_value_fields
			and df.fieldtype not in table_fields
			and df.fieldname not in USER_EDITABLE_FIELDS
			and before
			and before.get(df.fieldname) != self.get(df.fieldname)
		]
		changed += [
			df.label
			for df in self.meta.get_table_fields()
			if before and _describe_rows(before.get(df.fieldname)) != _describe_rows(self.get(df.fieldname))
		]
		if changed:
			frappe.throw(
				_(
					"Backup Logs are written by Backup Manager; only Keep Forever can be changed (you changed: {0})."
				).format(", ".join(changed)),
				exc=BackupLogReadOnly,
			)

	def get_manifest(self) -> Manifest | None:
		return Manifest.from_json(self.manifest) if self.manifest else None


def _describe_rows(rows) -> list[tuple]:
	"""A child table's rows as their values only, normalised, to compare before and after a save."""
	described = []
	for row in rows or []:
		row = row if hasattr(row, "meta") else frappe._dict(row)
		fields = row.meta.fields if hasattr(row, "meta") else []
		described.append(
			tuple(
				round(flt(row.get(df.fieldname)), 6)
				if df.fieldtype in ("Int", "Float", "Check", "Currency", "Percent")
				else cstr(row.get(df.fieldname))
				for df in fields
				if df.fieldtype not in no_value_fields
			)
		)
	return described
