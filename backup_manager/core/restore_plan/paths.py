"""Where each artifact is read from, and the paths Frappe's restore is given."""

import os
from dataclasses import dataclass

from backup_manager.core.manifest import (
	DATABASE,
	PRIVATE_FILES,
	PUBLIC_FILES,
	Artifact,
	Manifest,
)
from backup_manager.core.restore_plan.constants import (
	DEFAULT_WORK_FOLDER,
	PREPARED_BASE_NAMES,
	PREPARED_FOLDER,
)
from backup_manager.core.restore_plan.model import RestoreOptions
from backup_manager.core.restore_plan.shell import is_shell_safe


@dataclass
class ResolvedPaths:
	"""Where each artifact is read from, and the paths handed to Frappe."""

	bench: str
	source_dir: str
	work_dir: str
	prepared_dir: str
	sources: dict[str, str]
	restore_paths: dict[str, str]
	decrypt: list[Artifact]
	links: list[Artifact]


def resolve_paths(manifest: Manifest, options: RestoreOptions, restored_kinds: list[str]) -> ResolvedPaths:
	"""Place every restored artifact: read as is, decrypted into prepared/, or linked there."""
	bench = os.path.normpath(options.bench_path)
	work_dir = (
		_make_absolute(bench, options.download_dir)
		if options.download_dir
		else os.path.join(bench, DEFAULT_WORK_FOLDER, manifest.backup_id)
	)
	source_dir = _make_absolute(bench, options.local_dir) if options.local_dir else work_dir
	prepared_dir = os.path.join(work_dir, PREPARED_FOLDER)
	paths = ResolvedPaths(bench, source_dir, work_dir, prepared_dir, {}, {}, [], [])
	for kind in restored_kinds:
		artifact = manifest.artifact(kind)
		if artifact:
			_place_artifact(manifest, artifact, paths)

	uses_work_dir = not options.local_dir or paths.decrypt or paths.links
	if uses_work_dir and not is_shell_safe(work_dir):
		field_name = "download_dir" if options.download_dir else "bench_path"
		raise ValueError(
			f"RestoreOptions.{field_name} gives the work folder {work_dir!r}, which Frappe's restore cannot use: "
			"it passes file paths through a shell unquoted. Set RestoreOptions.download_dir to a path made "
			"only of letters, digits and . _ - / characters."
		)
	return paths


def _make_absolute(bench: str, path: str) -> str:
	return os.path.normpath(path if os.path.isabs(path) else os.path.join(bench, path))


def _place_artifact(manifest: Manifest, artifact: Artifact, paths: ResolvedPaths) -> None:
	kind = artifact.kind
	source = os.path.join(paths.source_dir, artifact.file_name)
	paths.sources[kind] = source
	if artifact.encrypted or (manifest.encrypted and _looks_encrypted(artifact)):
		paths.decrypt.append(artifact)
		paths.restore_paths[kind] = os.path.join(paths.prepared_dir, _get_prepared_name(artifact))
	elif kind != DATABASE or is_shell_safe(source):
		# Only the dump goes through Frappe (bench new-site --source-sql, bench restore), which passes
		# its path through a shell unquoted; the plan's own programs read the other files by argv.
		paths.restore_paths[kind] = source
	else:
		paths.links.append(artifact)
		paths.restore_paths[kind] = os.path.join(paths.prepared_dir, _get_prepared_name(artifact))


def _get_prepared_name(artifact: Artifact) -> str:
	name = artifact.file_name.lower()
	if name.endswith(".gpg"):
		name = name[: -len(".gpg")]
	if artifact.kind == DATABASE:
		suffix = ".sql.gz" if name.endswith(".gz") else ".sql"
	elif artifact.kind in (PUBLIC_FILES, PRIVATE_FILES):
		suffix = ".tgz" if name.endswith((".tgz", ".gz")) else ".tar"
	else:
		suffix = ".json"
	return PREPARED_BASE_NAMES[artifact.kind] + suffix


def _looks_encrypted(artifact: Artifact) -> bool:
	# Older manifests only flag the whole backup; Frappe's own encrypted files carry "-enc".
	return "-enc." in artifact.file_name
