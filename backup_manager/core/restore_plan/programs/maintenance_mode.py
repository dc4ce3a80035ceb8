import json
import os
import sys
import tempfile

# maintenance_mode.py SITE 1|0: what `bench --site SITE set-maintenance-mode on|off` does
# (Frappe's update_site_config("maintenance_mode", 1 or 0)), without starting bench. The file
# is replaced atomically, so a reader never sees half of it.
site, state = sys.argv[1], int(sys.argv[2])
config_path = os.path.join("sites", site, "site_config.json")
with open(config_path, encoding="utf-8") as handle:
	config = json.load(handle)
config["maintenance_mode"] = state
descriptor, temporary_path = tempfile.mkstemp(dir=os.path.dirname(config_path), prefix=".backup-manager-tmp-")
try:
	with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
		json.dump(config, handle, indent=1, sort_keys=True)
	os.chmod(temporary_path, os.stat(config_path).st_mode & 0o777)
	os.replace(temporary_path, config_path)
except BaseException:
	os.unlink(temporary_path)
	raise
print(f"Maintenance mode of {site} is {'on' if state else 'off'}.")
