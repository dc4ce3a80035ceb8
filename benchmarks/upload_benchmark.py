"""Offsite upload: Backup Manager's upload_backup against a plain boto3 upload_file loop.

The plain loop is how Frappe's own S3 backup uploads (client.upload_file per file, default
TransferConfig, no verification). Both upload the same generated backup set to a local
SeaweedFS (started here via tests/seaweed.py, or BM_TEST_S3_ENDPOINT if set), each in a child
process so that its peak RSS (ru_maxrss) is its own.

	python benchmarks/upload_benchmark.py                # 2048 MB in 4 files
	python benchmarks/upload_benchmark.py --size-mb 300

Loopback numbers measure CPU and memory cost, not a WAN: real uploads are network-bound.
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

MiB = 1024 * 1024
# Share of the total per file: a database dump, public and private files, the site config.
FILES = (
	("database", "20261128T064500Z-database.sql.gz", 0.50),
	("public_files", "20261128T064500Z-files.tar", 0.30),
	("private_files", "20261128T064500Z-private-files.tar", 0.19),
	("site_config", "20261128T064500Z-site_config_backup.json", 0.01),
)
BACKUP_ID = "20261128T064500Z-BL-BENCH"
SITE = "bench.example.com"


def generate_backup_set(directory: str, total_mb: int) -> list[dict]:
	"""Write the four files quickly (one random MiB, varied per block); return name, size, sha256."""
	block = os.urandom(MiB)
	files = []
	for kind, name, share in FILES:
		size = max(1024, int(total_mb * MiB * share))
		digest = hashlib.sha256()
		with open(os.path.join(directory, name), "wb") as handle:
			written = 0
			while written < size:
				# A different first 8 bytes per block, so no two blocks (or parts) are identical.
				chunk = (written.to_bytes(8, "big") + block)[: min(MiB, size - written)]
				handle.write(chunk)
				digest.update(chunk)
				written += len(chunk)
		files.append({"kind": kind, "file_name": name, "size": size, "sha256": digest.hexdigest()})
	return files


def run_app_upload(arguments: argparse.Namespace) -> dict:
	from backup_manager.core.manifest import Artifact, Manifest
	from backup_manager.core.offsite import UPLOADED, upload_backup
	from backup_manager.core.storage import OTHER_S3_COMPATIBLE, S3Config, get_backend

	files = json.loads(arguments.files_json)
	backend = get_backend(
		S3Config(
			provider=OTHER_S3_COMPATIBLE,
			endpoint_url=os.environ["BM_TEST_S3_ENDPOINT"],
			region="us-east-1",
			bucket=arguments.bucket,
			addressing_style="path",
			access_key_id=os.environ["BM_TEST_S3_ACCESS_KEY"],
			secret_access_key=os.environ["BM_TEST_S3_SECRET_KEY"],
			additional_checksums=True,
			multipart_chunksize_mb=arguments.chunk_mb,
			max_concurrency=arguments.concurrency,
		)
	)
	manifest = Manifest(
		backup_id=BACKUP_ID,
		site=SITE,
		created_at="2026-11-28 06:45:00",
		frappe_version="15",
		artifacts=[Artifact(**item) for item in files],
	)
	started = time.monotonic()
	results = upload_backup(
		backend, manifest, arguments.dir, prefix="bench-app", site=SITE, max_workers=arguments.workers
	)
	duration = time.monotonic() - started
	failed = [result.error for result in results if result.status != UPLOADED]
	if failed:
		raise SystemExit(f"app upload failed: {failed}")
	return {"seconds": duration, "verified_by": sorted({result.verified_by for result in results})}


def run_plain_upload(arguments: argparse.Namespace) -> dict:
	import boto3

	files = json.loads(arguments.files_json)
	client = boto3.session.Session().client(
		"s3",
		endpoint_url=os.environ["BM_TEST_S3_ENDPOINT"],
		region_name="us-east-1",
		aws_access_key_id=os.environ["BM_TEST_S3_ACCESS_KEY"],
		aws_secret_access_key=os.environ["BM_TEST_S3_SECRET_KEY"],
	)
	started = time.monotonic()
	for item in files:
		client.upload_file(
			os.path.join(arguments.dir, item["file_name"]),
			arguments.bucket,
			f"bench-plain/{item['file_name']}",
		)
	return {"seconds": time.monotonic() - started, "verified_by": ["nothing (Frappe's loop does not verify)"]}


def run_child(arguments: argparse.Namespace) -> None:
	result = run_app_upload(arguments) if arguments.child == "app" else run_plain_upload(arguments)
	# ru_maxrss is in KiB on Linux.
	result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
	print(json.dumps(result))


def measure(
	mode: str, arguments: argparse.Namespace, bucket: str, files: list[dict], environment: dict
) -> dict:
	command = [
		sys.executable,
		os.path.abspath(__file__),
		"--child",
		mode,
		"--bucket",
		bucket,
		"--dir",
		arguments.dir,
		"--files-json",
		json.dumps(files),
		"--chunk-mb",
		str(arguments.chunk_mb),
		"--concurrency",
		str(arguments.concurrency),
		"--workers",
		str(arguments.workers),
	]
	# Keys travel in the environment, never in argv.
	output = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
	if output.returncode != 0:
		raise SystemExit(f"{mode} run failed:\n{output.stderr}")
	return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--size-mb", type=int, default=2048, help="total size of the backup set")
	parser.add_argument("--chunk-mb", type=int, default=16, help="Backup Manager multipart chunk size")
	parser.add_argument("--concurrency", type=int, default=4, help="Backup Manager parts in flight per file")
	parser.add_argument("--workers", type=int, default=2, help="Backup Manager files uploaded at once")
	parser.add_argument("--dir", default="", help="where to write the backup set (default: a temp dir)")
	parser.add_argument("--child", choices=("app", "plain"), help=argparse.SUPPRESS)
	parser.add_argument("--bucket", default="", help=argparse.SUPPRESS)
	parser.add_argument("--files-json", default="", help=argparse.SUPPRESS)
	arguments = parser.parse_args()
	if arguments.child:
		run_child(arguments)
		return

	from tests.seaweed import SeaweedServer, external_endpoint

	own_directory = not arguments.dir
	arguments.dir = arguments.dir or tempfile.mkdtemp(prefix="bm-upload-bench-")
	server = None
	try:
		endpoint = external_endpoint()
		if endpoint is None:
			server = SeaweedServer()
			endpoint = server.start()
		environment = {**os.environ, **dict(line.split("=", 1) for line in endpoint.env_lines())}
		environment["PYTHONPATH"] = REPOSITORY

		started = time.monotonic()
		files = generate_backup_set(arguments.dir, arguments.size_mb)
		total = sum(item["size"] for item in files)
		print(
			f"Backup set: {len(files)} files, {total / MiB:.0f} MiB, written and hashed in {time.monotonic() - started:.1f} s"
		)
		print(f"S3: {endpoint.endpoint_url} (SeaweedFS on loopback)")
		print(
			f"Backup Manager: chunk {arguments.chunk_mb} MiB, {arguments.concurrency} parts in flight per file, "
			f"{arguments.workers} files at once, SHA-256 checksums + verification"
		)
		print(
			"Plain boto3: client.upload_file per file, default TransferConfig (8 MiB parts, 10 threads), no verification\n"
		)

		runs = {}
		for mode in ("plain", "app"):
			bucket = endpoint.create_bucket()
			runs[mode] = measure(mode, arguments, bucket, files, environment)
		print(f"{'':28}{'seconds':>9}{'MB/s':>9}{'peak RSS MB':>13}  verified by")
		for mode, label in (
			("plain", "plain boto3 upload_file loop"),
			("app", "Backup Manager upload_backup"),
		):
			run = runs[mode]
			print(
				f"{label:28}{run['seconds']:9.2f}{total / MiB / run['seconds']:9.1f}{run['peak_rss_mb']:13.1f}  "
				f"{', '.join(run['verified_by'])}"
			)
		ratio = runs["app"]["seconds"] / runs["plain"]["seconds"]
		print(f"\nBackup Manager / plain time ratio: {ratio:.2f} (above 1 = slower)")
	finally:
		if server is not None:
			server.remove()
		if own_directory:
			shutil.rmtree(arguments.dir, ignore_errors=True)


if __name__ == "__main__":
	main()
