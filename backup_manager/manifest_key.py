"""The site's manifest key: created once, kept in site_config.json, used to sign every manifest.

It is an HMAC key (core.manifest), not a password stored in the database, so that it survives
the loss of the database and can be handed to the site-independent tools (BACKUP_MANIFEST_KEY).
It is never logged, never written to a Backup Log, never put on a command line.
"""

import frappe
from frappe.installer import update_site_config

from backup_manager.core.manifest import MANIFEST_KEY_CONFIG, Manifest, generate_manifest_key, sign_manifest


def get_or_create_manifest_key() -> str:
	"""The site's manifest key, generated and saved to site_config.json the first time."""
	key = frappe.conf.get(MANIFEST_KEY_CONFIG)
	if key:
		return key
	key = generate_manifest_key()
	update_site_config(MANIFEST_KEY_CONFIG, key)
	frappe.logger("backup_manager").info(
		"Generated the manifest key (%s in site_config.json)", MANIFEST_KEY_CONFIG
	)
	return key


def get_manifest_key() -> str | None:
	"""The site's manifest key, or None when none was generated yet (nothing signed with one)."""
	return frappe.conf.get(MANIFEST_KEY_CONFIG) or None


def sign(manifest: Manifest) -> Manifest:
	"""Sign a manifest with the site's key (created if missing); return it."""
	return sign_manifest(manifest, get_or_create_manifest_key())
