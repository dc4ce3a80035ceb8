# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

from frappe.model.document import Document


class BackupLogApp(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		app: DF.Data | None
		branch: DF.Data | None
		commit: DF.Data | None
		parent: DF.Data
		parentfield: DF.Data
		parenttype: DF.Data
		version: DF.Data | None
	# end: auto-generated types
	pass
