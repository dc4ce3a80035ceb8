"""Where a backup's objects live in a bucket: `<prefix>/<site>/<backup id>/<file name>`.

The layout is the contract between upload, offsite retention and the site-independent
download tool: retention only ever touches keys that parse back into this layout.
"""

import re

from backup_manager.core.manifest import MANIFEST_FILE_NAME

# Matched with fullmatch: ASCII digits only, and no trailing newline (which "$" would accept).
BACKUP_ID_PATTERN = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._-]+", re.ASCII)
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}", re.ASCII)


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


def content_prefix(prefix: str, site: str) -> str:
	"""Return the folder of the site's deduplicated file contents, ending in a slash."""
	return f"{site_prefix(prefix, site)}files/sha256/"


def content_key(prefix: str, site: str, sha256: str) -> str:
	"""Return where a file content is stored once, by its sha256 (two-character fan-out)."""
	return f"{content_prefix(prefix, site)}{sha256[:2]}/{sha256}"


def parse_content_key(folder: str, key: str) -> str | None:
	"""Return the sha256 a key under content_prefix stores, or None if the key is not ours."""
	if not key.startswith(folder):
		return None
	fan_out, separator, sha256 = key[len(folder) :].partition("/")
	if not separator or not SHA256_PATTERN.fullmatch(sha256) or fan_out != sha256[:2]:
		return None
	return sha256


def parse_backup_key(site_folder: str, key: str) -> tuple[str, str] | None:
	"""Split a key under `site_folder` into (backup id, file name), or None if it is not ours."""
	if not key.startswith(site_folder):
		return None
	rest = key[len(site_folder) :]
	backup_id, separator, file_name = rest.partition("/")
	if not separator or not file_name or "/" in file_name or not BACKUP_ID_PATTERN.fullmatch(backup_id):
		return None
	return backup_id, file_name
