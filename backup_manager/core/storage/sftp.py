"""Offsite copies on an SSH server over SFTP, through paramiko (the only module importing it).

Why paramiko: it is maintained, pure Python (no ssh/sftp binary to find or drive through a
pseudo-terminal, and no secret on a command line), and its host key API lets us pin exactly the
key the user accepted: the key is loaded into a HostKeys object and the client runs with
RejectPolicy, so a changed (or different) host key is refused, never trusted silently.

Verification after each upload, strongest first: `sha256sum` run on the server over an exec
channel (paths shlex-quoted); otherwise a read-back if asked for; otherwise the size on the
server plus the sha256 of the bytes we sent. SFTP servers restricted to internal-sftp refuse
exec, which is detected once and remembered.
"""

import base64
import errno
import hashlib
import io
import logging
import os
import posixpath
import re
import shlex
import socket
import stat
import threading
from collections.abc import Iterator
from typing import BinaryIO

import paramiko

from backup_manager.core.errors import BackupManagerError, StorageError
from backup_manager.core.storage import (
	DEFAULT_SFTP_PORT,
	CheckResult,
	ConnectionReport,
	MiB,
	SFTPConfig,
)
from backup_manager.core.storage.filetree import FileTreeBackend, IncompleteWrite

logger = logging.getLogger(__name__)

CHECK_HOST_KEY = "host key"
CHECK_LOGIN = "login"
# sha256sum reads at hundreds of MB/s; allow for a slow disk on a big file.
SERVER_HASH_SECONDS_PER_MIB = 0.05
SHA256_HEX_LENGTH = 64
KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


class HostKeyRefused(StorageError):
	"""The server's host key is not the accepted one."""


def fingerprint(key: paramiko.PKey) -> str:
	"""Return the OpenSSH SHA256 fingerprint of a public key, e.g. 'SHA256:abc...'."""
	digest = hashlib.sha256(key.asbytes()).digest()
	return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def key_line(key: paramiko.PKey) -> str:
	"""Return the key as stored in known_hosts and on the destination: '<type> <base64>'."""
	return f"{key.get_name()} {key.get_base64()}"


def parse_host_key(line: str) -> paramiko.PKey:
	"""Turn '<type> <base64> [comment]' into a public key; raise StorageError if it is not one."""
	parts = (line or "").split()
	if len(parts) < 2:
		raise StorageError(
			"The accepted host key is empty or malformed: use Test Connection to accept it again."
		)
	try:
		return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
	except Exception as exc:
		raise StorageError(
			f"The accepted host key ({parts[0]}) cannot be read: use Test Connection to accept it again."
		) from exc


def known_hosts_name(host: str, port: int) -> str:
	return host if port == DEFAULT_SFTP_PORT else f"[{host}]:{port}"


def scan_host_key(config: SFTPConfig) -> paramiko.PKey:
	"""Connect without logging in and return the host key the server offers."""
	try:
		sock = socket.create_connection((config.host, config.port), timeout=config.connect_timeout)
	except OSError as exc:
		raise StorageError(_network_message(config, exc)) from exc
	transport = paramiko.Transport(sock)
	try:
		transport.start_client(timeout=config.connect_timeout)
		return transport.get_remote_server_key()
	except (paramiko.SSHException, OSError, EOFError) as exc:
		raise StorageError(
			f"{config.host}:{config.port} did not complete an SSH handshake ({type(exc).__name__}). "
			"Check Host and Port: is it an SSH server?"
		) from exc
	finally:
		transport.close()


def load_private_key(config: SFTPConfig) -> paramiko.PKey | None:
	"""Return the configured private key, or None to log in with the password."""
	passphrase = config.private_key_passphrase or None
	if config.private_key:
		text = normalize_private_key(config.private_key)
		return _load_key(lambda cls: cls.from_private_key(io.StringIO(text), passphrase))
	if config.private_key_file:
		path = config.private_key_file
		check_key_file(path)
		return _load_key(lambda cls: cls.from_private_key_file(path, passphrase))
	return None


def normalize_private_key(text: str) -> str:
	"""Put back the line breaks a single-line Password input drops from a pasted PEM/OpenSSH key."""
	text = text.strip()
	if "\n" in text:
		return text + "\n"
	match = re.match(r"^(-----BEGIN [A-Z0-9 ]+-----)(.*?)(-----END [A-Z0-9 ]+-----)$", text)
	if not match:
		return text + "\n"
	lines, header = [], ""
	for token in match.group(2).split():
		# "Proc-Type: 4,ENCRYPTED" and "DEK-Info: ..." of legacy encrypted PEM keys stay one line.
		if token.endswith(":"):
			header = token
			continue
		lines.append(f"{header} {token}" if header else token)
		if header:
			header = ""
			if lines[-1].startswith("DEK-Info:"):
				lines.append("")
	return "\n".join([match.group(1), *lines, match.group(3)]) + "\n"


