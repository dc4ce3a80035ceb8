"""Deduplicated files are on by default for new destinations only.

Existing destinations keep uploading whole archives, as before the option existed: switching
them would change what their next backups look like offsite without anyone asking for it.
"""

import frappe


def execute():
	frappe.db.sql("UPDATE `tabBackup Destination` SET deduplicate_files = 0")
