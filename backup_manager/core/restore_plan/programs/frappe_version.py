import os
import re
import sys

# frappe_version.py BACKUP_VERSION: the check `bench restore` makes before it restores
# (frappe.installer.is_downgrade), for the paths that do not go through it. A backup of a newer
# Frappe stops the restore unless ALLOW_DOWNGRADE=1; an unreadable version is not a downgrade,
# as in Frappe.
backup_version = sys.argv[1]
init_path = os.path.join("apps", "frappe", "frappe", "__init__.py")
pattern = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


def parse(version):
	try:
		from packaging.version import InvalidVersion, Version
	except ImportError:
		numbers = re.findall(r"\d+", version)[:3]
		return tuple(int(number) for number in numbers) or None
	try:
		return Version(version)
	except InvalidVersion:
		return None


bench_version = ""
if os.path.isfile(init_path):
	with open(init_path, encoding="utf-8", errors="replace") as handle:
		match = pattern.search(handle.read())
	bench_version = match.group(1) if match else ""
backup, bench = parse(backup_version), parse(bench_version)
if backup is not None and bench is not None and backup > bench:
	if os.environ.get("ALLOW_DOWNGRADE") != "1":
		sys.exit(
			f"The backup was taken on Frappe {backup_version}, this bench has {bench_version}: restoring it "
			"here is a downgrade. Upgrade this bench, or set ALLOW_DOWNGRADE=1 to restore anyway."
		)
	print(f"Restoring a backup of Frappe {backup_version} on {bench_version} (ALLOW_DOWNGRADE=1).")
else:
	print(
		f"Frappe {bench_version or 'version unknown'} in this bench, {backup_version or 'unknown'} in the backup."
	)
