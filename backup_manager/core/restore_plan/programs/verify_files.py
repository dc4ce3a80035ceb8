import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

# verify_files.py FOLDER MODE NAME SHA256 [NAME SHA256 ...]
# MODE "hash": hash every file (hashlib releases the GIL on large buffers, so files are hashed
# in parallel threads at disk speed). MODE "downloaded": the download tool already hashed each
# file against the backup's manifest.json while downloading it; check that the manifest it wrote
# records the same sha256 as this plan, and that each file is there with its size.
folder, mode, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
expected = dict(zip(pairs[0::2], pairs[1::2], strict=True))
BUFFER_BYTES = 4 * 1024 * 1024


def hash_file(name):
	digest = hashlib.sha256()
	buffer = bytearray(BUFFER_BYTES)
	view = memoryview(buffer)
	with open(os.path.join(folder, name), "rb", buffering=0) as handle:
		while True:
			count = handle.readinto(buffer)
			if not count:
				return digest.hexdigest()
			digest.update(view[:count])


def check_hash(name):
	try:
		actual = hash_file(name)
	except OSError as error:
		return name, f"FAILED open or read ({error.strerror})"
	return name, "OK" if actual == expected[name] else "FAILED (sha256 differs from the manifest)"


def check_download(name, recorded):
	if recorded.get(name) != expected[name]:
		return name, "FAILED (the downloaded manifest.json records another sha256 than this plan)"
	if not os.path.isfile(os.path.join(folder, name)):
		return name, "FAILED (missing)"
	return name, "OK (sha256 verified by the download tool)"


if mode == "downloaded":
	with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as handle:
		artifacts = json.load(handle).get("artifacts") or []
	recorded = {item.get("file_name"): item.get("sha256") for item in artifacts if isinstance(item, dict)}
	results = [check_download(name, recorded) for name in expected]
else:
	with ThreadPoolExecutor(max_workers=max(1, min(len(expected), os.cpu_count() or 1))) as pool:
		results = list(pool.map(check_hash, expected))
for name, state in results:
	print(f"{name}: {state}")
failed = [name for name, state in results if not state.startswith("OK")]
if failed:
	sys.exit(f"{len(failed)} of {len(results)} backup file(s) FAILED verification: " + ", ".join(failed))
