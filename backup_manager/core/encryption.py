"""Symmetric gpg encryption compatible with Frappe's encrypted backups.

Frappe runs `gpg --passphrase <key>`, which shows the key to anyone who can list
processes. Here the passphrase always travels on a pipe (`--passphrase-fd 0`), never in argv.
The output is a standard gpg symmetric packet, so `bench restore` decrypts it as usual.
"""

import os
import shutil
import subprocess

from backup_manager.core.errors import EncryptionError
from backup_manager.core.private_files import open_new_private_file, remove_quietly

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


# Status lines (gpg --status-fd) a real symmetric decryption with an integrity check prints. A file
# made with `gpg --store` (literal data, no encryption) "decrypts" with exit 0 and none of these.
REQUIRED_DECRYPTION_STATUS = ("NEED_PASSPHRASE_SYM", "BEGIN_DECRYPTION", "DECRYPTION_OKAY", "END_DECRYPTION")
# Public-key packets: ours are only ever symmetric, so a key of the bench user must not be used.
REFUSED_DECRYPTION_STATUS = ("ENC_TO", "DECRYPTION_FAILED", "BADMDC", "NO_SECKEY")


def _run_gpg(args: list[str], passphrase: str) -> subprocess.CompletedProcess:
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
	return result


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
	"""Decrypt an artifact to `output_path` (0600), refusing a file that was not encrypted with our key.

	gpg's status lines must show a symmetric session key unlocked by the passphrase and an
	integrity-checked decryption; anything else (literal data from `gpg --store`, a public-key
	packet) is refused and the output removed.
	"""
	# The output is created 0600 and exclusively before gpg writes to it (gpg's own --output
	# would create it with the umask, readable by others until a chmod).
	handle = open_new_private_file(output_path)
	try:
		with handle:
			result = subprocess.run(
				[gpg_path(), *GPG_BASE_ARGS, "--status-fd", "2", "--decrypt", path],
				input=passphrase.encode(),
				stdout=handle,
				stderr=subprocess.PIPE,
				check=False,
			)
		status_text = result.stderr.decode(errors="replace")
		if result.returncode != 0:
			messages = [line for line in status_text.splitlines() if not line.startswith("[GNUPG:]")]
			raise EncryptionError(f"gpg failed ({result.returncode}): {' '.join(messages).strip()}")
		check_decryption_status(status_text, path)
	except BaseException:
		remove_quietly(output_path)
		raise


def check_decryption_status(status_text: str, path: str) -> None:
	"""Raise EncryptionError unless gpg's status lines prove a symmetric, integrity-checked decryption."""
	tokens = {
		line.split()[1]
		for line in status_text.splitlines()
		if line.startswith("[GNUPG:] ") and len(line.split()) > 1
	}
	missing = [token for token in REQUIRED_DECRYPTION_STATUS if token not in tokens]
	refused = [token for token in REFUSED_DECRYPTION_STATUS if token in tokens]
	if missing or refused:
		raise EncryptionError(
			f"{os.path.basename(path)} is not a file encrypted with the backup key (gpg reported "
			f"{', '.join(sorted(tokens)) or 'nothing'}): it may have been replaced in the bucket. "
			"Nothing was restored from it; use another backup."
		)


def is_gpg_encrypted(path: str) -> bool:
	"""True when the file starts with an OpenPGP symmetric-key packet (what gpg -c writes)."""
	with open(path, "rb") as handle:
		head = handle.read(2)
	# Old-format tag 3 (0x8c) or new-format tag 3 (0xc3): Symmetric-Key Encrypted Session Key.
	return len(head) == 2 and (head[0] in (0x8C, 0x8D) or head[0] == 0xC3)
