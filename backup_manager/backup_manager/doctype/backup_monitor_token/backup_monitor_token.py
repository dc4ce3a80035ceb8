# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

from frappe.model.document import Document


class BackupMonitorToken(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		enabled: DF.Check
		label: DF.Data
		last_used_at: DF.Datetime | None
		token_hash: DF.Data | None
		token_hint: DF.Data | None

	# end: auto-generated types
	pass
