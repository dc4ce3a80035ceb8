"""Deduplicated files offsite against today's whole-archive upload, side by side, in one run.

	python benchmarks/dedup_benchmark.py [--files-mb 500] [--file-kb 500] [--new-files 10]

Uses the S3 server in BM_TEST_S3_* (or starts a throwaway SeaweedFS). Builds a files folder
like a site's (<site>/public/files/...), tars it with GNU tar as frappe.utils.backups does, and
measures, each against the same bucket and the same code paths the app uses (core.offsite):
  P4a  a second backup with unchanged attachments: bytes uploaded / attachment bytes (goal <= 1%)
  P4b  after adding N new attachments: bytes uploaded against their size plus the index
  first deduplicated upload time / whole-archive upload time (goal <= 1.1)
  restore (download + rebuild + verify) time from dedup / from the whole archive (goal <= 1.2)
"""

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from backup_manager.core.manifest import PUBLIC_FILES, Artifact, Manifest  # noqa: E402
from backup_manager.core.offsite import download_backup, upload_backup  # noqa: E402
from backup_manager.core.storage import get_backend  # noqa: E402
from tests.seaweed import shared_endpoint  # noqa: E402

SITE = "bench.example.com"


def sha256_of(path: str) -> str:
	digest = hashlib.sha256()
	with open(path, "rb") as handle:
		while chunk := handle.read(1024 * 1024):
			digest.update(chunk)
	return digest.hexdigest()


def make_backup(work: str, number: int) -> tuple[Manifest, str]:
	when = datetime(2026, 12, 1, tzinfo=timezone.utc) + timedelta(hours=number)
	backup_id = f"{when:%Y%m%dT%H%M%SZ}-BL-{number:05d}"
	local = os.path.join(work, "local", backup_id)
	os.makedirs(local)
	tar_path = os.path.join(local, "files.tar")
	subprocess.run(["tar", "-cf", tar_path, "-C", os.path.join(work, "site"), f"{SITE}/public"], check=True)
	artifact = Artifact(PUBLIC_FILES, "files.tar", os.path.getsize(tar_path), sha256_of(tar_path))
	manifest = Manifest(
		backup_id=backup_id, site=SITE, created_at=backup_id[:16], frappe_version="15", artifacts=[artifact]
	)
	return manifest, local


def timed_upload(backend, manifest, local, prefix, deduplicate) -> tuple[float, int]:
	started = time.monotonic()
	results = upload_backup(
		backend, manifest, local, prefix=prefix, site=SITE, max_workers=4, deduplicate=deduplicate
	)
	elapsed = time.monotonic() - started
	if any(result.status != "Uploaded" for result in results):
		raise SystemExit(f"upload failed: {results}")
	return elapsed, sum(result.bytes for result in results if result.kind != "manifest")


def timed_download(backend, manifest, prefix, work) -> float:
	target = tempfile.mkdtemp(dir=work)
	started = time.monotonic()
	# The app downloads with the Backup Log's manifest (trusted), as `bench ... download` does.
	download_backup(
		backend, prefix=prefix, site=SITE, backup_id=manifest.backup_id, to_dir=target, manifest=manifest
	)
	elapsed = time.monotonic() - started
	shutil.rmtree(target)
	return elapsed


def median(values: list[float]) -> float:
	ordered = sorted(values)
	middle = len(ordered) // 2
	return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
	parser = argparse.ArgumentParser()
	parser.add_argument("--files-mb", type=int, default=500)
	parser.add_argument("--file-kb", type=int, default=500)
	parser.add_argument("--new-files", type=int, default=10)
	parser.add_argument("--rounds", type=int, default=3)
	arguments = parser.parse_args()

	endpoint = shared_endpoint()
	bucket = endpoint.create_bucket()
	backend = get_backend(endpoint.storage_config(bucket))
	work = tempfile.mkdtemp(prefix="bm-dedup-bench-")
	first_upload: dict[str, list[float]] = {"plain": [], "dedup": []}
	restore: dict[str, list[float]] = {"plain": [], "dedup": []}
	try:
		files = os.path.join(work, "site", SITE, "public", "files")
		os.makedirs(files)
		count = arguments.files_mb * 1024 // arguments.file_kb
		for number in range(count):
			with open(os.path.join(files, f"scan-{number:05d}.pdf"), "wb") as handle:
				handle.write(os.urandom(arguments.file_kb * 1024))
		attachment_bytes = count * arguments.file_kb * 1024

		first, local = make_backup(work, 1)
		# Each round uploads to fresh prefixes (a first deduplicated backup holds no content yet),
		# the two sides in alternating order, then restores both.
		for number in range(arguments.rounds):
			sides = ["plain", "dedup"] if number % 2 == 0 else ["dedup", "plain"]
			for side in sides:
				seconds, _bytes = timed_upload(backend, first, local, f"{side}{number}", side == "dedup")
				first_upload[side].append(seconds)
			for side in sides:
				restore[side].append(timed_download(backend, first, f"{side}{number}", work))
			print(
				f"round {number + 1}: first upload plain {first_upload['plain'][-1]:.2f} s, dedup "
				f"{first_upload['dedup'][-1]:.2f} s; restore plain {restore['plain'][-1]:.2f} s, dedup "
				f"{restore['dedup'][-1]:.2f} s; load {os.getloadavg()[0]:.1f}",
				flush=True,
			)
		dedup_prefix = "dedup0"

		second, local = make_backup(work, 2)
		_seconds, unchanged_bytes = timed_upload(backend, second, local, dedup_prefix, True)

		new_bytes = 0
		for number in range(arguments.new_files):
			data = os.urandom(arguments.file_kb * 1024)
			new_bytes += len(data)
			with open(os.path.join(files, f"new-{number:03d}.pdf"), "wb") as handle:
				handle.write(data)
		third, local = make_backup(work, 3)
		_seconds, added_bytes = timed_upload(backend, third, local, dedup_prefix, True)
		index_size = next(
			item.size
			for item in backend.list_objects(f"{dedup_prefix}/{SITE}/{third.backup_id}/")
			if item.key.endswith(".index.json.gz")
		)
	finally:
		shutil.rmtree(work, ignore_errors=True)

	mib = 1024 * 1024
	plain_seconds, dedup_seconds = median(first_upload["plain"]), median(first_upload["dedup"])
	plain_restore, dedup_restore = median(restore["plain"]), median(restore["dedup"])
	print(
		f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPU"
	)
	print(f"attachments: {count} files, {attachment_bytes / mib:.0f} MiB; S3: SeaweedFS on 127.0.0.1")
	print(f"medians of {arguments.rounds} rounds, sides alternating:")
	print(
		f"first upload: whole archive {plain_seconds:.2f} s, deduplicated {dedup_seconds:.2f} s: ratio {dedup_seconds / plain_seconds:.2f} (goal <= 1.10)"
	)
	print(
		f"P4a unchanged attachments: uploaded {unchanged_bytes} bytes = {unchanged_bytes / attachment_bytes * 100:.3f}% of the attachments (goal <= 1%)"
	)
	print(
		f"P4b {arguments.new_files} new attachments ({new_bytes} bytes): uploaded {added_bytes} bytes; their size plus the index "
		f"({index_size} bytes) is {new_bytes + index_size}: {'ok' if added_bytes <= new_bytes + index_size else 'OVER'}"
	)
	print(
		f"restore download (fetch, rebuild, verify): whole archive {plain_restore:.2f} s, from the index {dedup_restore:.2f} s: ratio {dedup_restore / plain_restore:.2f} (goal <= 1.20)"
	)


if __name__ == "__main__":
	main()
