"""The manifest: what one backup holds, enough to verify and restore it anywhere.

It is stored on the Backup Log and uploaded last, next to the artifacts, as the
completion marker of an offsite backup.

A manifest is authenticated with an HMAC-SHA256 key that lives with the site (site_config.json,
MANIFEST_KEY_CONFIG), never in the bucket: whoever can write to the bucket cannot forge one.
The signature covers a canonical serialization (sorted-keys JSON without the signature) of the
manifest as read, so fields a newer version adds are covered too. Manifests written before
signing existed have no signature and are read as "unsigned".
"""

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field

from backup_manager.core.errors import ManifestNotAuthentic

MANIFEST_FORMAT = 1
MANIFEST_FILE_NAME = "manifest.json"

DATABASE = "database"
PUBLIC_FILES = "public_files"
PRIVATE_FILES = "private_files"
SITE_CONFIG = "site_config"
ARTIFACT_KINDS = (DATABASE, PUBLIC_FILES, PRIVATE_FILES, SITE_CONFIG)


@dataclass
class Artifact:
	kind: str
	file_name: str
	size: int
	sha256: str
	encrypted: bool = False
	# What a restore drill checks, recorded while the artifact was checked (None in older manifests).
	# Database: rows of every table, counted from the dump itself.
	row_counts: dict[str, int] | None = None
	# Files archives: regular files, their total bytes, and {path below files/: sha256} of a sample.
	file_count: int | None = None
	file_bytes: int | None = None
	file_samples: dict[str, str] | None = None


@dataclass
class InstalledApp:
	name: str
	version: str
	branch: str = ""
	commit: str = ""


@dataclass
class Manifest:
	backup_id: str
	site: str
	created_at: str
	frappe_version: str
	apps: list[InstalledApp] = field(default_factory=list)
	artifacts: list[Artifact] = field(default_factory=list)
	encrypted: bool = False
	partial: bool = False
	include_doctypes: list[str] = field(default_factory=list)
	exclude_doctypes: list[str] = field(default_factory=list)
	policy: str = ""
	format: int = MANIFEST_FORMAT
	# "hmac-sha256:<hex>" over canonical_manifest_bytes; "" for a manifest written before signing.
	signature: str = ""

	def artifact(self, kind: str) -> Artifact | None:
		return next((artifact for artifact in self.artifacts if artifact.kind == kind), None)

	@property
	def total_size(self) -> int:
		return sum(artifact.size for artifact in self.artifacts)

	def to_dict(self) -> dict:
		return asdict(self)

	def to_json(self) -> str:
		return json.dumps(self.to_dict(), indent=1, sort_keys=True)

	@classmethod
	def from_dict(cls, data: dict) -> "Manifest":
		data = dict(data)
		if data.get("format", MANIFEST_FORMAT) > MANIFEST_FORMAT:
			raise ValueError(
				f"Manifest format {data['format']} is newer than this Backup Manager understands "
				f"({MANIFEST_FORMAT}); upgrade the app"
			)
		data["apps"] = [InstalledApp(**app) for app in data.get("apps", [])]
		artifact_fields = set(Artifact.__dataclass_fields__)
		data["artifacts"] = [
			Artifact(**{key: value for key, value in artifact.items() if key in artifact_fields})
			for artifact in data.get("artifacts", [])
		]
		known = set(cls.__dataclass_fields__)
		return cls(**{key: value for key, value in data.items() if key in known})

	@classmethod
	def from_json(cls, text: str) -> "Manifest":
		return cls.from_dict(json.loads(text))


# site_config.json key of the HMAC key, and the variable the site-independent tools read it from.
MANIFEST_KEY_CONFIG = "backup_manager_manifest_key"
ENV_MANIFEST_KEY = "BACKUP_MANIFEST_KEY"
SIGNATURE_SCHEME = "hmac-sha256:"
# Outcomes of authenticate_manifest_data.
VERIFIED = "verified"
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad signature"
NO_KEY = "no key"


def generate_manifest_key() -> str:
	"""A new random manifest key (256 bits, hex)."""
	return secrets.token_hex(32)


