"""Files only the bench user can read: private folders, exclusive no-follow opens, 0600 modes.

Backups hold every password of a site. Whatever writes them (a backup, a download, a decrypt)
creates its folder 0700 or checks that an existing one is safe, opens each file with
O_EXCL | O_NOFOLLOW so that a planted symlink or file is never followed or reused, and leaves it 0600.
"""

import os
import stat

from backup_manager.core.errors import UnsafePath

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_NEW_FILE_FLAGS = (
	os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


def check_private_folder(path: str) -> None:
	"""Raise UnsafePath unless `path` is a real folder owned by this user that no one else can write to."""
	try:
		info = os.lstat(path)
	except FileNotFoundError:
		raise UnsafePath(f"{path} does not exist.") from None
	if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
		raise UnsafePath(f"{path} is not a folder (a symlink or a file): refusing to write into it.")
	if info.st_uid != os.geteuid():
		raise UnsafePath(
			f"{path} belongs to another user (uid {info.st_uid}): refusing to write backup files into it. "
			"Choose a folder of your own, or a new path (it is created 0700)."
		)
	if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
		raise UnsafePath(
			f"{path} can be written by other users (mode {stat.S_IMODE(info.st_mode):o}): they could swap "
			f"or redirect the files. Run chmod 700 {path}, or choose a new path (it is created 0700)."
		)


def make_private_folder(path: str) -> str:
	"""Create `path` 0700 (parents as usual), or check that the existing folder is safe; return it."""
	path = os.path.abspath(path)
	parent = os.path.dirname(path)
	if parent:
		os.makedirs(parent, exist_ok=True)
	try:
		os.mkdir(path, FOLDER_MODE)
	except FileExistsError:
		check_private_folder(path)
		return path
	os.chmod(path, FOLDER_MODE)
	return path


def open_new_private_file(path: str, *, replace_stale: bool = True):
	"""Open a new file for binary writing, 0600, refusing symlinks and files that already exist.

	A regular file of ours left by an interrupted run (replace_stale) is removed first; anything
	else at that name (a symlink, another user's file) is refused, never followed.
	"""
	try:
		descriptor = os.open(path, _NEW_FILE_FLAGS, FILE_MODE)
	except FileExistsError:
		info = os.lstat(path)
		if not (replace_stale and stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()):
			kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a file left by this tool"
			raise UnsafePath(
				f"{path} already exists and is {kind}: refusing to write through it. Remove it, or "
				"download into a new folder."
			) from None
		os.unlink(path)
		descriptor = os.open(path, _NEW_FILE_FLAGS, FILE_MODE)
	os.fchmod(descriptor, FILE_MODE)
	return os.fdopen(descriptor, "wb")


def write_private_file(path: str, data: bytes) -> None:
	"""Write `data` to `path` through a `.part` file opened exclusively, then rename it into place."""
	part_path = f"{path}.part"
	handle = open_new_private_file(part_path)
	try:
		with handle:
			handle.write(data)
		os.replace(part_path, path)
	except BaseException:
		remove_quietly(part_path)
		raise


def remove_quietly(path: str) -> None:
	"""Remove a file of ours if it is there (never what a symlink points to)."""
	try:
		if os.path.lexists(path):
			os.unlink(path)
	except OSError:
		pass


def restrict_tree(path: str) -> None:
	"""Make a folder 0700 and every file directly in it 0600 (without following symlinks)."""
	os.chmod(path, FOLDER_MODE)
	for name in os.listdir(path):
		child = os.path.join(path, name)
		if os.path.isfile(child) and not os.path.islink(child):
			os.chmod(child, FILE_MODE)
