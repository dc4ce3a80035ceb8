"""Symmetric gpg encryption compatible with Frappe's encrypted backups.

Frappe runs `gpg --passphrase <key>`, which shows the key to anyone who can list
processes. Here the passphrase always travels on a pipe (`--passphrase-fd 0`), never in argv.
The output is a standard gpg symmetric packet, so `bench restore` decrypts it as usual.
"""

import os
import shutil
import subprocess

from backup_manager.core.errors import EncryptionError

GPG_BASE_ARGS = (
	"--batch",
	"--yes",
	"--quiet",
	"--no-symkey-cache",
	"--pinentry-mode",
	"loopback",
	"--passphrase-fd",
	"0",
)


def gpg_path() -> str:
	path = shutil.which("gpg")
	if not path:
		raise EncryptionError("gpg is not installed or not on PATH. Install it (apt-get install gnupg).")
	return path


def _run_gpg(args: list[str], passphrase: str) -> None:
	result = subprocess.run(
		[gpg_path(), *GPG_BASE_ARGS, *args],
		input=passphrase.encode(),
		capture_output=True,
		check=False,
	)
	if result.returncode != 0:
		# gpg's stderr never contains the passphrase: it only ever saw it on stdin.
		raise EncryptionError(
			f"gpg failed ({result.returncode}): {result.stderr.decode(errors='replace').strip()}"
		)


def encrypt_file_in_place(path: str, passphrase: str) -> None:
	"""Replace `path` with its gpg-encrypted form; on failure the clear file is left untouched."""
	encrypted_path = f"{path}.gpg"
	try:
		_run_gpg(["--symmetric", "--cipher-algo", "AES256", "--output", encrypted_path, path], passphrase)
		os.replace(encrypted_path, path)
	finally:
		if os.path.exists(encrypted_path):
			os.remove(encrypted_path)


def decrypt_file(path: str, output_path: str, passphrase: str) -> None:
	"""Decrypt a gpg-encrypted artifact to `output_path`."""
	_run_gpg(["--output", output_path, "--decrypt", path], passphrase)


def is_gpg_encrypted(path: str) -> bool:
	"""True when the file starts with an OpenPGP symmetric-key packet (what gpg -c writes)."""
	with open(path, "rb") as handle:
		head = handle.read(2)
	# Old-format tag 3 (0x8c) or new-format tag 3 (0xc3): Symmetric-Key Encrypted Session Key.
	return len(head) == 2 and (head[0] in (0x8C, 0x8D) or head[0] == 0xC3)
