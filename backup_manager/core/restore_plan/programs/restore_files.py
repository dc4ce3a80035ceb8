import os
import subprocess
import sys
import tarfile

# restore_files.py SITE FOLDER ARCHIVE [FOLDER ARCHIVE ...]   (FOLDER: public or private)
# Frappe's archives hold <source site>/FOLDER/files/... (usually behind "./"). Every member is
# checked first: it must sit under <one site name>/FOLDER/files, with no absolute path, no "..",
# no link leading elsewhere and no device. Then plain GNU tar unpacks it into sites/SITE, the
# leading "./" and the source site name stripped, so a backup of another site lands here too.
site, pairs = sys.argv[1], sys.argv[2:]
site_path = os.path.join("sites", site)


def refuse(archive, member, reason):
	sys.exit(f"{archive}: member {member!r} {reason}; nothing of this archive was extracted.")


def split_member(archive, name):
	"""The path parts of a member name without its leading "./", and how many "." were dropped."""
	if name.startswith("/"):
		refuse(archive, name, "has an absolute path")
	parts = [part for part in name.split("/") if part]
	dots = 0
	while parts and parts[0] == ".":
		parts, dots = parts[1:], dots + 1
	if any(part in (".", "..") for part in parts):
		refuse(archive, name, "holds a '.' or '..' path part")
	return parts, dots


def check_member(archive, folder, member, layout):
	parts, dots = split_member(archive, member.name)
	if not parts:
		return
	if layout.setdefault("dots", dots) != dots or layout.setdefault("site", parts[0]) != parts[0]:
		refuse(archive, member.name, "does not share the other members' <site>/ folder")
	expected = [folder, "files"]
	if parts[1:3] != expected[: len(parts[1:3])]:
		refuse(archive, member.name, f"is not under <site>/{folder}/files")
	if member.isdev() or member.isfifo():
		refuse(archive, member.name, "is a device or a pipe")
	if member.issym() and (member.linkname.startswith("/") or ".." in member.linkname.split("/")):
		refuse(archive, member.name, f"is a link leading outside the files folder ({member.linkname!r})")
	if member.islnk():
		link_parts, link_dots = split_member(archive, member.linkname)
		if link_dots != dots or link_parts[:3] != [layout["site"], *expected]:
			refuse(archive, member.name, "is a hard link to a file outside the files folder")


def extract(folder, archive):
	layout = {}
	with tarfile.open(archive, "r:*") as handle:
		for member in handle:
			check_member(archive, folder, member, layout)
	if "site" not in layout:
		print(f"{archive}: empty, nothing to extract.")
		return
	with open(archive, "rb") as handle:
		gzipped = handle.read(2) == b"\x1f\x8b"
	strip = layout["dots"] + 1
	command = ["tar", "-x", "-f", archive, "-C", site_path, f"--strip-components={strip}", "--no-same-owner"]
	subprocess.run(command + (["--gzip"] if gzipped else []), check=True)
	print(f"Extracted {archive} ({folder} files of {layout['site']}) into {site_path}/{folder}/files")


for folder, archive in zip(pairs[0::2], pairs[1::2], strict=True):
	if folder not in ("public", "private"):
		sys.exit(f"Unknown files folder {folder!r}: public or private.")
	extract(folder, archive)
