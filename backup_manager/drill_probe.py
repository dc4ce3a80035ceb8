"""Read-outs a restore drill runs inside its throwaway site, with `bench --site DRILL execute`.

Running them in their own process keeps the live site's frappe.local untouched. They only read.
"""

import frappe

# Password fields decrypted to prove the carried encryption_key: a few are as good as all.
MAX_PASSWORDS = 5


def describe_restored_site() -> dict:
	"""The site answers (ping), its apps and versions, and whether its Password fields decrypt."""
	from frappe.utils.password import get_decrypted_password

	rows = frappe.db.sql(
		"SELECT `doctype`, `name`, `fieldname` FROM `__Auth` WHERE `encrypted` = 1 "
		"ORDER BY `doctype`, `name`, `fieldname` LIMIT %s",
		MAX_PASSWORDS,
		as_dict=True,
	)
	failures = []
	for row in rows:
		try:
			get_decrypted_password(row.doctype, row.name, row.fieldname, raise_exception=True)
		except Exception as exc:
			failures.append(f"{row.doctype} {row.name} {row.fieldname}: {frappe.utils.strip_html(str(exc))}")
	frappe.clear_messages()
	apps = {}
	for app in frappe.get_installed_apps():
		try:
			apps[app] = str(frappe.get_attr(f"{app}.__version__"))
		except Exception:
			apps[app] = ""
	return {
		"ping": frappe.ping(),
		"apps": apps,
		"passwords_checked": [f"{row.doctype} {row.name} {row.fieldname}" for row in rows],
		"password_failures": failures,
	}