def check_key_file(path: str) -> None:
	"""Refuse a key file that others could read (as ssh does), or that another user owns."""
	try:
		info = os.stat(path)
	except OSError as exc:
		raise StorageError(f"Private Key File {path} cannot be read: {exc.strerror}.") from exc
	if info.st_mode & 0o077:
		raise StorageError(
			f"Private Key File {path} can be read by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
			f"run chmod 600 {shlex.quote(path)}."
		)
	if info.st_uid != os.geteuid():
		raise StorageError(
			f"Private Key File {path} belongs to another user; it must belong to the bench user."
		)


def _load_key(loader) -> paramiko.PKey:
	problems = []
	for cls in KEY_CLASSES:
		try:
			return loader(cls)
		except paramiko.PasswordRequiredException as exc:
			raise StorageError("The private key is encrypted: enter its passphrase.") from exc
		except (paramiko.SSHException, ValueError) as exc:
			problems.append(type(exc).__name__)
	raise StorageError(
		"The private key cannot be read as an Ed25519, ECDSA or RSA key in OpenSSH or PEM format "
		"(or its passphrase is wrong)."
	)


def _network_message(config: SFTPConfig, exc: BaseException) -> str:
	if isinstance(exc, socket.timeout | TimeoutError):
		return f"{config.host}:{config.port} did not answer within {config.connect_timeout:g} s. Check Host, Port and the firewall."
	if isinstance(exc, socket.gaierror):
		return f"Host {config.host} cannot be resolved. Check the host name."
	if isinstance(exc, ConnectionRefusedError | paramiko.ssh_exception.NoValidConnectionsError):
		return f"{config.host}:{config.port} refused the connection: no SSH server listens there. Check Port."
	return f"Could not connect to {config.host}:{config.port}: {getattr(exc, 'strerror', None) or type(exc).__name__}."


