"""Where a backup's objects live in a bucket: `<prefix>/<site>/<backup id>/<file name>`.

The layout is the contract between upload, offsite retention and the site-independent
download tool: retention only ever touches keys that parse back into this layout.
"""

import re

from backup_manager.core.manifest import MANIFEST_FILE_NAME

# Matched with fullmatch: ASCII digits only, and no trailing newline (which "$" would accept).
BACKUP_ID_PATTERN = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._-]+", re.ASCII)


def site_prefix(prefix: str, site: str) -> str:
	"""Return the folder holding every backup of `site`, ending in a slash."""
	parts = [part.strip("/") for part in (prefix or "", site) if part and part.strip("/")]
	return "/".join(parts) + "/"


def backup_prefix(prefix: str, site: str, backup_id: str) -> str:
	return f"{site_prefix(prefix, site)}{backup_id}/"


def object_key(prefix: str, site: str, backup_id: str, file_name: str) -> str:
	return f"{backup_prefix(prefix, site, backup_id)}{file_name}"


def manifest_key(prefix: str, site: str, backup_id: str) -> str:
	return object_key(prefix, site, backup_id, MANIFEST_FILE_NAME)


def parse_backup_key(site_folder: str, key: str) -> tuple[str, str] | None:
	"""Split a key under `site_folder` into (backup id, file name), or None if it is not ours."""
	if not key.startswith(site_folder):
		return None
	rest = key[len(site_folder) :]
	backup_id, separator, file_name = rest.partition("/")
	if not separator or not file_name or "/" in file_name or not BACKUP_ID_PATTERN.fullmatch(backup_id):
		return None
	return backup_id, file_name