def canonical_manifest_bytes(data: dict) -> bytes:
	"""The bytes a signature covers: the manifest's fields except the signature, sorted-keys JSON."""
	unsigned = {name: value for name, value in data.items() if name != "signature"}
	return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def compute_signature(data: dict, key: str) -> str:
	digest = hmac.new(key.encode(), canonical_manifest_bytes(data), hashlib.sha256).hexdigest()
	return SIGNATURE_SCHEME + digest


def sign_manifest(manifest: Manifest, key: str) -> Manifest:
	"""Set the manifest's signature with `key` (re-signing replaces an older one); return it."""
	if not key:
		raise ManifestNotAuthentic(
			"No manifest key to sign with: the site has no backup_manager_manifest_key."
		)
	manifest.signature = ""
	manifest.signature = compute_signature(manifest.to_dict(), key)
	return manifest


def authenticate_manifest_data(data: dict, key: str | None) -> str:
	"""VERIFIED, UNSIGNED, BAD_SIGNATURE, or NO_KEY (nothing to check a signature with)."""
	signature = data.get("signature")
	if not signature:
		return UNSIGNED
	if not key:
		return NO_KEY
	if not isinstance(signature, str):
		return BAD_SIGNATURE
	expected = compute_signature(data, key)
	return VERIFIED if hmac.compare_digest(signature.encode(), expected.encode()) else BAD_SIGNATURE


def describe_authentication(status: str) -> str:
	"""Why a manifest is not trusted, in plain words."""
	return {
		VERIFIED: "its signature verifies with this site's manifest key",
		UNSIGNED: "it carries no signature (written before manifests were signed, or not by Backup Manager)",
		BAD_SIGNATURE: "its signature does not verify with the manifest key: it was not written by this "
		"site, or it was altered",
		NO_KEY: f"no manifest key was given to check its signature (set {ENV_MANIFEST_KEY})",
	}[status]


def load_authenticated_manifest(
	raw: bytes, key: str | None, *, site: str, backup_id: str, trust_unverified: bool = False
) -> tuple[Manifest, str]:
	"""Parse a manifest read from an untrusted place; raise ManifestNotAuthentic unless it is ours.

	It must verify with `key` and name `site` and `backup_id`. With trust_unverified, only a
	manifest that cannot be parsed is refused; the caller must warn loudly. Returns the manifest
	and its authentication status.
	"""
	try:
		data = json.loads(raw.decode())
		if not isinstance(data, dict):
			raise ValueError("not a JSON object")
		manifest = Manifest.from_dict(data)
	except (ValueError, TypeError, UnicodeDecodeError) as exc:
		raise ManifestNotAuthentic(f"The manifest of backup {backup_id} cannot be read: {exc}") from exc
	status = authenticate_manifest_data(data, key)
	problems = []
	if status != VERIFIED:
		problems.append(f"it is not authenticated: {describe_authentication(status)}")
	if manifest.site != site:
		problems.append(f"it names the site {escape_control_characters(str(manifest.site))!r}, not {site!r}")
	if manifest.backup_id != backup_id:
		problems.append(
			f"it names the backup {escape_control_characters(str(manifest.backup_id))!r}, not {backup_id!r}"
		)
	if problems and not trust_unverified:
		raise ManifestNotAuthentic(
			f"Refusing the manifest of backup {backup_id} of {site}: "
			+ "; ".join(problems)
			+ f". Set {ENV_MANIFEST_KEY} to the site's {MANIFEST_KEY_CONFIG} (from its site_config.json). "
			"Only if you know where this backup comes from, pass --trust-unverified."
		)
	return manifest, status


def escape_control_characters(text: str) -> str:
	"""Show control characters (newlines, escapes, NUL) as visible escapes, so a value cannot fake lines."""
	return "".join(
		character
		if ord(character) >= 0x20 and ord(character) != 0x7F and not 0x80 <= ord(character) < 0xA0
		else repr(character)[1:-1]
		for character in text
	)


def sha256sum_lines(manifest: Manifest) -> str:
	"""Return the manifest's checksums in `sha256sum -c` format."""
	return "".join(f"{artifact.sha256}  {artifact.file_name}\n" for artifact in manifest.artifacts)
