# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

from frappe.model.document import Document


class BackupRestoreDrill(Document):
	"""One restore drill: a backup restored into a throwaway site, checked, and dropped.

	Written only by backup_manager.drills; users read it (System Manager only).
	"""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from backup_manager.backup_manager.doctype.backup_restore_drill_check.backup_restore_drill_check import (
			BackupRestoreDrillCheck,
		)

		backup_log: DF.Link
		checks: DF.Table[BackupRestoreDrillCheck]
		checks_seconds: DF.Float
		destination: DF.Link | None
		drill_site: DF.Data | None
		duration: DF.Duration | None
		error_message: DF.SmallText | None
		finished_at: DF.Datetime | None
		output: DF.Code | None
		policy: DF.Link | None
		queued_at: DF.Datetime | None
		restore_seconds: DF.Float
		site_dropped: DF.Check
		source: DF.Data | None
		started_at: DF.Datetime | None
		status: DF.Literal["Queued", "Running", "Passed", "Failed", "Refused"]
		trigger: DF.Literal["Scheduled", "Manual", "CLI"]
	# end: auto-generated types
	pass
