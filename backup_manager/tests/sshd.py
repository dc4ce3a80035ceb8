"""A throwaway OpenSSH server on 127.0.0.1 for the SFTP tests (Debian openssh-server).

	with SSHServer() as server:
		config = server.config(base_folder=...)     # an SFTPConfig with the pinned host key

sshd runs in the foreground (-D), logs to stderr (-e), with its own config, host key, user key
and authorized_keys in a temporary folder, on a free port; it lets in the current user (root in
CI) with the throwaway key only. StrictModes is off because the key files live under /tmp.
`kill_sessions()` kills the per-connection sshd processes: a connection dropped mid-transfer.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
START_TIMEOUT_SECONDS = 15


def free_port() -> int:
	with socket.socket() as sock:
		sock.bind((HOST, 0))
		return sock.getsockname()[1]


def sshd_available() -> bool:
	return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def make_key(path: str, kind: str = "ed25519") -> str:
	subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", path, "-C", "bm-test"], check=True)
	with open(f"{path}.pub") as handle:
		return handle.read().strip()


class SSHServer:
	def __init__(self, host_key_kind: str = "ed25519"):
		self.directory = tempfile.mkdtemp(prefix="bm-sshd-")
		os.chmod(self.directory, 0o700)
		self.port = free_port()
		self.user = pwd.getpwuid(os.geteuid()).pw_name
		self.host_key_path = os.path.join(self.directory, f"host_{host_key_kind}")
		make_key(self.host_key_path, host_key_kind)
		self.user_key_path = os.path.join(self.directory, "user_key")
		user_public = make_key(self.user_key_path)
		self.authorized_keys = os.path.join(self.directory, "authorized_keys")
		with open(self.authorized_keys, "w") as handle:
			handle.write(user_public + "\n")
		self.config_path = os.path.join(self.directory, "sshd_config")
		self.process: subprocess.Popen | None = None
		self.log_path = os.path.join(self.directory, "sshd.log")

	def write_config(self) -> None:
		with open(self.config_path, "w") as handle:
			handle.write(
				f"Port {self.port}\nListenAddress {HOST}\nHostKey {self.host_key_path}\n"
				f"PidFile {self.directory}/sshd.pid\nAuthorizedKeysFile {self.authorized_keys}\n"
				"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
				"UsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\nMaxSessions 50\nMaxStartups 50\n"
				"LogLevel ERROR\n"
			)

	@property
	def host_key_line(self) -> str:
		with open(f"{self.host_key_path}.pub") as handle:
			kind, data, *_comment = handle.read().split()
		return f"{kind} {data}"

	def start(self) -> "SSHServer":
		os.makedirs("/run/sshd", exist_ok=True)
		self.write_config()
		log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while sshd runs
		self.process = subprocess.Popen(
			[SSHD, "-D", "-e", "-f", self.config_path], stdout=log, stderr=log, start_new_session=True
		)
		log.close()
		deadline = time.monotonic() + START_TIMEOUT_SECONDS
		while time.monotonic() < deadline:
			if self.process.poll() is not None:
				with open(self.log_path) as handle:
					raise RuntimeError(f"sshd exited at start: {handle.read()[-2000:]}")
			try:
				with socket.create_connection((HOST, self.port), timeout=1):
					return self
			except OSError:
				time.sleep(0.1)
		self.stop()
		raise RuntimeError("sshd did not start listening")

	def replace_host_key(self) -> None:
		"""Give the server a new host key of the same kind (a reinstalled or impostor server)."""
		os.remove(self.host_key_path)
		os.remove(f"{self.host_key_path}.pub")
		make_key(self.host_key_path)
		self.restart()

	def restart(self) -> None:
		self.stop()
		self.start()

	def session_pids(self) -> list[int]:
		"""The per-connection sshd processes (children of the listener)."""
		if self.process is None:
			return []
		result = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
		return [int(pid) for pid in result.stdout.split()]

	def kill_sessions(self) -> int:
		pids = self.session_pids()
		for pid in pids:
			try:
				os.kill(pid, signal.SIGKILL)
			except ProcessLookupError:
				pass
		return len(pids)

	def config(self, **overrides):
		from backup_manager.core.storage import SFTPConfig

		values = {
			"host": HOST,
			"port": self.port,
			"username": self.user,
			"private_key_file": self.user_key_path,
			"host_key": self.host_key_line,
			"connect_timeout": 10.0,
			"read_timeout": 20.0,
			"upload_attempts": 1,
		}
		values.update(overrides)
		return SFTPConfig(**values)

	def stop(self) -> None:
		if self.process is None:
			return
		self.kill_sessions()
		self.process.terminate()
		try:
			self.process.wait(timeout=5)
		except subprocess.TimeoutExpired:
			self.process.kill()
			self.process.wait()
		self.process = None

	def __enter__(self) -> "SSHServer":
		return self.start()

	def __exit__(self, *exc_info) -> None:
		self.stop()
		shutil.rmtree(self.directory, ignore_errors=True)
