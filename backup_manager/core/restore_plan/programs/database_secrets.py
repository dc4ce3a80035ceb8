import json
import os
import sys
import tempfile

# database_secrets.py SITE MODE: MODE "1" (bench new-site) writes root_password into the common
# config when neither config has it; "check" (this site: bench backup-manager restore-and-migrate
# hands $DB_ROOT_PASSWORD to Frappe's restore in its own process) only checks that it is at hand.
site, mode = sys.argv[1], sys.argv[2]
if mode not in ("1", "check"):
	sys.exit(f"Unknown mode {mode!r}: 1 (a new site) or check (this site).")
check_only = mode == "check"
common_config_path = os.path.join("sites", "common_site_config.json")
with open(common_config_path) as handle:
	common_config = json.load(handle)
site_config = {}
site_config_path = os.path.join("sites", site, "site_config.json")
if check_only and os.path.isfile(site_config_path):
	with open(site_config_path) as handle:
		site_config = json.load(handle)

added = []
if not (common_config.get("root_password") or site_config.get("root_password")):
	root_password = os.environ.get("DB_ROOT_PASSWORD")
	if not root_password:
		sys.exit(
			"Set DB_ROOT_PASSWORD to the database root password "
			"(or put root_password in sites/common_site_config.json), then run the plan again."
		)
	if check_only:
		print("The restore takes the database root password from DB_ROOT_PASSWORD, in its own process.")
		sys.exit(0)
	common_config["root_password"] = root_password
	added.append("root_password")
if check_only:
	print("The site or common config holds the database root password the restore needs.")
elif added:
	# Written to a 0600 temporary file in the same folder, then renamed over the original: never
	# half-written, and the passwords are never in a file other users can read. The original (and
	# its mode) comes back from the saved copy after the restore.
	descriptor, temporary_path = tempfile.mkstemp(dir="sites", prefix=".backup-manager-tmp-")
	try:
		with os.fdopen(descriptor, "w") as handle:
			json.dump(common_config, handle, indent=1, sort_keys=True)
		os.replace(temporary_path, common_config_path)
	except BaseException:
		os.unlink(temporary_path)
		raise
	print("Added to sites/common_site_config.json until the restore is done: " + ", ".join(added))
else:
	print("sites/common_site_config.json already holds what the restore needs; left unchanged.")
