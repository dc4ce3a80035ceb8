"""The manifest: what one backup holds, enough to verify and restore it anywhere.

It is stored on the Backup Log and uploaded last, next to the artifacts, as the
completion marker of an offsite backup.
"""

import json
from dataclasses import asdict, dataclass, field

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
		data["artifacts"] = [Artifact(**artifact) for artifact in data.get("artifacts", [])]
		known = set(cls.__dataclass_fields__)
		return cls(**{key: value for key, value in data.items() if key in known})

	@classmethod
	def from_json(cls, text: str) -> "Manifest":
		return cls.from_dict(json.loads(text))


def sha256sum_lines(manifest: Manifest) -> str:
	"""Return the manifest's checksums in `sha256sum -c` format."""
	return "".join(f"{artifact.sha256}  {artifact.file_name}\n" for artifact in manifest.artifacts)
