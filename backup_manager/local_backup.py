"""Taking the local backup: the one caller of frappe.utils.backups.

Frappe's BackupGenerator takes the backup with the steps new_backup runs (dump, site config,
file tars; the tars are written beside the dump rather than after it), with the policy's
compressor standing in for gzip (core.compression). The dump is checked, hashed and its rows
counted by a thread that follows it as it is written, each tar is checked as soon as it is
written, and each artifact is handed to the offsite uploads as soon as it is checked, so each
byte is read once here while other work runs.

Each run writes into its own folder `<backup root>/<backup id>.partial/`, which is renamed to
`<backup id>/` only once every artifact is written, checked and hashed. A failed run removes
its folder, so no half-written artifact is ever left behind. The backup root is outside
Frappe's `private/backups`, whose 24-hour cleanup (delete_temp_backups) would otherwise
delete what our retention keeps.
"""

import contextlib
import contextvars
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from typing import Protocol

import frappe
from frappe import _
from frappe.utils.backups import BackupGenerator, get_or_generate_backup_encryption_key

from backup_manager.core import checksums, progress
from backup_manager.core.compression import Compressor, compressor_as_gzip, find_compressor
from backup_manager.core.contents import DumpParseError, FileStatsCollector, RowCounter
from backup_manager.core.dedup import FileIndex, index_archive
from backup_manager.core.dump_password import password_in_environment
from backup_manager.core.encryption import encrypt_file_in_place, is_gpg_encrypted
from backup_manager.core.errors import ArtifactError
from backup_manager.core.manifest import (
	DATABASE,
	MANIFEST_FILE_NAME,
	MANIFEST_KEY_CONFIG,
	PRIVATE_FILES,
	PUBLIC_FILES,
	SITE_CONFIG,
	Artifact,
	InstalledApp,
	Manifest,
)
from backup_manager.core.private_files import FOLDER_MODE, restrict_tree
from backup_manager.core.processes import terminate_children_naming
from backup_manager.core.progress import ProgressReporter
from backup_manager.core.threads import thread_during_block
from backup_manager.manifest_key import sign
from backup_manager.progress import watch_folder

PARTIAL_SUFFIX = ".partial"
# How often the private tar's appearance is looked for while Frappe writes the tars.
WATCH_SECONDS = 0.05
# How often a failed run looks for tar commands to stop, until Frappe's backup_files returns.
STOP_POLL_SECONDS = 0.2
# The manifest lists the artifacts in this order, whichever check ends first.
ARTIFACT_ORDER = (DATABASE, SITE_CONFIG, PUBLIC_FILES, PRIVATE_FILES)


@dataclass
class BackupRequest:
	backup_id: str
	policy: str = ""
	with_files: bool = True
	compress_files: bool = False
	include_doctypes: list[str] = field(default_factory=list)
	exclude_doctypes: list[str] = field(default_factory=list)
	# None: igzip, pigz or gzip at the default level (core.compression.find_compressor).
	compressor: Compressor | None = None
	# The previous backup's artifact sizes by kind: the progress estimate while the new one is written.
	expected_sizes: dict[str, int] = field(default_factory=dict)
	# A destination stores deduplicated files: index each files archive in the read that hashes it.
	index_files: bool = False


class ArtifactReceiver(Protocol):
	"""Takes artifacts as soon as they are checked and hashed (core.offsite.BackupUpload)."""

	def add(self, artifact: Artifact, path: str, index: FileIndex | None = None) -> None: ...

	def wait(self) -> None: ...

	def cancel(self) -> None: ...


def get_backup_root() -> str:
	"""Return the absolute folder holding this site's Backup Manager backups."""
	configured = frappe.conf.get("backup_manager_path")
	if configured:
		return os.path.abspath(os.path.join(configured, frappe.local.site))
	return os.path.abspath(frappe.get_site_path("private", "backup_manager"))


def get_backup_dir(backup_id: str) -> str:
	return os.path.join(get_backup_root(), backup_id)


def is_inside_backup_root(path: str) -> bool:
	"""True only for a folder directly inside the backup root: what our retention may delete."""
	root = os.path.realpath(get_backup_root())
	return os.path.dirname(os.path.realpath(path)) == root


