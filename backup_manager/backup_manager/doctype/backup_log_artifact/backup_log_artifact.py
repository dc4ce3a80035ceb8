# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

from frappe.model.document import Document


class BackupLogArtifact(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		encrypted: DF.Check
		file_name: DF.Data | None
		kind: DF.Literal["database", "public_files", "private_files", "site_config"]
		local_path: DF.SmallText | None
		parent: DF.Data
		parentfield: DF.Data
		parenttype: DF.Data
		sha256: DF.Data | None
		size: DF.Int
		size_human: DF.Data | None
	# end: auto-generated types
	pass
