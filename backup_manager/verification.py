"""Re-checking a stored backup against what its Backup Log recorded."""

import os
from dataclasses import asdict, dataclass

from backup_manager.core.errors import BackupManagerError
from backup_manager.local_backup import verify_local_artifact


@dataclass
class Check:
	kind: str
	file_name: str
	ok: bool
	message: str

	def as_dict(self) -> dict:
		return asdict(self)


def verify_offsite_backup(log, read_back: bool = False) -> list[Check]:
	"""Check a log's objects in every destination it was uploaded to: exist, size, checksum."""
	import frappe

	from backup_manager.core import offsite
	from backup_manager.core.manifest import Manifest

	destinations = list(dict.fromkeys(row.destination for row in log.uploads))
	if not destinations or not log.manifest:
		return [Check("", "", False, f"Backup Log {log.name} was not uploaded to any destination.")]
	manifest = Manifest.from_json(log.manifest)
	checks = []
	for name in destinations:
		destination = frappe.get_doc("Backup Destination", name)
		try:
			results = offsite.verify_remote_backup(
				destination.get_backend(),
				manifest,
				prefix=destination.path_prefix or "",
				site=log.site,
				read_back=read_back,
			)
		except Exception as exc:
			checks.append(Check("", name, False, f"{name}: {exc}"))
			continue
		for result in results:
			checks.append(
				Check(result.kind, f"{name}:{result.key}", result.ok, f"{result.check}: {result.message}")
			)
	return checks


def verify_local_backup(log) -> list[Check]:
	"""Check every artifact of a log: present, same size and sha256, gzip complete, tars readable."""
	if log.local_files_deleted:
		return [Check("", "", False, "The local files of this backup were deleted by retention.")]
	if not log.artifacts:
		return [Check("", "", False, f"Backup Log {log.name} has no artifacts (status {log.status}).")]
	checks = []
	for artifact in log.artifacts:
		path = artifact.local_path or os.path.join(log.backup_dir or "", artifact.file_name)
		try:
			verify_local_artifact(artifact.kind, path, artifact.size, artifact.sha256)
		except (BackupManagerError, OSError) as exc:
			checks.append(Check(artifact.kind, artifact.file_name, False, str(exc)))
		else:
			checks.append(Check(artifact.kind, artifact.file_name, True, "size and sha256 match, readable"))
	return checks