def take_backup(
	request: BackupRequest,
	receivers: Sequence[ArtifactReceiver] = (),
	reporter: ProgressReporter | None = None,
) -> tuple[str, Manifest]:
	"""Take a database (+ files + site config) backup; return its folder and manifest.

	`receivers` get the dump (and the site config) as soon as they are checked and hashed,
	while the tars are still being written; they have read them before the folder is renamed.
	`reporter` (optional) is told the phases (dump, files, checks) and their bytes.
	"""
	final_dir = get_backup_dir(request.backup_id)
	work_dir = final_dir + PARTIAL_SUFFIX
	if os.path.exists(final_dir) or os.path.exists(work_dir):
		raise FileExistsError(f"Backup folder {final_dir} already exists")
	root = os.path.dirname(work_dir)
	os.makedirs(root, mode=FOLDER_MODE, exist_ok=True)
	os.chmod(root, FOLDER_MODE)
	# Backups hold every password of the site: only the bench user may read them.
	os.mkdir(work_dir, FOLDER_MODE)
	try:
		os.chmod(work_dir, FOLDER_MODE)
		manifest = _write_artifacts(request, work_dir, receivers, reporter)
		for receiver in receivers:
			receiver.wait()
		# The folder describes itself, as an offsite copy does: a log lost with its run (killed
		# before saving it, or a database restored from a dump taken during the run) is rebuilt
		# from it (reaper.adopt_finished_backup_dir).
		with open(os.path.join(work_dir, MANIFEST_FILE_NAME), "w", encoding="utf-8") as handle:
			handle.write(manifest.to_json())
		restrict_tree(work_dir)
		os.rename(work_dir, final_dir)
	except BaseException:
		for receiver in receivers:
			receiver.cancel()
		shutil.rmtree(work_dir, ignore_errors=True)
		raise
	return final_dir, manifest


def make_backup_generator(request: BackupRequest, work_dir: str) -> BackupGenerator:
	"""A BackupGenerator writing into work_dir, built as new_backup builds it."""
	generator = BackupGenerator(
		db_name=frappe.conf.db_name,
		# Frappe 16 names the database user apart from the database; 15 uses the database name.
		user=frappe.conf.get("db_user") or frappe.conf.db_name,
		password=frappe.conf.db_password,
		db_host=frappe.conf.db_host,
		db_port=frappe.conf.db_port,
		db_type=frappe.conf.db_type,
		backup_path=work_dir,
		include_doctypes=",".join(request.include_doctypes),
		exclude_doctypes=",".join(request.exclude_doctypes),
		compress_files=request.compress_files,
	)
	generator.set_backup_file_name()
	return generator


