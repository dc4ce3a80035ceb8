import json
import os
import stat
import sys
import tempfile

backup_config_path, site = sys.argv[1], sys.argv[2]
carry_backup_key, carry_manifest_key = sys.argv[3] == "1", sys.argv[4] == "1"
# These describe the original site's own database, not something the restored site needs.
site_specific_keys = {"db_name", "db_password", "db_type", "db_host", "db_port"}
with open(backup_config_path) as handle:
	backup_config = json.load(handle)
site_config_path = os.path.join("sites", site, "site_config.json")
with open(site_config_path) as handle:
	site_config = json.load(handle)

encryption_key = backup_config.get("encryption_key")
changed = []
if not encryption_key:
	# Frappe creates the key the first time it encrypts a Password field: without one, the
	# original site held no encrypted passwords and there is nothing to carry.
	print("The backup's site config has no encryption_key: the original site stored no encrypted passwords.")
elif site_config.get("encryption_key") != encryption_key:
	site_config["encryption_key"] = encryption_key
	changed.append("encryption_key")
if carry_backup_key:
	backup_key = os.environ.get("BACKUP_ENCRYPTION_KEY")
	if backup_key and site_config.get("backup_encryption_key") != backup_key:
		site_config["backup_encryption_key"] = backup_key
		changed.append("backup_encryption_key")
if carry_manifest_key:
	manifest_key = os.environ.get("BACKUP_MANIFEST_KEY")
	if manifest_key and site_config.get("backup_manager_manifest_key") != manifest_key:
		site_config["backup_manager_manifest_key"] = manifest_key
		changed.append("backup_manager_manifest_key")

if changed:
	# Atomic (temporary file in the same folder, then rename), never readable by others while
	# it holds the keys; the config keeps its mode, without group/other access.
	mode = stat.S_IMODE(os.stat(site_config_path).st_mode) & 0o700
	descriptor, temporary_path = tempfile.mkstemp(
		dir=os.path.dirname(site_config_path), prefix=".backup-manager-tmp-"
	)
	try:
		with os.fdopen(descriptor, "w") as handle:
			json.dump(site_config, handle, indent=1, sort_keys=True)
		os.chmod(temporary_path, mode or 0o600)
		os.replace(temporary_path, site_config_path)
	except BaseException:
		os.unlink(temporary_path)
		raise
	print("Set in " + site_config_path + ": " + ", ".join(changed))
else:
	print(site_config_path + " left unchanged.")
not_copied = sorted(set(backup_config) - set(site_config) - site_specific_keys)
if not_copied:
	print("Keys of the original site config not copied (review them): " + ", ".join(not_copied))
