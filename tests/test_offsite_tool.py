"""The site-independent offsite tool, against a real SeaweedFS: list, verify and download."""

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from datetime import timedelta

from backup_manager.core import layout
from backup_manager.core.manifest import DATABASE, PUBLIC_FILES
from backup_manager.core.offsite import upload_backup
from backup_manager.core.offsite_tool import main
from backup_manager.core.storage import get_backend
from tests.seaweed import shared_endpoint
from tests.test_offsite import KEY, NOW, SITE, backup_id_for, make_backup

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OffsiteToolTestCase(unittest.TestCase):
	"""One uploaded complete backup and one incomplete one, shared by the tool's tests."""

	@classmethod
	def setUpClass(cls):
		cls.endpoint = shared_endpoint()
		cls.bucket = cls.endpoint.create_bucket()
		cls.client = cls.endpoint.client()
		cls.backend = get_backend(cls.endpoint.storage_config(cls.bucket))
		cls.directory = tempfile.mkdtemp(prefix="bm-offsite-tool-")
		cls.prefix = "tool/backups"
		cls.complete_id = backup_id_for(NOW - timedelta(days=1), 7)
		local = os.path.join(cls.directory, "local")
		cls.manifest = make_backup(
			local, cls.complete_id, {DATABASE: 6 * 1024 * 1024 + 1, PUBLIC_FILES: 3000}
		)
		upload_backup(cls.backend, cls.manifest, local, prefix=cls.prefix, site=SITE)
		cls.incomplete_id = backup_id_for(NOW, 8)
		cls.backend.upload_bytes(
			b"partial", layout.object_key(cls.prefix, SITE, cls.incomplete_id, "database.sql.gz")
		)

	@classmethod
	def tearDownClass(cls):
		shutil.rmtree(cls.directory, ignore_errors=True)

	def environ(self, **overrides) -> dict:
		values = {
			"AWS_ACCESS_KEY_ID": self.endpoint.access_key,
			"AWS_SECRET_ACCESS_KEY": self.endpoint.secret_key,
			"AWS_ENDPOINT_URL": self.endpoint.endpoint_url,
			"AWS_DEFAULT_REGION": "us-east-1",
			"BACKUP_MANIFEST_KEY": KEY,
			"PATH": os.environ.get("PATH", ""),
		}
		values.update(overrides)
		return {name: value for name, value in values.items() if value is not None}

	def run_tool(self, *arguments: str, **environ) -> tuple[int, str, str]:
		stdout, stderr = io.StringIO(), io.StringIO()
		with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
			code = main(list(arguments), environ=self.environ(**environ))
		return code, stdout.getvalue(), stderr.getvalue()

	def common(self) -> list[str]:
		return [
			"--bucket",
			self.bucket,
			"--prefix",
			self.prefix,
			"--site",
			SITE,
			"--addressing-style",
			"path",
		]