def _write_artifacts(  # noqa: C901 - the steps of one backup, in order
	request: BackupRequest,
	work_dir: str,
	receivers: Sequence[ArtifactReceiver],
	reporter: ProgressReporter | None = None,
) -> Manifest:
	encrypt = bool(frappe.get_system_settings("encrypt_backup"))
	# Read in the main thread: frappe.local is not visible from the worker threads below.
	passphrase = get_or_generate_backup_encryption_key() if encrypt else None
	compressor = request.compressor or find_compressor(None)
	# Checking and hashing run two files at a time beside the tar writing: hashlib and zlib
	# release the GIL, and tar is another process.
	with ThreadPoolExecutor(max_workers=2, thread_name_prefix="backup-manager-hash") as pool:
		checks_label = _("checks")
		checked = reporter.counter(checks_label) if reporter else None

		# Files archives indexed while they are hashed (request.index_files), by path.
		indexes: dict[str, FileIndex] = {}
		# One check per artifact kind; the public tar's may be added from the tar watcher thread.
		futures: dict[str, Future] = {}

		def inspect(kind: str, path: str) -> None:
			if request.index_files and passphrase is None and kind in (PUBLIC_FILES, PRIVATE_FILES):
				future = pool.submit(inspect_files_archive, kind, path, indexes)
			else:
				future = pool.submit(inspect_artifact, kind, path, passphrase)
			watch(kind, future, path)

		def watch(kind: str, future: Future, path: str) -> None:
			if checked:
				future.add_done_callback(lambda done: _count_checked(done, checked))
			if receivers:
				# Each artifact is uploaded as soon as it is checked, beside the others' checks.
				future.add_done_callback(lambda done: _hand_over(done, path, receivers, indexes))
			futures[kind] = future

		def public_tar_done() -> None:
			# Its check and uploads start while Frappe writes the private tar.
			inspect(PUBLIC_FILES, generator.backup_path_files)

		def tars_done() -> None:
			# Each tar is checked as soon as it is written, beside the dump still running.
			for kind, path in (
				(PUBLIC_FILES, generator.backup_path_files),
				(PRIVATE_FILES, generator.backup_path_private_files),
			):
				_check_written(kind, path)
				if kind not in futures:
					inspect(kind, path)

		expected = request.expected_sizes
		with frappe_encryption_suppressed():
			generator = make_backup_generator(request, work_dir)
			with compressor_as_gzip(compressor):
				if reporter:
					total = expected.get(DATABASE, 0)
					if request.with_files:
						total += expected.get(PUBLIC_FILES, 0) + expected.get(PRIVATE_FILES, 0)
					label = _("database dump and files") if request.with_files else _("database dump")
					reporter.start_phase(progress.DUMP, total, label=label)
				# An unencrypted dump is checked, hashed and its rows counted as it is written;
				# an encrypted one after it is written.
				dump_written = threading.Event()
				following = (
					pool.submit(inspect_growing_dump, generator.backup_path_db, dump_written)
					if passphrase is None
					else None
				)
				with watch_folder(reporter, work_dir):
					# Frappe's tars are written while it dumps the database, not after it.
					with file_tars_beside(
						generator, public_tar_done, tars_done, enabled=request.with_files
					) as tars:
						try:
							# The site's database password goes through the environment, not
							# Frappe's command line (core.dump_password).
							with password_in_environment(
								generator, warn=frappe.logger("backup_manager").warning
							):
								generator.take_dump()
						finally:
							dump_written.set()
						_check_written(DATABASE, generator.backup_path_db)
						if following is None:
							inspect(DATABASE, generator.backup_path_db)
						else:
							# Handed over only now that the dump command succeeded.
							watch(DATABASE, following, generator.backup_path_db)
						generator.copy_site_config()
						_check_written(SITE_CONFIG, generator.backup_path_conf)
						remove_manifest_key(generator.backup_path_conf)
						inspect(SITE_CONFIG, generator.backup_path_conf)
				if request.with_files and not tars.written:
					# frappe.local was not visible in the tar thread: the tars are written now.
					if reporter:
						reporter.start_phase(
							progress.FILES,
							expected.get(PUBLIC_FILES, 0) + expected.get(PRIVATE_FILES, 0),
							label=_("files"),
						)
					with watch_folder(
						reporter, work_dir, skip=(generator.backup_path_db, generator.backup_path_conf)
					):
						write_file_tars(generator, public_tar_done, tars_done)
		if reporter:
			written = [generator.backup_path_db, generator.backup_path_conf]
			if request.with_files:
				written += [generator.backup_path_files, generator.backup_path_private_files]
			reporter.start_phase(
				progress.CHECKS, sum(os.path.getsize(path) for path in written), label=checks_label
			)
		artifacts = [futures[kind].result() for kind in ARTIFACT_ORDER if kind in futures]

	return sign(
		Manifest(
			backup_id=request.backup_id,
			site=frappe.local.site,
			created_at=frappe.utils.now_datetime().isoformat(),
			frappe_version=frappe.__version__,
			apps=get_installed_apps(),
			artifacts=artifacts,
			encrypted=any(artifact.encrypted for artifact in artifacts),
			partial=bool(generator.partial),
			include_doctypes=list(request.include_doctypes),
			exclude_doctypes=list(request.exclude_doctypes),
			policy=request.policy,
		)
	)


class FileTars:
	"""What file_tars_beside did: `written` is False when the caller must write the tars itself."""

	def __init__(self) -> None:
		self.written = False


@contextlib.contextmanager
def file_tars_beside(generator: BackupGenerator, on_public_done, on_done, *, enabled: bool = True):
	"""Run Frappe's backup_files in a thread while the block (the dump) runs; wait for it after.

	The dump keeps the CPU busy (mariadb-dump, the server, the compressor) while tar mostly
	copies pages: written one beside the other, the run takes about the longer of the two instead
	of their sum. backup_files finds the files folders through frappe.local, which a new thread
	does not see, so the thread runs in a copy of this thread's context. Where frappe.local is
	not carried by the context, the thread writes nothing and `written` stays False: the caller
	then writes the tars itself, after the dump, as Frappe would. `on_public_done` is called (from
	a watcher thread) once the public tar is complete: when the private tar appears; `on_done`
	(from the tar thread) once both are written, while the dump may still run.

	A tar failure is raised when the block ends. A failure of the block stops the tars (their
	commands, found by the folder they write into) and waits for the thread to end, so that the
	caller can remove that folder.
	"""
	tars = FileTars()
	site_path = getattr(frappe.local, "site_path", None)
	if not enabled or not site_path:
		yield tars
		return

	def write() -> None:
		if getattr(frappe.local, "site_path", None) != site_path:
			return
		write_file_tars(generator, on_public_done, on_done)
		tars.written = True

	future: Future = Future()
	future.set_running_or_notify_cancel()
	context = contextvars.copy_context()

	def run() -> None:
		try:
			context.run(write)
		except BaseException as exc:
			future.set_exception(exc)
		else:
			future.set_result(None)

	threading.Thread(target=run, name="backup-manager-file-tars", daemon=True).start()
	try:
		yield tars
	except BaseException:
		# The dump failed, so the tars are of no use: stop them (by the folder they write into)
		# rather than wait for them, which on a large site could take many minutes.
		folder = os.path.dirname(generator.backup_path_private_files)
		while not future.done():
			terminate_children_naming(folder)
			futures_wait([future], timeout=STOP_POLL_SECONDS)
		raise
	future.result()