class SFTPBackend(FileTreeBackend):
	def __init__(self, config: SFTPConfig):
		self.config = config
		self.base = posixpath.normpath(config.base_folder.strip()) if config.base_folder.strip() else "."
		self.upload_attempts = config.upload_attempts
		self.retry_backoff_seconds = config.retry_backoff_seconds
		self.read_back_verify = config.read_back_verify
		# Reentrant: explaining a failed connect (under the lock) checks the connection again.
		self._lock = threading.RLock()
		self._client: paramiko.SSHClient | None = None
		self._generation = 0
		self._local = threading.local()
		self._made_folders: set[str] = set()
		# None: not tried yet; False: the server cannot run sha256sum for us.
		self._server_hash: bool | None = None

	def describe(self) -> str:
		return f"sftp://{self.config.username}@{self.config.host}:{self.config.port}/{self.base.lstrip('./')}"

	# --- the connection ---------------------------------------------------------------------------

	def _connect(self) -> paramiko.SSHClient:
		config = self.config
		host_key = parse_host_key(config.host_key) if config.host_key else None
		if host_key is None:
			raise HostKeyRefused(
				f"The host key of {config.host} is not accepted yet: use Test Connection, compare the "
				"fingerprint with the server's, and accept it."
			)
		client = paramiko.SSHClient()
		client.get_host_keys().add(known_hosts_name(config.host, config.port), host_key.get_name(), host_key)
		client.set_missing_host_key_policy(paramiko.RejectPolicy())
		try:
			client.connect(
				config.host,
				port=config.port,
				username=config.username,
				password=config.password or None,
				pkey=load_private_key(config),
				look_for_keys=False,
				allow_agent=False,
				timeout=config.connect_timeout,
				banner_timeout=config.connect_timeout,
				auth_timeout=config.connect_timeout,
			)
		except BackupManagerError:
			client.close()
			raise
		except Exception as exc:
			client.close()
			raise self._error(exc, "connect to", "") from exc
		transport = client.get_transport()
		if transport is not None:
			transport.set_keepalive(30)
		return client

	def _sftp(self) -> paramiko.SFTPClient:
		"""This thread's SFTP channel (paramiko channels are not shared between threads)."""
		with self._lock:
			if (
				self._client is None
				or not self._client.get_transport()
				or not self._client.get_transport().is_active()
			):
				self._drop_locked()
				self._client = self._connect()
			generation, client = self._generation, self._client
		cached = getattr(self._local, "sftp", None)
		if cached is not None and cached[0] == generation:
			return cached[1]
		try:
			sftp = client.open_sftp()
		except Exception as exc:
			raise self._error(exc, "open an SFTP session on", "") from exc
		sftp.get_channel().settimeout(self.config.read_timeout)
		self._local.sftp = (generation, sftp)
		return sftp

	def _drop_locked(self) -> None:
		if self._client is not None:
			try:
				self._client.close()
			except Exception:
				pass
		self._client = None
		self._generation += 1
		self._made_folders.clear()

	def _reset(self) -> None:
		with self._lock:
			self._drop_locked()

	def close(self) -> None:
		"""Close the SSH connection (a new one opens on the next operation)."""
		self._reset()

	def _prepare(self) -> None:
		self._sftp()

	# --- file operations ------------------------------------------------------------------------

	def _path(self, key: str) -> str:
		return posixpath.join(self.base, key) if key else self.base

	def _makedirs(self, folder: str) -> None:
		folder = posixpath.normpath(folder)
		if folder in self._made_folders or folder in (".", "/"):
			return
		sftp = self._sftp()
		try:
			if stat.S_ISDIR(sftp.stat(folder).st_mode):
				self._made_folders.add(folder)
				return
		except FileNotFoundError:
			pass
		self._makedirs(posixpath.dirname(folder))
		try:
			sftp.mkdir(folder, mode=0o700)
		except OSError:
			# Another upload thread may have created it meanwhile.
			if not stat.S_ISDIR(sftp.stat(folder).st_mode):
				raise
		self._made_folders.add(folder)

	def _open_write(self, path: str) -> BinaryIO:
		handle = self._sftp().open(path, "wxb")
		# Do not wait for each write's answer: errors still surface, at the latest on close().
		handle.set_pipelined(True)
		return handle

	def _open_read(self, path: str) -> BinaryIO:
		sftp = self._sftp()
		handle = sftp.open(path, "rb")
		# Ask for the following blocks ahead, instead of one round trip per 32 KiB.
		handle.prefetch(handle.stat().st_size)
		return handle

	def _rename(self, source: str, target: str) -> None:
		sftp = self._sftp()
		try:
			# posix-rename@openssh.com replaces the target in one step.
			sftp.posix_rename(source, target)
		except OSError:
			if sftp.get_channel().closed:
				raise
			# A server without the extension: plain SFTP rename refuses an existing target.
			try:
				sftp.remove(target)
			except FileNotFoundError:
				pass
			sftp.rename(source, target)

	def _stat(self, path: str) -> tuple[int, float] | None:
		try:
			attributes = self._sftp().lstat(path)
		except FileNotFoundError:
			return None
		if not stat.S_ISREG(attributes.st_mode or 0):
			return None
		return attributes.st_size or 0, float(attributes.st_mtime or 0)

	def _remove(self, path: str) -> None:
		self._sftp().remove(path)

	def _remove_empty_folder(self, folder: str) -> None:
		if posixpath.normpath(folder) == self.base:
			return
		try:
			self._sftp().rmdir(folder)
			self._made_folders.discard(posixpath.normpath(folder))
		except Exception:
			pass

	def _walk(self, folder: str) -> Iterator[tuple[str, int, float]]:
		sftp = self._sftp()
		try:
			entries = sftp.listdir_attr(folder)
		except FileNotFoundError:
			return
		pending = [(folder, entries)]
		while pending:
			current, entries = pending.pop()
			for entry in entries:
				path = posixpath.join(current, entry.filename)
				mode = entry.st_mode or 0
				if stat.S_ISDIR(mode):
					pending.append((path, sftp.listdir_attr(path)))
				elif stat.S_ISREG(mode):
					yield path, entry.st_size or 0, float(entry.st_mtime or 0)

	def _server_sha256(self, path: str) -> str | None:
		if self._server_hash is False:
			return None
		with self._lock:
			client = self._client
		if client is None:
			return None
		try:
			size = self._stat(path)[0]
			channel = client.get_transport().open_session(timeout=self.config.connect_timeout)
			channel.settimeout(self.config.read_timeout + size / MiB * SERVER_HASH_SECONDS_PER_MIB)
			channel.exec_command(f"sha256sum -- {shlex.quote(path)}")
			output = b""
			while chunk := channel.recv(4096):
				output += chunk
			status = channel.recv_exit_status()
			channel.close()
		except Exception as exc:
			logger.info("sha256sum could not run on %s (%s); verifying otherwise", self.config.host, exc)
			self._server_hash = False
			return None
		value = output.split(b" ", 1)[0].decode("ascii", "replace").lower()
		if status != 0 or len(value) != SHA256_HEX_LENGTH or any(c not in "0123456789abcdef" for c in value):
			logger.info(
				"sha256sum is not available on %s (exit %s); verifying otherwise", self.config.host, status
			)
			self._server_hash = False
			return None
		self._server_hash = True
		return value

	def _connection_lost(self) -> bool:
		with self._lock:
			client = self._client
		transport = client.get_transport() if client is not None else None
		return client is not None and (transport is None or not transport.is_active())

	def _error(self, exc: BaseException, action: str, key: str) -> StorageError:
		config = self.config
		where = f"{key} on {self.describe()}" if key else self.describe()
		if isinstance(exc, paramiko.BadHostKeyException):
			return HostKeyRefused(
				f"The host key of {config.host} has CHANGED: it offers {fingerprint(exc.key)}, the accepted key "
				f"is {fingerprint(exc.expected_key)}. Nothing was sent. If the server was reinstalled, check "
				"the new fingerprint with its administrator and accept it with Test Connection; otherwise "
				"someone may be intercepting the connection."
			)
		if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
			return HostKeyRefused(
				f"{config.host} offers a different kind of host key than the accepted one, so it cannot be "
				"checked. Nothing was sent. Use Test Connection to see and accept its key."
			)
		if isinstance(exc, paramiko.AuthenticationException):
			return StorageError(
				f"{config.host} refused the login of user {config.username}: check User and the private key "
				"or password (and that the key is in the user's authorized_keys)."
			)
		if (
			isinstance(exc, paramiko.ChannelException | paramiko.SSHException | EOFError)
			or self._connection_lost()
		):
			return StorageError(
				f"Could not {action} {where}: the SSH connection was lost or refused ({type(exc).__name__}). "
				"Nothing incomplete was kept."
			)
		if isinstance(exc, socket.timeout | TimeoutError):
			return StorageError(
				f"Could not {action} {where}: the server did not answer within {config.read_timeout:g} s."
			)
		if isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno == errno.EACCES):
			return StorageError(f"Could not {action} {where}: permission denied for user {config.username}.")
		if isinstance(exc, FileNotFoundError):
			return StorageError(f"Could not {action} {where}: it does not exist.")
		if isinstance(exc, IncompleteWrite) or (
			isinstance(exc, OSError) and exc.errno is None and action == "write"
		):
			# SFTP reports ENOSPC and EDQUOT only as a generic failure, so both are named.
			return StorageError(
				f"Could not {action} {where}: the server refused the bytes ({exc}): its disk is full or "
				f"user {config.username} is over quota. Free space there or shorten retention; nothing "
				"incomplete was kept."
			)
		if isinstance(exc, OSError):
			return StorageError(
				_network_message(config, exc)
				if action == "connect to"
				else f"Could not {action} {where}: {exc.strerror or exc}."
			)
		return StorageError(f"Could not {action} {where}: unexpected {type(exc).__name__}.")

	# --- connection check: the host key first -------------------------------------------------

	def check_connection(self) -> ConnectionReport:
		config = self.config
		try:
			offered = scan_host_key(config)
		except StorageError as exc:
			report = ConnectionReport()
			report.checks.append(CheckResult(CHECK_HOST_KEY, False, str(exc)))
			return report
		offered_line, offered_fingerprint = key_line(offered), fingerprint(offered)
		if not config.host_key:
			report = ConnectionReport(host_key=offered_line, host_key_fingerprint=offered_fingerprint)
			report.checks.append(
				CheckResult(
					CHECK_HOST_KEY,
					False,
					f"not accepted yet: {config.host} offers {offered.get_name()} key {offered_fingerprint}. "
					"Compare it with the server's (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and accept it.",
				)
			)
			return report
		accepted = parse_host_key(config.host_key)
		if offered.get_name() == accepted.get_name() and offered.asbytes() != accepted.asbytes():
			report = ConnectionReport(host_key=offered_line, host_key_fingerprint=offered_fingerprint)
			report.checks.append(
				CheckResult(
					CHECK_HOST_KEY,
					False,
					f"CHANGED: {config.host} offers {offered_fingerprint}, the accepted key is "
					f"{fingerprint(accepted)}. Accept the new key only if its administrator confirms it.",
				)
			)
			return report
		report = super().check_connection()
		report.checks.insert(0, CheckResult(CHECK_HOST_KEY, True, f"{fingerprint(accepted)} (accepted)"))
		report.host_key_fingerprint = fingerprint(accepted)
		return report
