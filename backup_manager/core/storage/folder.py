"""Offsite copies in a folder of this server: a mounted NFS share, a USB disk, a storage box.

The backup is only "offsite" if the folder is on another disk. With "must be a mount point"
(the default) every operation first checks `os.path.ismount(path)`: when the mount dropped,
the folder is an empty directory on the root disk, and writing there would fill the disk the
site runs on while looking like a successful offsite copy.
"""

import errno
import logging
import os
import posixpath
import stat
from collections.abc import Iterator
from typing import BinaryIO

from backup_manager.core.errors import StorageError
from backup_manager.core.storage import FolderConfig
from backup_manager.core.storage.filetree import FileTreeBackend

logger = logging.getLogger(__name__)


class FolderBackend(FileTreeBackend):
	def __init__(self, config: FolderConfig):
		self.config = config
		self.root = posixpath.normpath(config.path)
		self.read_back_verify = config.read_back_verify

	def describe(self) -> str:
		return f"folder {self.root}"

	def _path(self, key: str) -> str:
		return posixpath.join(self.root, key) if key else self.root

	def _prepare(self) -> None:
		if not os.path.isdir(self.root):
			raise StorageError(
				f"Folder {self.root} does not exist. Mount the disk there (or create the folder), then use "
				"Test Connection."
			)
		if self.config.must_be_mount_point and not os.path.ismount(self.root):
			raise StorageError(
				f"Folder {self.root} is not a mount point: the disk is not mounted, so nothing was written "
				"(it would fill this server's own disk). Mount it, or untick Must Be a Mount Point if the "
				"folder is meant to be a plain folder."
			)

	def _makedirs(self, folder: str) -> None:
		os.makedirs(folder, mode=0o700, exist_ok=True)

	def _open_write(self, path: str) -> BinaryIO:
		# O_EXCL: the temporary name is random, so an existing file means something else wrote it.
		descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
		return os.fdopen(descriptor, "wb")

	def _finish_write(self, handle: BinaryIO) -> None:
		# A rename is only durable after the data: otherwise a crash can leave a complete-looking
		# name holding zero bytes (ext4 and XFS delayed allocation).
		handle.flush()
		os.fsync(handle.fileno())

	def _open_read(self, path: str) -> BinaryIO:
		return open(path, "rb")  # noqa: SIM115 - the caller closes it

	def _rename(self, source: str, target: str) -> None:
		os.replace(source, target)
		try:
			descriptor = os.open(posixpath.dirname(target), os.O_RDONLY)
		except OSError:
			return
		try:
			os.fsync(descriptor)
		except OSError:
			pass
		finally:
			os.close(descriptor)

	def _stat(self, path: str) -> tuple[int, float] | None:
		try:
			result = os.stat(path, follow_symlinks=False)
		except FileNotFoundError:
			return None
		if not stat.S_ISREG(result.st_mode):
			return None
		return result.st_size, result.st_mtime

	def _remove(self, path: str) -> None:
		os.remove(path)

	def _remove_empty_folder(self, folder: str) -> None:
		if posixpath.normpath(folder) == self.root:
			return
		try:
			os.rmdir(folder)
		except OSError:
			pass

	def _walk(self, folder: str) -> Iterator[tuple[str, int, float]]:
		if not os.path.isdir(folder):
			return

		def fail(exc: OSError) -> None:
			raise exc

		# Symbolic links are neither followed nor listed: a key is a regular file below the root.
		for current, _folders, files in os.walk(folder, onerror=fail):
			for name in files:
				path = posixpath.join(current, name)
				found = self._stat(path)
				if found is not None:
					yield path, found[0], found[1]

	def _error(self, exc: BaseException, action: str, key: str) -> StorageError:
		where = f"{key} in {self.describe()}" if key else self.describe()
		if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
			return StorageError(f"Could not {action} {where}: the disk is full (no space left on device).")
		if isinstance(exc, FileNotFoundError):
			return StorageError(f"Could not {action} {where}: it does not exist.")
		if isinstance(exc, PermissionError):
			return StorageError(
				f"Could not {action} {where}: permission denied. The bench user must be able to write there."
			)
		if isinstance(exc, OSError):
			return StorageError(f"Could not {action} {where}: {exc.strerror or exc}.")
		return StorageError(f"Could not {action} {where}: unexpected {type(exc).__name__}.")