def write_file_tars(generator: BackupGenerator, on_public_done, on_done) -> None:
	"""Frappe's backup_files; `on_public_done` once the public tar is complete, `on_done` after both."""
	with when_created(generator.backup_path_private_files, on_public_done):
		generator.backup_files()
	on_done()


@contextlib.contextmanager
def when_created(path: str, callback, poll_seconds: float = WATCH_SECONDS):
	"""Call `callback` once, from a watcher thread, when `path` appears during the block.

	Frappe's backup_files writes the public tar, then the private one, each with a command it
	waits for and whose failure raises: once the private tar exists, the public one is complete.
	The callback is not called if the path appears only after the block (or never).
	"""

	def watch(stop: threading.Event) -> None:
		while not stop.is_set():
			if os.path.lexists(path):
				if not stop.is_set():
					callback()
				return
			stop.wait(poll_seconds)

	with thread_during_block(watch, name="backup-manager-tar-watch"):
		yield


def _check_written(kind: str, path: str) -> None:
	if not path or not os.path.isfile(path):
		raise ArtifactError(f"The {kind} artifact was not written")


def _count_checked(done: Future, checked) -> None:
	if not done.cancelled() and done.exception() is None:
		checked(done.result().size)


def _hand_over(
	done: Future, path: str, receivers: Sequence[ArtifactReceiver], indexes: dict[str, FileIndex]
) -> None:
	# A failed check is raised by the main thread from future.result(); nothing is handed over.
	if done.cancelled() or done.exception() is not None:
		return
	for receiver in receivers:
		receiver.add(done.result(), path, index=indexes.get(path))


def remove_manifest_key(config_path: str) -> None:
	"""Take the manifest key out of the backed-up site config: the key must never reach the bucket."""
	with open(config_path) as handle:
		config = json.load(handle)
	if MANIFEST_KEY_CONFIG not in config:
		return
	del config[MANIFEST_KEY_CONFIG]
	with open(config_path, "w") as handle:
		json.dump(config, handle, indent=1, sort_keys=True)


def inspect_growing_dump(path: str, written: threading.Event) -> Artifact:
	"""inspect_artifact of an unencrypted dump, read while it is written, until `written` is set."""
	contents = ArtifactContents(DATABASE)
	with checksums.GrowingFile(path, written) as growing:
		sha256 = checksums.sha256_gzip_stream(
			growing, os.path.basename(path), consumers=[contents.consume_dump]
		)
	return contents.artifact(path, sha256, encrypted=False)


def inspect_files_archive(kind: str, path: str, indexes: dict[str, FileIndex]) -> Artifact:
	"""inspect_artifact of an unencrypted files archive that also indexes it for deduplicated uploads.

	The read that hashes the archive indexes it too (core.dedup.index_archive), so a destination
	storing deduplicated files does not read it again.
	"""
	contents = ArtifactContents(kind)
	check_artifact_readable(kind, path, contents)
	sha256, index = index_archive(path, os.path.basename(path))
	if index is not None:
		indexes[path] = index
	return contents.artifact(path, sha256, encrypted=False)


def inspect_artifact(kind: str, path: str, passphrase: str | None) -> Artifact:
	"""Check an artifact is whole, encrypt it if asked, and describe it (size, sha256, contents)."""
	contents = ArtifactContents(kind)
	if passphrase is None and kind == DATABASE and not is_gpg_encrypted(path):
		# One read hashes the dump, proves it decompresses to its end and counts its rows.
		sha256 = checksums.sha256_gzip_file(path, consumers=[contents.consume_dump])
	else:
		check_artifact_readable(kind, path, contents)
		if passphrase is not None and not is_gpg_encrypted(path):
			encrypt_file_in_place(path, passphrase)
		sha256 = checksums.sha256_file(path)
	return contents.artifact(path, sha256, encrypted=is_gpg_encrypted(path))