class TestOffsiteTool(OffsiteToolTestCase):
	def test_list_shows_ids_times_completeness_sizes_and_apps(self):
		code, out, err = self.run_tool("list", *self.common())
		self.assertEqual(code, 0, err)
		lines = out.splitlines()
		complete_line = next(line for line in lines if line.startswith(self.complete_id))
		incomplete_line = next(line for line in lines if line.startswith(self.incomplete_id))
		self.assertLess(lines.index(incomplete_line), lines.index(complete_line))  # newest first
		self.assertIn(f"{NOW - timedelta(days=1):%Y-%m-%d %H:%M:%S}", complete_line)
		self.assertIn("yes", complete_line)
		self.assertIn("6.0 MiB", complete_line)
		self.assertIn("frappe 15.45.0, erpnext 15.40.1", complete_line)
		self.assertIn("no: no manifest.json", incomplete_line)
		self.assertIn("2 backup(s), 1 complete", out)
		self.assertNotIn(self.endpoint.secret_key, out + err)

	def test_download_round_trip_verifies_every_file(self):
		target = os.path.join(self.directory, "restore")
		code, out, err = self.run_tool(
			"download", *self.common(), "--backup-id", self.complete_id, "--to", target
		)
		self.assertEqual(code, 0, err)
		for artifact in self.manifest.artifacts:
			path = os.path.join(target, artifact.file_name)
			self.assertIn(f"{path}  ", out)
			with open(path, "rb") as handle:
				self.assertEqual(hashlib.sha256(handle.read()).hexdigest(), artifact.sha256)
		self.assertTrue(os.path.exists(os.path.join(target, "manifest.json")))
		self.assertIn(f"Downloaded backup {self.complete_id}", out)

	def test_verify_reports_each_check(self):
		code, out, err = self.run_tool(
			"verify", *self.common(), "--backup-id", self.complete_id, "--read-back"
		)
		self.assertEqual(code, 0, err)
		self.assertIn("verified: 8 checks passed", out)

	def test_downloading_an_incomplete_backup_fails_with_exit_1(self):
		code, out, err = self.run_tool(
			"download",
			*self.common(),
			"--backup-id",
			self.incomplete_id,
			"--to",
			os.path.join(self.directory, "never"),
		)
		self.assertEqual(code, 1)
		self.assertIn("Error: Backup", err)
		self.assertIn("no readable manifest", err)

	def test_a_wrong_secret_fails_with_exit_1_and_is_never_printed(self):
		wrong_secret = "Not/The+Right0Secret0Key0At0All000000000"
		code, out, err = self.run_tool("list", *self.common(), AWS_SECRET_ACCESS_KEY=wrong_secret)
		self.assertEqual(code, 1)
		self.assertIn("Secret Access Key does not match", err)
		self.assertNotIn(wrong_secret, out + err)

	def test_missing_credentials_are_asked_for_in_the_environment(self):
		code, _out, err = self.run_tool(
			"list", *self.common(), AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None
		)
		self.assertEqual(code, 1)
		self.assertIn("Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", err)

	def test_credentials_cannot_be_given_on_the_command_line(self):
		with self.assertRaises(SystemExit) as caught, contextlib.redirect_stderr(io.StringIO()):
			main(["list", *self.common(), "--secret-access-key", "x"], environ=self.environ())
		self.assertEqual(caught.exception.code, 2)

	def test_runs_as_a_module_without_frappe(self):
		environment = {**os.environ, **self.environ(), "PYTHONPATH": REPOSITORY}
		result = subprocess.run(
			[
				sys.executable,
				"-c",
				"import sys, runpy; sys.modules['frappe'] = None; "
				"runpy.run_module('backup_manager.core.offsite_tool', run_name='__main__')",
				"list",
				*self.common(),
			],
			env=environment,
			capture_output=True,
			text=True,
			timeout=60,
		)
		self.assertEqual(result.returncode, 0, result.stderr)
		self.assertIn(self.complete_id, result.stdout)


if __name__ == "__main__":
	unittest.main()


class TestOffsiteToolRestorePlan(OffsiteToolTestCase):
	"""A disaster restore needs only the bucket, the credentials and a bench: the plan comes from the manifest."""

	def make_bench(self, apps: dict[str, str]) -> str:
		bench = tempfile.mkdtemp(prefix="bm-bench-")
		self.addCleanup(shutil.rmtree, bench, True)
		for app, version in apps.items():
			os.makedirs(os.path.join(bench, "apps", app, app))
			with open(os.path.join(bench, "apps", app, app, "__init__.py"), "w") as handle:
				handle.write(f'__version__ = "{version}"\n')
		return bench

	def test_restore_plan_from_the_bucket_downloads_verifies_and_restores(self):
		bench = self.make_bench({"frappe": "15.45.0"})
		code, out, err = self.run_tool(
			"restore-plan",
			*self.common(),
			"--backup-id",
			self.complete_id,
			"--new-site",
			SITE,
			"--bench-path",
			bench,
			"--format",
			"sh",
		)
		self.assertEqual(code, 0, err)
		self.assertTrue(out.startswith("#!/usr/bin/env bash"))
		self.assertIn(f"--backup-id={self.complete_id}", out)
		self.assertIn(f"--bucket={self.bucket}", out)
		# The download tool verifies each file; the plan checks its manifest against the plan's sha256.
		self.assertIn(" downloaded ", out)
		self.assertIn(self.manifest.artifact(DATABASE).sha256, out)
		self.assertIn(f"bench new-site {SITE} --source-sql ", out)
		# erpnext is in the backup but not in this bench: the script stops with get-app advice.
		self.assertIn("bench get-app erpnext", out)
		self.assertNotIn(self.endpoint.secret_key, out)
		self.assertNotIn(self.endpoint.access_key, out)
		bash = subprocess.run(["bash", "-n"], input=out, text=True, capture_output=True, check=False)
		self.assertEqual(bash.returncode, 0, bash.stderr)

	def test_restore_plan_of_an_incomplete_backup_fails_clearly(self):
		code, _out, err = self.run_tool(
			"restore-plan",
			*self.common(),
			"--backup-id",
			self.incomplete_id,
			"--bench-path",
			self.make_bench({}),
		)
		self.assertEqual(code, 1)
		self.assertIn(self.incomplete_id, err)
