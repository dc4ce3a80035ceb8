# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

from frappe.model.document import Document


class BackupLogUpload(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		bytes: DF.Int
		destination: DF.Link | None
		duration: DF.Float
		error: DF.SmallText | None
		kind: DF.Data | None
		parent: DF.Data
		parentfield: DF.Data
		parenttype: DF.Data
		remote_key: DF.SmallText | None
		represented_bytes: DF.Int
		size_human: DF.Data | None
		status: DF.Literal["Pending", "Uploaded", "Failed", "Skipped"]
		verified_by: DF.Data | None
	# end: auto-generated types
	pass