class ArtifactContents:
	"""What a restore drill checks, gathered by the read that checks the artifact (no extra read)."""

	def __init__(self, kind: str):
		self.kind = kind
		self.row_counter = RowCounter() if kind == DATABASE else None
		self.file_stats = FileStatsCollector() if kind in (PUBLIC_FILES, PRIVATE_FILES) else None
		self.read = False

	def consume_dump(self, data: bytes) -> None:
		self.read = True
		self.row_counter.feed(data)

	def add_member(self, archive, member) -> None:
		self.read = True
		self.file_stats.add_member(archive, member)

	def artifact(self, path: str, sha256: str, *, encrypted: bool) -> Artifact:
		"""The Artifact of the file at path, with what this read gathered about its contents."""
		artifact = Artifact(
			kind=self.kind,
			file_name=os.path.basename(path),
			size=os.path.getsize(path),
			sha256=sha256,
			encrypted=encrypted,
		)
		self.describe(artifact)
		return artifact

	def describe(self, artifact: Artifact) -> None:
		if self.row_counter is not None and self.read:
			try:
				artifact.row_counts = self.row_counter.finish()
			except DumpParseError as exc:
				# The backup stays good; only its drill cannot compare row counts.
				frappe.logger("backup_manager").warning(
					f"Row counts of {artifact.file_name} not recorded: {exc}"
				)
		elif self.file_stats is not None and self.read:
			stats = self.file_stats.finish()
			artifact.file_count, artifact.file_bytes, artifact.file_samples = (
				stats.count,
				stats.total_bytes,
				stats.samples,
			)


def check_artifact_readable(kind: str, path: str, contents: ArtifactContents | None = None) -> None:
	"""Check an artifact before it is encrypted: the dump is a whole gzip, the tars are readable."""
	if not path or not os.path.isfile(path):
		raise ArtifactError(f"The {kind} artifact was not written")
	if is_gpg_encrypted(path):
		return
	if kind == DATABASE:
		consumers = [contents.consume_dump] if contents and contents.row_counter else []
		checksums.verify_gzip_complete(path, consumers=consumers)
	elif kind in (PUBLIC_FILES, PRIVATE_FILES):
		on_member = contents.add_member if contents and contents.file_stats else None
		checksums.verify_tar_readable(path, on_member=on_member)


def verify_local_artifact(kind: str, path: str, size: int, sha256: str) -> None:
	"""Re-check a stored artifact: size and sha256, then that it is still readable."""
	checksums.verify_size_and_sha256(path, size, sha256)
	check_artifact_readable(kind, path)


@contextlib.contextmanager
def frappe_encryption_suppressed():
	"""Make BackupGenerator leave its files in clear (and unnamed "-enc"), so that we encrypt them ourselves.

	Frappe's BackupGenerator passes the key to gpg on the command line (visible in the process
	list), swallows gpg failures while still naming files "-enc", and never encrypts the site
	config. It reads the setting through frappe.get_system_settings, which caches System
	Settings on frappe.local: a copy with encrypt_backup off is swapped in for the call.
	"""
	had_settings = hasattr(frappe.local, "system_settings")
	previous = getattr(frappe.local, "system_settings", None)
	settings = frappe.get_cached_doc("System Settings").as_dict()
	settings.encrypt_backup = 0
	frappe.local.system_settings = settings
	try:
		yield
	finally:
		if had_settings:
			frappe.local.system_settings = previous
		else:
			del frappe.local.system_settings


def get_installed_apps() -> list[InstalledApp]:
	"""Every installed app, in install order, with version, branch and commit."""
	apps = []
	for app in frappe.get_installed_apps():
		try:
			version = str(frappe.get_attr(f"{app}.__version__"))
		except Exception:
			version = ""
		app_dir = os.path.dirname(os.path.abspath(frappe.get_app_path(app)))
		apps.append(
			InstalledApp(
				name=app,
				version=version,
				branch=_git(app_dir, "rev-parse", "--abbrev-ref", "HEAD"),
				commit=_git(app_dir, "rev-parse", "HEAD"),
			)
		)
	return apps


def _git(repo_dir: str, *args: str) -> str:
	try:
		result = subprocess.run(
			["git", "-C", repo_dir, *args], capture_output=True, text=True, timeout=30, check=False
		)
	except (OSError, subprocess.TimeoutExpired):
		return ""
	return result.stdout.strip() if result.returncode == 0 else ""


def delete_backup_dir(path: str) -> None:
	"""Delete a backup folder, refusing anything outside the backup root."""
	if not is_inside_backup_root(path):
		raise ValueError(f"Refusing to delete {path}: it is not a Backup Manager backup folder")
	shutil.rmtree(path)
