import dataclasses
import glob
import gzip
import io
import itertools
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import unittest
from unittest import mock

from backup_manager.core import checksums
from backup_manager.core.encryption import encrypt_file_in_place
from backup_manager.core.manifest import (
	DATABASE,
	PRIVATE_FILES,
	PUBLIC_FILES,
	SITE_CONFIG,
	Artifact,
	InstalledApp,
	Manifest,
)
from backup_manager.core.restore_plan import (
	OffsiteSource,
	RestoreOptions,
	build_restore_plan,
	check_apps,
	compare_versions,
	render_json,
	render_shell,
	render_text,
)

BENCH = "/home/frappe/frappe-bench"
BACKUP_ID = "20261128T064500Z-BL-00001"
SITE = "erp.example.com"
LOCAL_DIR = "/var/backups/erp.example.com/20261128T064500Z-BL-00001"
WORK_DIR = f"{BENCH}/backup-restore/{BACKUP_ID}"
PREPARED = f"{WORK_DIR}/prepared"
FILE_PREFIX = "20261128_064500-erp_example_com"
# Shell metacharacters of every kind, no slash (site names are folder names).
HOSTILE = 'x\'; touch pwned; echo "$(touch pwned2)" `touch pwned3` ; y'
# Looks like a real Frappe key; it lives only in fixture files and must never reach a rendering.
ORIGINAL_SITE_KEY = "k3Vx0m2Q8rLq5eJ9nT1uYb6wZc4hGd7sPa0fXo2iRlM="
BACKUP_KEY = "backup-key-Qm9vYmFyLXNlY3JldC1rZXktdmFsdWU"
ROOT_PASSWORD = "root-pw-7f3a9c1e5b"
TEST_PYTHON = sys.executable
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASH = shutil.which("bash") or "/bin/bash"


def digest(character: str) -> str:
	return character * 64


def make_manifest(
	*,
	with_files: bool = True,
	encrypted: bool = False,
	partial: bool = False,
	with_site_config: bool = True,
	site: str = SITE,
	apps: list[InstalledApp] | None = None,
) -> Manifest:
	artifacts = [
		Artifact(
			DATABASE,
			f"{FILE_PREFIX}{'-partial' if partial else ''}-database.sql.gz",
			100,
			digest("a"),
			encrypted,
		)
	]
	if with_files:
		artifacts.append(Artifact(PUBLIC_FILES, f"{FILE_PREFIX}-files.tar", 200, digest("b"), encrypted))
		artifacts.append(
			Artifact(PRIVATE_FILES, f"{FILE_PREFIX}-private-files.tar", 300, digest("c"), encrypted)
		)
	if with_site_config:
		artifacts.append(
			Artifact(SITE_CONFIG, f"{FILE_PREFIX}-site_config_backup.json", 40, digest("d"), encrypted)
		)
	return Manifest(
		backup_id=BACKUP_ID,
		site=site,
		created_at="2026-11-28T06:45:00+00:00",
		frappe_version="15.44.2",
		apps=apps
		if apps is not None
		else [
			InstalledApp("frappe", "15.44.2", "version-15", "1" * 40),
			InstalledApp("erpnext", "15.40.1", "version-15", "2" * 40),
		],
		artifacts=artifacts,
		encrypted=encrypted,
		partial=partial,
		include_doctypes=["ToDo", "Note"] if partial else [],
	)


def make_options(**overrides) -> RestoreOptions:
	values = {"target_site": SITE, "bench_path": BENCH, "local_dir": LOCAL_DIR}
	values.update(overrides)
	return RestoreOptions(**values)


def make_source(**overrides) -> OffsiteSource:
	values = {
		"destination_name": "Wasabi EU",
		"endpoint_url": "https://s3.eu-central-1.wasabisys.com",
		"region": "eu-central-1",
		"bucket": "acme-backups",
		"prefix": "frappe",
	}
	values.update(overrides)
	return OffsiteSource(**values)


def step_keys(plan) -> list[str]:
	return [step.key for step in plan.steps]


def commands_of(plan, key: str) -> list[str]:
	return next(step.commands for step in plan.steps if step.key == key)


def first_line(plan, key: str, index: int = 0) -> str:
	"""The first line of a command: for a program fed on a heredoc, its argv."""
	return commands_of(plan, key)[index].split("\n", 1)[0]


def database_restore_command(plan) -> str:
	"""The bench command of the restore step (a same-site restore also starts the files beside it)."""
	return next(command for command in commands_of(plan, "restore") if " bench --site " in command)


def restore_and_migrate(dump: str, site_config: str | None = None) -> str:
	"""The same-site restore step's command: bench restore + key + bench migrate in one process."""
	config = f" --site-config {site_config}" if site_config else ""
	return (
		f"with_fast_gunzip bench --site {SITE} backup-manager restore-and-migrate {dump}{config} "
		"${ALLOW_DOWNGRADE:+--force} </dev/null"
	)


def files_first_line(plan) -> str:
	"""The argv line of the program unpacking the archives: its own step for a new site, started in
	the background by the database restore step for the same site."""
	if "restore_files" in step_keys(plan):
		return first_line(plan, "restore_files")
	line = first_line(plan, "restore")
	if not line.endswith(" &"):
		raise AssertionError(f"the restore step does not start the files in the background: {line!r}")
	return line.removesuffix(" &")


def all_commands(plan) -> str:
	return "\n".join(command for step in plan.steps for command in step.commands)


class TestVersionComparison(unittest.TestCase):
	def test_numeric_parts_compare_as_numbers(self):
		self.assertEqual(compare_versions("15.44.10", "15.44.9"), 1)
		self.assertEqual(compare_versions("15.9.0", "15.44.0"), -1)
		self.assertEqual(compare_versions("15.44.2", "15.44.2"), 0)

	def test_missing_parts_count_as_zero_and_decorations_are_ignored(self):
		self.assertEqual(compare_versions("15.44", "15.44.0"), 0)
		self.assertEqual(compare_versions("v15.1.0", "15.1.0"), 0)
		self.assertEqual(compare_versions("15.1.0+build.7", "15.1.0"), 0)

	def test_pre_releases_come_before_the_release(self):
		ordered = ["15.0.0-dev", "15.0.0-alpha.3", "15.0.0-beta.1", "15.0.0-beta.2", "15.0.0-rc.1", "15.0.0"]
		for older, newer in itertools.pairwise(ordered):
			with self.subTest(older=older, newer=newer):
				self.assertEqual(compare_versions(older, newer), -1)
				self.assertEqual(compare_versions(newer, older), 1)
		self.assertEqual(compare_versions("16.0.0-beta.1", "15.99.3"), 1)
		self.assertEqual(compare_versions("15.0.0-beta.10", "15.0.0-beta.9"), 1)
		self.assertEqual(compare_versions("15.0.0b1", "15.0.0-beta.1"), 0)

	def test_unreadable_versions_compare_as_unknown(self):
		self.assertIsNone(compare_versions("", "15.0.0"))
		self.assertIsNone(compare_versions("15.0.0", "develop"))


class TestAppChecks(unittest.TestCase):
	def test_statuses_against_the_bench(self):
		manifest = make_manifest(
			apps=[
				InstalledApp("frappe", "15.44.2", "version-15"),
				InstalledApp("erpnext", "15.40.1", "version-15"),
				InstalledApp("hrms", "15.30.0", "version-15"),
				InstalledApp("payments", "0.0.1", "develop"),
				InstalledApp("insights", "3.0.0-dev", "develop"),
			]
		)
		bench = {"frappe": "15.45.0", "erpnext": "15.40.1", "hrms": "15.29.9", "insights": "weird"}
		checks = check_apps(manifest, bench)
		self.assertEqual(
			[(check.app, check.status, check.bench_version) for check in checks],
			[
				("frappe", "ok", "15.45.0"),
				("erpnext", "ok", "15.40.1"),
				("hrms", "downgrade", "15.29.9"),
				("payments", "missing", ""),
				("insights", "unknown", "weird"),
			],
		)
		fixes = {check.app: check.fix for check in checks}
		self.assertEqual(fixes["payments"], "bench get-app payments --branch develop")
		self.assertEqual(fixes["hrms"], "bench update --pull --requirements --build --apps hrms")
		self.assertEqual(fixes["frappe"], "")

	def test_frappe_comes_first_and_the_backup_order_is_kept(self):
		manifest = make_manifest(
			apps=[
				InstalledApp("erpnext", "15.40.1"),
				InstalledApp("hrms", "15.1.0"),
				InstalledApp("frappe", "15.44.2"),
			]
		)
		self.assertEqual([check.app for check in check_apps(manifest, None)], ["frappe", "erpnext", "hrms"])

	def test_frappe_version_comes_from_the_manifest_when_apps_lack_it(self):
		manifest = make_manifest(apps=[InstalledApp("erpnext", "15.40.1")])
		checks = check_apps(manifest, {"frappe": "15.40.0", "erpnext": "15.40.1"})
		self.assertEqual(
			(checks[0].app, checks[0].backup_version, checks[0].status), ("frappe", "15.44.2", "downgrade")
		)

	def test_unknown_bench_gives_unknown_statuses(self):
		self.assertEqual({check.status for check in check_apps(make_manifest(), None)}, {"unknown"})

	def test_detached_checkout_has_no_branch_to_get(self):
		manifest = make_manifest(
			apps=[InstalledApp("frappe", "15.44.2"), InstalledApp("custom_app", "1.0.0", "HEAD", "abc")]
		)
		checks = check_apps(manifest, {"frappe": "15.44.2"})
		self.assertEqual(checks[1].fix, "bench get-app custom_app")

	def test_plan_warns_about_a_frappe_downgrade_and_a_missing_app(self):
		plan = build_restore_plan(make_manifest(), make_options(bench_apps={"frappe": "15.40.0"}))
		text = " ".join(plan.warnings)
		self.assertIn("ALLOW_DOWNGRADE=1", text)
		self.assertIn("bench get-app erpnext --branch version-15", text)
		self.assertEqual(
			commands_of(plan, "apps")[1],
			"[ -d apps/erpnext ] || { printf '%s\\n' 'App erpnext (15.40.1 in the backup) is not in this bench: "
			"get it with `bench get-app erpnext --branch version-15`, then run the plan again.' >&2; false; }",
		)

	def test_major_upgrade_is_announced(self):
		plan = build_restore_plan(
			make_manifest(), make_options(bench_apps={"frappe": "16.0.0", "erpnext": "16.1.0"})
		)
		self.assertEqual([check.status for check in plan.app_checks], ["ok", "ok"])
		self.assertTrue(any("major-version upgrade" in warning for warning in plan.warnings))


class TestStepLists(unittest.TestCase):
	def test_database_only_same_site(self):
		plan = build_restore_plan(make_manifest(with_files=False), make_options())
		self.assertEqual(
			step_keys(plan),
			[
				"bench",
				"apps",
				"verify",
				"database_secrets",
				"maintenance_on",
				"restore",
				"maintenance_off",
			],
		)
		# bench restore, the key carried and bench migrate run in one bench process.
		self.assertEqual(
			commands_of(plan, "restore"),
			[
				restore_and_migrate(
					f"{LOCAL_DIR}/{FILE_PREFIX}-database.sql.gz",
					f"{LOCAL_DIR}/{FILE_PREFIX}-site_config_backup.json",
				)
			],
		)
		self.assertEqual(
			next(step.title for step in plan.steps if step.key == "restore"),
			"Restore the database, then migrate",
		)
		# The root password is only checked for: the restore hands it over in its own process.
		self.assertEqual(first_line(plan, "database_secrets"), f"./env/bin/python - {SITE} check <<'PY'")
		self.assertNotIn("COMMON_CONFIG_ORIGINAL=$(mktemp", all_commands(plan))
		# Maintenance mode is written by a program, not by starting bench.
		self.assertEqual(first_line(plan, "maintenance_on"), f"./env/bin/python - {SITE} 1 <<'PY'")
		self.assertEqual(first_line(plan, "maintenance_off"), f"./env/bin/python - {SITE} 0 <<'PY'")
		self.assertIn('config["maintenance_mode"] = state', commands_of(plan, "maintenance_off")[0])
		self.assertEqual(commands_of(plan, "bench")[0], f"cd {BENCH}")
		# Local files are hashed once, by hashlib, against the manifest's sha256.
		self.assertEqual(
			first_line(plan, "verify"),
			f"./env/bin/python - {LOCAL_DIR} hash {FILE_PREFIX}-database.sql.gz {digest('a')} "
			f"{FILE_PREFIX}-site_config_backup.json {digest('d')} <<'PY'",
		)
		self.assertNotIn("sha256sum", all_commands(plan))
		self.assertNotIn("scheduler", all_commands(plan))
		self.assertEqual([env_var.name for env_var in plan.env_vars], ["DB_ROOT_PASSWORD", "ALLOW_DOWNGRADE"])

	def test_same_site_with_files(self):
		plan = build_restore_plan(make_manifest(), make_options())
		# bench restore gets the dump only; plain tar unpacks the archives in the background beside
		# it, and the step waits for both.
		commands = commands_of(plan, "restore")
		self.assertEqual(
			commands[1:],
			[
				"FILES_RESTORE_PID=$!",
				restore_and_migrate(
					f"{LOCAL_DIR}/{FILE_PREFIX}-database.sql.gz",
					f"{LOCAL_DIR}/{FILE_PREFIX}-site_config_backup.json",
				),
				'wait "$FILES_RESTORE_PID"',
				"FILES_RESTORE_PID=",
			],
		)
		self.assertEqual(
			first_line(plan, "restore"),
			f"./env/bin/python - {SITE} public {LOCAL_DIR}/{FILE_PREFIX}-files.tar "
			f"private {LOCAL_DIR}/{FILE_PREFIX}-private-files.tar <<'PY' &",
		)
		self.assertTrue(commands[0].endswith("\nPY"))
		self.assertEqual(step_keys(plan)[5:], ["restore", "maintenance_off"])
		self.assertEqual(
			next(step.title for step in plan.steps if step.key == "restore"),
			"Restore the database and the files, then migrate",
		)

	def test_encrypted_backup_is_decrypted_before_the_restore(self):
		plan = build_restore_plan(make_manifest(encrypted=True), make_options())
		self.assertEqual(
			step_keys(plan),
			[
				"bench",
				"apps",
				"verify",
				"prepare_files",
				"database_secrets",
				"maintenance_on",
				"restore",
				"maintenance_off",
				"cleanup",
			],
		)
		gpg = "gpg --batch --yes --no-symkey-cache --pinentry-mode loopback --passphrase-fd 0 --status-fd 1"

		def decrypt(output: str, source: str) -> str:
			return (
				f'GPG_STATUS=$(umask 077; {gpg} --output {PREPARED}/{output} --decrypt {LOCAL_DIR}/{FILE_PREFIX}-{source} <<<"$BACKUP_ENCRYPTION_KEY")\n'
				f'require_decrypted "$GPG_STATUS" {PREPARED}/{output}'
			)

		self.assertEqual(
			commands_of(plan, "prepare_files"),
			[
				f"if [ -e {PREPARED} ]; then rm -rf -- {PREPARED}; echo 'Removed the decrypted files of an "
				"interrupted restore.' >&2; fi",
				f"PREPARED_DIR={PREPARED}",
				f"mkdir -p -- {WORK_DIR}",
				f"mkdir -m 700 -- {PREPARED}",
				decrypt("database.sql.gz", "database.sql.gz"),
				decrypt("public-files.tar", "files.tar"),
				decrypt("private-files.tar", "private-files.tar"),
				decrypt("site_config.json", "site_config_backup.json"),
			],
		)
		self.assertEqual(
			database_restore_command(plan),
			restore_and_migrate(f"{PREPARED}/database.sql.gz", f"{PREPARED}/site_config.json"),
		)
		self.assertEqual(
			files_first_line(plan),
			f"./env/bin/python - {SITE} public {PREPARED}/public-files.tar private {PREPARED}/private-files.tar <<'PY'",
		)
		self.assertEqual(commands_of(plan, "cleanup"), [f"rm -rf -- {PREPARED}"])
		self.assertNotIn("--encryption-key", all_commands(plan))
		key = next(env_var for env_var in plan.env_vars if env_var.name == "BACKUP_ENCRYPTION_KEY")
		self.assertTrue(key.required)

	def test_frappe_encrypted_files_of_an_old_manifest_are_decrypted(self):
		manifest = make_manifest(with_files=False, with_site_config=False)
		manifest.encrypted = True
		manifest.artifacts[0].file_name = f"{FILE_PREFIX}-database-enc.sql.gz"
		plan = build_restore_plan(manifest, make_options())
		self.assertIn("prepare_files", step_keys(plan))

	def test_partial_backup_restores_tables_into_the_same_site(self):
		plan = build_restore_plan(make_manifest(partial=True, encrypted=True), make_options())
		self.assertEqual(
			step_keys(plan),
			[
				"bench",
				"apps",
				"verify",
				"prepare_files",
				"maintenance_on",
				"restore",
				"migrate",
				"maintenance_off",
				"cleanup",
			],
		)
		self.assertEqual(
			commands_of(plan, "restore"),
			[f"with_fast_gunzip bench --site {SITE} partial-restore {PREPARED}/database.sql.gz </dev/null"],
		)
		# Only the database is decrypted: partial-restore takes no files and needs no site config.
		self.assertEqual(
			len(
				[command for command in commands_of(plan, "prepare_files") if "require_decrypted" in command]
			),
			1,
		)
		self.assertEqual([env_var.name for env_var in plan.env_vars], ["BACKUP_ENCRYPTION_KEY"])
		self.assertTrue(
			any("partial-restore only restores database tables" in warning for warning in plan.warnings)
		)
		# Only a killed earlier run's saved copy would be put back: this restore adds no secret there.
		self.assertNotIn("COMMON_CONFIG_ORIGINAL", all_commands(plan))

	def test_partial_backup_cannot_create_a_new_site(self):
		with self.assertRaisesRegex(ValueError, "partial backup .* cannot create a new site"):
			build_restore_plan(
				make_manifest(partial=True), make_options(new_site=True, target_site="copy.example.com")
			)

	def test_new_site(self):
		target = "copy.example.com"
		plan = build_restore_plan(
			make_manifest(encrypted=True), make_options(new_site=True, target_site=target)
		)
		self.assertEqual(
			step_keys(plan),
			[
				"bench",
				"apps",
				"verify",
				"prepare_files",
				"database_secrets",
				"create_site",
				"restore_common_config",
				"restore_files",
				"site_keys",
				"migrate",
				"cleanup",
			],
		)
		# The site is created from the dump: no blank install, no bench restore afterwards.
		self.assertEqual(
			commands_of(plan, "create_site"),
			[f"with_fast_gunzip bench new-site {target} --source-sql {PREPARED}/database.sql.gz </dev/null"],
		)
		self.assertNotIn(f"bench --site {target} restore", all_commands(plan))
		# bench new-site --source-sql skips bench restore's downgrade question: the apps step asks it.
		self.assertEqual(first_line(plan, "apps", -1), "./env/bin/python - 15.44.2 <<'PY'")
		self.assertIn("ALLOW_DOWNGRADE", commands_of(plan, "apps")[-1])
		self.assertEqual(
			commands_of(plan, "bench")[3],
			f"[ ! -e sites/{target} ] || {{ printf '%s\\n' 'sites/{target} already exists: choose another name for the "
			"new site, or restore into it as the same site.' >&2; false; }",
		)
		self.assertEqual(
			commands_of(plan, "site_keys")[0].split("\n", 1)[0],
			f"./env/bin/python - {PREPARED}/site_config.json {target} 1 1 <<'PY'",
		)
		self.assertEqual(
			commands_of(plan, "database_secrets")[2].split("\n", 1)[0],
			f"./env/bin/python - {target} 1 <<'PY'",
		)
		self.assertNotIn("install-app", all_commands(plan))
		# The dump holds the Administrator password: new-site --source-sql needs none.
		self.assertNotIn("ADMIN_PASSWORD", [env_var.name for env_var in plan.env_vars])
		self.assertNotIn("admin_password", all_commands(plan))
		self.assertTrue(
			any("scheduler" in warning and "stays disabled" in warning for warning in plan.warnings)
		)
		self.assertIn(f"bench drop-site {target} --force --no-backup", plan.steps[0].explanation)

	def test_new_site_that_replaces_the_original_gets_its_scheduler_enabled(self):
		plan = build_restore_plan(make_manifest(), make_options(new_site=True, enable_scheduler=True))
		self.assertEqual(step_keys(plan)[-1], "scheduler")
		self.assertEqual(commands_of(plan, "scheduler"), [f"bench --site {SITE} scheduler enable"])

	def test_new_site_without_site_config_warns_about_the_encryption_key(self):
		plan = build_restore_plan(make_manifest(with_site_config=False), make_options(new_site=True))
		self.assertNotIn("site_keys", step_keys(plan))
		self.assertTrue(any("copy encryption_key" in warning for warning in plan.warnings))

	def test_offsite_download(self):
		plan = build_restore_plan(
			make_manifest(), make_options(local_dir=None, source=make_source(addressing_style="path"))
		)
		self.assertEqual(step_keys(plan)[:4], ["bench", "apps", "download", "verify"])
		self.assertEqual(
			commands_of(plan, "download"),
			[
				f"mkdir -p {BENCH}/backup-restore",
				"./env/bin/python -m backup_manager.core.offsite_tool download --bucket=acme-backups "
				"--endpoint-url=https://s3.eu-central-1.wasabisys.com --region=eu-central-1 --prefix=frappe "
				f"--addressing-style=path --site={SITE} --backup-id={BACKUP_ID} --to={WORK_DIR}",
			],
		)
		# The download tool verified every file: the plan compares manifests instead of hashing again.
		self.assertTrue(first_line(plan, "verify").startswith(f"./env/bin/python - {WORK_DIR} downloaded "))
		self.assertIn(
			f"restore-and-migrate {WORK_DIR}/{FILE_PREFIX}-database.sql.gz", database_restore_command(plan)
		)
		required = [env_var.name for env_var in plan.env_vars if env_var.required]
		self.assertEqual(required, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BACKUP_MANIFEST_KEY"])

	def test_download_to_aws_omits_endpoint_and_region_and_keeps_an_empty_prefix(self):
		plan = build_restore_plan(
			make_manifest(),
			make_options(
				local_dir=None,
				source=make_source(endpoint_url="", region="", prefix=""),
				download_dir="/srv/restore",
			),
		)
		self.assertEqual(
			commands_of(plan, "download")[1],
			"./env/bin/python -m backup_manager.core.offsite_tool download --bucket=acme-backups --prefix= "
			f"--site={SITE} --backup-id={BACKUP_ID} --to=/srv/restore",
		)

	def test_production_restarts_and_a_new_site_gets_nginx(self):
		same = build_restore_plan(make_manifest(), make_options(production=True))
		self.assertEqual(commands_of(same, "production"), ["bench restart"])
		new = build_restore_plan(
			make_manifest(), make_options(production=True, new_site=True, target_site="b.example.com")
		)
		self.assertEqual(
			commands_of(new, "production"),
			["bench setup nginx --yes", "bench setup reload-nginx", "bench restart"],
		)

	def test_root_username_reaches_new_site_and_restore(self):
		plan = build_restore_plan(
			make_manifest(with_files=False), make_options(new_site=True, db_root_username="admin")
		)
		self.assertEqual(
			commands_of(plan, "create_site"),
			[
				f"with_fast_gunzip bench new-site {SITE} --source-sql {LOCAL_DIR}/{FILE_PREFIX}-database.sql.gz "
				"--db-root-username=admin </dev/null"
			],
		)
		same = build_restore_plan(make_manifest(with_files=False), make_options(db_root_username="admin"))
		self.assertIn("--db-root-username=admin ${ALLOW_DOWNGRADE:+--force}", commands_of(same, "restore")[0])

	def test_paths_frappe_cannot_take_are_linked_under_safe_names(self):
		manifest = make_manifest()
		manifest.artifacts[1].file_name = f"{FILE_PREFIX}-files.tar.gz"
		local_dir = "/var/backups/my site (old)"
		plan = build_restore_plan(manifest, make_options(local_dir=local_dir))
		# Only the dump passes through Frappe's shell; the archives go to the plan's program by argv.
		self.assertEqual(
			commands_of(plan, "prepare_files")[4:],
			[f"ln -sf -- '{local_dir}/{FILE_PREFIX}-database.sql.gz' {PREPARED}/database.sql.gz"],
		)
		self.assertIn(f"restore-and-migrate {PREPARED}/database.sql.gz ", database_restore_command(plan))
		self.assertEqual(
			files_first_line(plan),
			f"./env/bin/python - {SITE} public '{local_dir}/{FILE_PREFIX}-files.tar.gz' "
			f"private '{local_dir}/{FILE_PREFIX}-private-files.tar' <<'PY'",
		)

	def test_an_archive_name_frappe_would_skip_needs_no_link_for_plain_tar(self):
		manifest = make_manifest()
		manifest.artifacts[2].file_name = f"{FILE_PREFIX}-private-files.tar.gz"
		plan = build_restore_plan(manifest, make_options())
		self.assertNotIn("prepare_files", step_keys(plan))
		self.assertTrue(
			files_first_line(plan).endswith(f"private {LOCAL_DIR}/{FILE_PREFIX}-private-files.tar.gz <<'PY'")
		)

	def test_restoring_over_another_existing_site_is_announced(self):
		plan = build_restore_plan(make_manifest(), make_options(target_site="staging.example.com"))
		self.assertTrue(
			any("restored over the existing site staging.example.com" in warning for warning in plan.warnings)
		)


class TestInvalidInput(unittest.TestCase):
	def assertRejected(self, pattern: str, manifest=None, **options):
		with self.assertRaisesRegex(ValueError, pattern):
			build_restore_plan(manifest or make_manifest(), make_options(**options))

	def test_relative_bench_path(self):
		self.assertRejected("bench_path", bench_path=".")

	def test_no_files_and_no_source(self):
		self.assertRejected("local_dir .* or .*source", local_dir=None)

	def test_work_folder_frappe_would_pass_through_a_shell(self):
		self.assertRejected(
			"download_dir", local_dir=None, source=make_source(), download_dir="/srv/my restore"
		)
		self.assertRejected(
			"bench_path", local_dir=None, source=make_source(), bench_path="/home/frappe/my bench"
		)

	def test_manifest_values_that_could_escape(self):
		bad_checksum = make_manifest()
		bad_checksum.artifacts[0].sha256 = "abc"
		self.assertRejected("sha256", manifest=bad_checksum)
		bad_name = make_manifest()
		bad_name.artifacts[0].file_name = "../../etc/passwd"
		self.assertRejected("plain file name", manifest=bad_name)
		self.assertRejected("site folder name", target_site="a\nrm -rf ~")
		self.assertRejected("site folder name", target_site="../other")
		self.assertRejected("site folder name", target_site="--force")
		bad_app = make_manifest(apps=[InstalledApp("frappe; rm", "15.0.0")])
		self.assertRejected("Python package name", manifest=bad_app)
		bad_version = make_manifest(apps=[InstalledApp("frappe", "15.0.0\ntouch pwned")])
		self.assertRejected("control characters", manifest=bad_version)
		bad_id = make_manifest()
		bad_id.backup_id = "../x"
		self.assertRejected("backup id", manifest=bad_id)

	def test_backup_without_database(self):
		manifest = make_manifest()
		manifest.artifacts = manifest.artifacts[1:]
		self.assertRejected("no database artifact", manifest=manifest)


class TestRendering(unittest.TestCase):
	def plans(self):
		return [
			build_restore_plan(make_manifest(with_files=False), make_options()),
			build_restore_plan(make_manifest(encrypted=True), make_options(production=True)),
			build_restore_plan(make_manifest(partial=True), make_options()),
			build_restore_plan(
				make_manifest(encrypted=True),
				make_options(
					new_site=True, target_site="copy.example.com", local_dir=None, source=make_source()
				),
			),
		]

	def test_script_passes_bash_syntax_check(self):
		for plan in self.plans():
			with self.subTest(steps=step_keys(plan)):
				result = subprocess.run(
					[BASH, "-n"], input=render_shell(plan), capture_output=True, text=True
				)
				self.assertEqual(result.returncode, 0, result.stderr)

	def test_text_and_script_show_the_same_commands(self):
		for plan in self.plans():
			script, text = render_shell(plan), render_text(plan)
			for number, step in enumerate(plan.steps, start=1):
				self.assertIn(f"\n{number}. {step.title}\n", text)
				self.assertIn(shlex.quote(f"==> Step {number}/{len(plan.steps)}: {step.title}"), script)
				for command in step.commands:
					self.assertIn("\n" + command + "\n", script)
					indented = "\n".join("      " + line for line in command.split("\n"))
					self.assertIn(indented, text)

	def test_script_header_and_safety_settings(self):
		plan = self.plans()[3]
		script = render_shell(plan)
		self.assertTrue(script.startswith("#!/usr/bin/env bash\n"))
		self.assertIn(f"# Backup:  {BACKUP_ID}\n", script)
		self.assertIn("# Apps:    frappe 15.44.2, erpnext 15.40.1\n", script)
		self.assertIn("\nset -euo pipefail\n", script)
		self.assertIn('if [ -z "${BACKUP_ENCRYPTION_KEY:-}" ]; then', script)
		self.assertIn('if [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; then', script)
		self.assertNotIn('"${DB_ROOT_PASSWORD:-}"', script)  # optional: its check lives in the python step

	def test_json_holds_every_field(self):
		plan = self.plans()[1]
		self.assertEqual(json.loads(render_json(plan)), json.loads(json.dumps(dataclasses.asdict(plan))))
		self.assertEqual(json.loads(render_json(plan))["steps"][0]["key"], "bench")

	def test_no_secret_reaches_any_rendering(self):
		with tempfile.TemporaryDirectory() as local_dir:
			with open(os.path.join(local_dir, f"{FILE_PREFIX}-site_config_backup.json"), "w") as handle:
				json.dump({"encryption_key": ORIGINAL_SITE_KEY, "db_password": "orig-db-pass"}, handle)
			environment = {"BACKUP_ENCRYPTION_KEY": BACKUP_KEY, "DB_ROOT_PASSWORD": ROOT_PASSWORD}
			with mock.patch.dict(os.environ, environment):
				plan = build_restore_plan(
					make_manifest(encrypted=True),
					make_options(local_dir=local_dir, new_site=True, target_site="copy.example.com"),
				)
				renderings = [render_text(plan), render_json(plan), render_shell(plan)]
		for rendering in renderings:
			for secret in (ORIGINAL_SITE_KEY, BACKUP_KEY, ROOT_PASSWORD, "orig-db-pass"):
				self.assertNotIn(secret, rendering)
			for flag in (
				"--db-root-password",
				"--mariadb-root-password",
				"--admin-password",
				"--encryption-key",
				"--passphrase ",
			):
				self.assertNotIn(flag, rendering)
			self.assertIn("$BACKUP_ENCRYPTION_KEY", rendering)
			self.assertIn("DB_ROOT_PASSWORD", rendering)

	def test_control_characters_cannot_end_a_header_comment(self):
		manifest = make_manifest()
		manifest.created_at = "2026-11-28\ntouch pwned"
		script = render_shell(build_restore_plan(manifest, make_options()))
		self.assertIn("# Taken:   2026-11-28?touch pwned\n", script)
		self.assertNotIn("\ntouch pwned", script)


class BenchSandbox(unittest.TestCase):
	"""A bench folder with a fake `bench` that records its argv, and the real bench python, gpg and bash."""

	FAKE_BENCH = r"""
import json, os, shutil, subprocess, sys, tarfile

args = sys.argv[1:]
site = None
if args[:1] == ["--site"]:
	site, args = args[1], args[2:]
# The command's name: `restore`, or `restore-and-migrate` for `backup-manager restore-and-migrate`.
command = args[1] if args[:1] == ["backup-manager"] else (args[0] if args else "")
common = json.load(open("sites/common_site_config.json"))
record = {
	"argv": sys.argv[1:],
	"root_password_set": "root_password" in common,
	"root_password_in_environment": bool(os.environ.get("DB_ROOT_PASSWORD")),
	"admin_password_set": "admin_password" in common,
	"skip_migrate_backup": os.environ.get("BACKUP_MANAGER_SKIP_MIGRATE_BACKUP"),
}
def read_like_frappe(dump):
	# frappe.database.db_manager.restore_database: `gzip -cd DUMP | sed ... | mariadb`.
	gzip = shutil.which("gzip")
	record["gzip_is_the_plans"] = "backup-manager-gunzip-" in gzip
	record["gzip_cd"] = subprocess.run([gzip, "-cd", dump], capture_output=True).stdout.decode()[:40]

if args[:1] == ["new-site"]:
	if "--source-sql" in args:
		with open(args[args.index("--source-sql") + 1], "rb") as handle:
			record["database_is_plain_gzip"] = handle.read(2) == b"\x1f\x8b"
		read_like_frappe(args[args.index("--source-sql") + 1])
	os.makedirs(os.path.join("sites", args[1]))
	with open(os.path.join("sites", args[1], "site_config.json"), "w") as handle:
		json.dump({"db_name": "_new", "db_password": "new-db-pass", "encryption_key": "the-new-site-own-key"}, handle)
elif args[:1] in (["restore"], ["partial-restore"]):
	with open(args[1], "rb") as handle:
		record["database_is_plain_gzip"] = handle.read(2) == b"\x1f\x8b"
	read_like_frappe(args[1])
	for flag in ("--with-public-files", "--with-private-files"):
		if flag in args:
			path = args[args.index(flag) + 1]
			record[flag] = sorted(tarfile.open(path).getnames())
elif command == "restore-and-migrate":
	# Backup Manager's command: Frappe's restore, the key carried by the plan's own site_keys
	# program (the real command runs the same text), Frappe's migrate.
	with open(args[2], "rb") as handle:
		record["database_is_plain_gzip"] = handle.read(2) == b"\x1f\x8b"
	read_like_frappe(args[2])
	if "--site-config" in args and os.environ.get("FAKE_BENCH_FAIL") != command:
		sys.path.insert(0, REPO)
		from backup_manager.core.restore_plan.programs import SITE_KEYS_SNIPPET
		subprocess.run(
			[sys.executable, "-", args[args.index("--site-config") + 1], site, "0", "0"],
			input=SITE_KEYS_SNIPPET, text=True, check=True,
		)
elif args[:1] == ["set-maintenance-mode"]:
	config_path = os.path.join("sites", site, "site_config.json")
	config = json.load(open(config_path))
	config["maintenance_mode"] = 1 if args[1] == "on" else 0
	json.dump(config, open(config_path, "w"))
with open("bench-calls.jsonl", "a") as handle:
	handle.write(json.dumps(record) + "\n")
if os.environ.get("FAKE_BENCH_FAIL") in (command,):
	sys.exit(1)
if os.environ.get("FAKE_BENCH_KILL") in (command,):
	# SIGKILL the restore script itself (this process's parent): no trap runs.
	import signal
	os.kill(os.getppid(), signal.SIGKILL)
"""

	def setUp(self):
		if not shutil.which("gpg"):
			self.skipTest("gpg is not installed")
		self.root = tempfile.mkdtemp()
		self.addCleanup(shutil.rmtree, self.root)
		self.gnupg_home = os.path.join(self.root, "gnupg")
		os.mkdir(self.gnupg_home, 0o700)
		# gpg starts an agent in this home; it removes its sockets while rmtree walks the folder.
		self.addCleanup(
			subprocess.run,
			["gpgconf", "--homedir", self.gnupg_home, "--kill", "all"],
			capture_output=True,
			check=False,
		)
		self.bin_dir = os.path.join(self.root, "bin")
		os.mkdir(self.bin_dir)
		self.write_executable(
			os.path.join(self.bin_dir, "bench"), f"#!{TEST_PYTHON}\nREPO = {REPO_ROOT!r}\n{self.FAKE_BENCH}"
		)
		self.work_dir = os.path.join(self.root, "work")
		self.tmp_dir = os.path.join(self.root, "tmp")
		os.mkdir(self.tmp_dir)

	def write_executable(self, path: str, content: str) -> None:
		with open(path, "w") as handle:
			handle.write(content)
		os.chmod(path, 0o755)

	def make_bench(self, name: str, apps=("frappe", "erpnext")) -> str:
		bench = os.path.join(self.root, name)
		os.makedirs(os.path.join(bench, "sites"))
		os.makedirs(os.path.join(bench, "env", "bin"))
		for app in apps:
			os.makedirs(os.path.join(bench, "apps", app))
		self.write_executable(
			os.path.join(bench, "env", "bin", "python"), f'#!/bin/sh\nexec {shlex.quote(TEST_PYTHON)} "$@"\n'
		)
		self.common_config = json.dumps(
			{"db_host": "127.0.0.1", "redis_cache": "redis://127.0.0.1:13000"}, indent=1
		)
		with open(os.path.join(bench, "sites", "common_site_config.json"), "w") as handle:
			handle.write(self.common_config)
		return bench

	def make_site(self, bench: str, site: str) -> None:
		os.makedirs(os.path.join(bench, "sites", site))
		with open(os.path.join(bench, "sites", site, "site_config.json"), "w") as handle:
			json.dump({"db_name": "_site", "encryption_key": "a-key-from-after-the-backup"}, handle)

	def make_backup(self, folder: str, *, encrypted: bool) -> Manifest:
		os.makedirs(folder)
		files = {
			DATABASE: (
				f"{FILE_PREFIX}-database.sql.gz",
				gzip.compress(b"-- dump\nCREATE TABLE `__Auth` (x int);\n"),
			),
			PUBLIC_FILES: (
				f"{FILE_PREFIX}-files.tar",
				self.tar_bytes("./erp.example.com/public/files/logo.png"),
			),
			PRIVATE_FILES: (
				f"{FILE_PREFIX}-private-files.tar",
				self.tar_bytes("./erp.example.com/private/files/a.pdf"),
			),
			SITE_CONFIG: (
				f"{FILE_PREFIX}-site_config_backup.json",
				json.dumps(
					{
						"db_name": "_orig",
						"db_password": "orig-db-pass",
						"encryption_key": ORIGINAL_SITE_KEY,
						"host_name": "https://erp.example.com",
					}
				).encode(),
			),
		}
		artifacts = []
		with mock.patch.dict(os.environ, {"GNUPGHOME": self.gnupg_home}):
			for kind, (name, data) in files.items():
				path = os.path.join(folder, name)
				with open(path, "wb") as handle:
					handle.write(data)
				if encrypted:
					encrypt_file_in_place(path, BACKUP_KEY)
				artifacts.append(
					Artifact(kind, name, os.path.getsize(path), checksums.sha256_file(path), encrypted)
				)
		manifest = make_manifest(encrypted=encrypted)
		manifest.artifacts = artifacts
		return manifest

	def tar_bytes(self, member: str) -> bytes:
		buffer = io.BytesIO()
		with tarfile.open(fileobj=buffer, mode="w") as archive:
			info = tarfile.TarInfo(member)
			info.size = 3
			archive.addfile(info, io.BytesIO(b"abc"))
		return buffer.getvalue()

	def run_script(self, plan, **environment) -> subprocess.CompletedProcess:
		script = os.path.join(self.root, "restore.sh")
		with open(script, "w") as handle:
			handle.write(render_shell(plan))
		env = {
			"PATH": f"{self.bin_dir}:/usr/bin:/bin",
			"HOME": self.root,
			"GNUPGHOME": self.gnupg_home,
			"LANG": "C.UTF-8",
			"TMPDIR": self.tmp_dir,
			**environment,
		}
		return subprocess.run(
			[BASH, script], cwd=self.root, env=env, capture_output=True, text=True, timeout=120
		)

	def make_same_site_plan(self):
		"""A bench with the site, a local unencrypted backup of it, and the plan restoring it there."""
		bench = self.make_bench("frappe-bench")
		self.make_site(bench, SITE)
		local_dir = os.path.join(self.root, "backups")
		manifest = self.make_backup(local_dir, encrypted=False)
		plan = build_restore_plan(
			manifest, RestoreOptions(target_site=SITE, bench_path=bench, local_dir=local_dir)
		)
		return bench, local_dir, plan

	def bench_calls(self, bench: str) -> list[dict]:
		path = os.path.join(bench, "bench-calls.jsonl")
		if not os.path.exists(path):
			return []
		with open(path) as handle:
			return [json.loads(line) for line in handle]

	def assertNoInjection(self):
		for folder, _, names in os.walk(self.root):
			for name in names:
				self.assertFalse(name.startswith("pwned"), os.path.join(folder, name))


class TestScriptExecution(BenchSandbox):
	def test_new_site_from_an_encrypted_backup_with_hostile_names(self):
		bench = self.make_bench(f"bench {HOSTILE}")
		local_dir = os.path.join(self.root, f"backups {HOSTILE}")
		manifest = self.make_backup(local_dir, encrypted=True)
		target = f"copy {HOSTILE}"
		plan = build_restore_plan(
			manifest,
			RestoreOptions(
				target_site=target,
				new_site=True,
				bench_path=bench,
				local_dir=local_dir,
				download_dir=self.work_dir,
			),
		)
		result = self.run_script(plan, BACKUP_ENCRYPTION_KEY=BACKUP_KEY, DB_ROOT_PASSWORD=ROOT_PASSWORD)
		self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

		prepared = os.path.join(self.work_dir, "prepared")
		calls = self.bench_calls(bench)
		# The site is created from the decrypted dump; no blank install, no bench restore.
		self.assertEqual(
			[call["argv"] for call in calls],
			[
				["new-site", target, "--source-sql", f"{prepared}/database.sql.gz"],
				["--site", target, "migrate"],
			],
		)
		# Frappe's `gzip -cd DUMP` read the dump through the plan's igzip/pigz stand-in, whose folder is gone.
		self.assertEqual(calls[0]["gzip_cd"], "-- dump\nCREATE TABLE `__Auth` (x int);\n")
		self.assertEqual(calls[0]["gzip_is_the_plans"], bool(shutil.which("igzip") or shutil.which("pigz")))
		self.assertEqual(glob.glob(os.path.join(self.tmp_dir, "backup-manager-gunzip-*")), [])
		# The root password was in common_site_config.json exactly while new-site ran; no admin password.
		self.assertEqual([call["root_password_set"] for call in calls], [True, False])
		self.assertEqual([call["admin_password_set"] for call in calls], [False, False])
		# Only migrate runs Backup Manager's before_migrate hook, and it must skip its backup there.
		self.assertEqual(calls[1]["skip_migrate_backup"], "1")
		self.assertTrue(calls[0]["database_is_plain_gzip"])
		# Plain tar unpacked the decrypted archives of erp.example.com into the new site's folders.
		for folder, name in (("public", "logo.png"), ("private", "a.pdf")):
			with open(os.path.join(bench, "sites", target, folder, "files", name), "rb") as handle:
				self.assertEqual(handle.read(), b"abc")

		with open(os.path.join(bench, "sites", "common_site_config.json")) as handle:
			self.assertEqual(handle.read(), self.common_config)
		self.assertEqual(
			[name for name in os.listdir(os.path.join(bench, "sites")) if name.startswith(".")], []
		)
		with open(os.path.join(bench, "sites", target, "site_config.json")) as handle:
			site_config = json.load(handle)
		self.assertEqual(site_config["encryption_key"], ORIGINAL_SITE_KEY)
		self.assertEqual(site_config["backup_encryption_key"], BACKUP_KEY)
		self.assertEqual(site_config["db_name"], "_new")
		self.assertNotIn("host_name", site_config)
		self.assertIn("not copied (review them): host_name", result.stdout)
		self.assertFalse(os.path.exists(prepared))

		output = result.stdout + result.stderr
		for secret in (ORIGINAL_SITE_KEY, BACKUP_KEY, ROOT_PASSWORD, "orig-db-pass"):
			self.assertNotIn(secret, output)
		self.assertNoInjection()

	def test_same_site_restore_that_fails_never_wrote_the_root_password_to_a_file(self):
		bench, local_dir, plan = self.make_same_site_plan()
		result = self.run_script(
			plan, DB_ROOT_PASSWORD=ROOT_PASSWORD, FAKE_BENCH_FAIL="restore-and-migrate", ALLOW_DOWNGRADE="1"
		)
		self.assertNotEqual(result.returncode, 0)

		calls = self.bench_calls(bench)
		self.assertEqual([call["argv"][2:4] for call in calls], [["backup-manager", "restore-and-migrate"]])
		self.assertEqual(calls[0]["argv"][-1], "--force")
		# The restore command takes the password from its environment, in its own process.
		self.assertFalse(calls[0]["root_password_set"])
		self.assertTrue(calls[0]["root_password_in_environment"])
		with open(os.path.join(bench, "sites", SITE, "site_config.json")) as handle:
			site_config = json.load(handle)
		self.assertEqual(site_config["maintenance_mode"], 1)
		self.assertEqual(site_config["encryption_key"], "a-key-from-after-the-backup")
		with open(os.path.join(bench, "sites", "common_site_config.json")) as handle:
			self.assertEqual(handle.read(), self.common_config)
		self.assertEqual(
			[name for name in os.listdir(os.path.join(bench, "sites")) if name.startswith(".")], []
		)
		self.assertIn(
			"Restore stopped at step 6/7 (Restore the database and the files, then migrate)", result.stderr
		)
		self.assertIn("may be half-restored and stays in maintenance mode", result.stderr)
		self.assertNotIn(ROOT_PASSWORD, result.stdout + result.stderr)

	def test_same_site_restore_carries_a_changed_encryption_key_and_ends_maintenance(self):
		bench, local_dir, plan = self.make_same_site_plan()
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD)
		self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
		calls = self.bench_calls(bench)
		self.assertEqual(
			[call["argv"][2:] for call in calls],
			[
				[
					"backup-manager",
					"restore-and-migrate",
					f"{local_dir}/{FILE_PREFIX}-database.sql.gz",
					"--site-config",
					f"{local_dir}/{FILE_PREFIX}-site_config_backup.json",
				]
			],
		)
		self.assertEqual(calls[0]["gzip_cd"], "-- dump\nCREATE TABLE `__Auth` (x int);\n")
		self.assertNotIn(ORIGINAL_SITE_KEY, result.stdout + result.stderr)
		for folder, name in (("public", "logo.png"), ("private", "a.pdf")):
			self.assertTrue(os.path.isfile(os.path.join(bench, "sites", SITE, folder, "files", name)))
		with open(os.path.join(bench, "sites", SITE, "site_config.json")) as handle:
			site_config = json.load(handle)
		self.assertEqual(site_config["encryption_key"], ORIGINAL_SITE_KEY)
		self.assertEqual(site_config["maintenance_mode"], 0)
		self.assertNotIn("backup_encryption_key", site_config)

	def test_a_failed_database_restore_waits_for_the_files_unpacked_beside_it(self):
		bench = self.make_bench("frappe-bench")
		self.make_site(bench, SITE)
		manifest = self.make_backup(os.path.join(self.root, "backups"), encrypted=False)
		plan = build_restore_plan(
			manifest,
			RestoreOptions(target_site=SITE, bench_path=bench, local_dir=os.path.join(self.root, "backups")),
		)
		# A slow tar: the database restore fails long before the files are unpacked.
		real_tar = shutil.which("tar")
		self.write_executable(
			os.path.join(self.bin_dir, "tar"),
			f'#!/bin/sh\nsleep 1\n{shlex.quote(real_tar)} "$@" && echo "fake tar: unpacked" >&2\n',
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD, FAKE_BENCH_FAIL="restore-and-migrate")
		self.assertNotEqual(result.returncode, 0)
		# The script said where it stopped only once both archives were unpacked: nothing of it runs on.
		stopped = result.stderr.index(
			"Restore stopped at step 6/7 (Restore the database and the files, then migrate)"
		)
		self.assertEqual(result.stderr.count("fake tar: unpacked"), 2, result.stderr)
		self.assertLess(result.stderr.rindex("fake tar: unpacked"), stopped)
		self.assertEqual([call["argv"][3] for call in self.bench_calls(bench)], ["restore-and-migrate"])

	def test_a_failed_files_restore_fails_its_step_after_the_database_restore(self):
		bench = self.make_bench("frappe-bench")
		self.make_site(bench, SITE)
		local_dir = os.path.join(self.root, "backups")
		manifest = self.make_backup(local_dir, encrypted=False)
		# A private archive whose member would land outside the site: refused before unpacking.
		private = next(artifact for artifact in manifest.artifacts if artifact.kind == PRIVATE_FILES)
		path = os.path.join(local_dir, private.file_name)
		with open(path, "wb") as handle:
			handle.write(self.tar_bytes("/etc/cron.d/pwned"))
		private.size, private.sha256 = os.path.getsize(path), checksums.sha256_file(path)
		plan = build_restore_plan(
			manifest, RestoreOptions(target_site=SITE, bench_path=bench, local_dir=local_dir)
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("has an absolute path", result.stderr)
		self.assertIn(
			"Restore stopped at step 6/7 (Restore the database and the files, then migrate)", result.stderr
		)
		self.assertIn("may be half-restored and stays in maintenance mode", result.stderr)
		# The database restore and migrate ran to their end; the step failed after them, and
		# nothing after it ran (maintenance mode stays on).
		self.assertEqual([call["argv"][3] for call in self.bench_calls(bench)], ["restore-and-migrate"])
		with open(os.path.join(bench, "sites", SITE, "site_config.json")) as handle:
			self.assertEqual(json.load(handle)["maintenance_mode"], 1)
		with open(os.path.join(bench, "sites", "common_site_config.json")) as handle:
			self.assertEqual(handle.read(), self.common_config)

	def test_without_a_root_password_nothing_is_touched(self):
		bench = self.make_bench("frappe-bench")
		local_dir = os.path.join(self.root, "backups")
		manifest = self.make_backup(local_dir, encrypted=False)
		plan = build_restore_plan(
			manifest,
			RestoreOptions(
				target_site="copy.example.com", new_site=True, bench_path=bench, local_dir=local_dir
			),
		)
		result = self.run_script(plan)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("Set DB_ROOT_PASSWORD", result.stderr)
		self.assertEqual(self.bench_calls(bench), [])
		with open(os.path.join(bench, "sites", "common_site_config.json")) as handle:
			self.assertEqual(handle.read(), self.common_config)

	def test_same_site_without_a_root_password_stops_before_maintenance_mode(self):
		bench, local_dir, plan = self.make_same_site_plan()
		result = self.run_script(plan)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("Set DB_ROOT_PASSWORD", result.stderr)
		self.assertIn("Restore stopped at step 4/7", result.stderr)
		self.assertIn("Nothing in the site has changed yet", result.stderr)
		self.assertEqual(self.bench_calls(bench), [])
		with open(os.path.join(bench, "sites", SITE, "site_config.json")) as handle:
			self.assertNotIn("maintenance_mode", json.load(handle))

	def test_root_password_already_in_common_config_is_left_alone(self):
		bench = self.make_bench("frappe-bench")
		self.common_config = json.dumps({"root_password": "kept", "admin_password": "kept-too"})
		with open(os.path.join(bench, "sites", "common_site_config.json"), "w") as handle:
			handle.write(self.common_config)
		local_dir = os.path.join(self.root, "backups")
		plan = build_restore_plan(
			self.make_backup(local_dir, encrypted=False),
			RestoreOptions(
				target_site="copy.example.com", new_site=True, bench_path=bench, local_dir=local_dir
			),
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD="another")
		self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
		self.assertIn("already holds what the restore needs", result.stdout)
		with open(os.path.join(bench, "sites", "common_site_config.json")) as handle:
			self.assertEqual(handle.read(), self.common_config)

	def test_a_killed_restore_leaves_no_readable_secret_and_the_next_run_puts_everything_back(self):
		bench = self.make_bench("frappe-bench")
		common_config_path = os.path.join(bench, "sites", "common_site_config.json")
		os.chmod(common_config_path, 0o644)
		local_dir = os.path.join(self.root, "backups")
		plan = build_restore_plan(
			self.make_backup(local_dir, encrypted=True),
			RestoreOptions(
				target_site="copy.example.com",
				new_site=True,
				bench_path=bench,
				local_dir=local_dir,
				download_dir=self.work_dir,
			),
		)
		environment = {"DB_ROOT_PASSWORD": ROOT_PASSWORD, "BACKUP_ENCRYPTION_KEY": BACKUP_KEY}
		# Killed while bench new-site --source-sql imports the dump: the secrets are in place then.
		killed = self.run_script(plan, FAKE_BENCH_KILL="new-site", **environment)
		self.assertEqual(killed.returncode, -signal.SIGKILL, killed.stdout + killed.stderr)
		# While killed: the secrets and the plain dump exist, but no one else can read any of them.
		secrets_found = 0
		for folder, _, names in os.walk(self.root):
			for name in names:
				path = os.path.join(folder, name)
				if not stat.S_ISREG(os.lstat(path).st_mode):
					continue
				with open(path, "rb") as handle:
					content = handle.read()
				decrypted = folder == os.path.join(self.work_dir, "prepared")
				if ROOT_PASSWORD.encode() in content or decrypted:
					secrets_found += 1
					self.assertEqual(os.stat(path).st_mode & 0o077, 0, f"{path} is readable by others")
		# common_site_config.json with the root password, and the decrypted files (killed at new-site).
		self.assertGreaterEqual(secrets_found, 5)
		saved = [name for name in os.listdir(os.path.join(bench, "sites")) if name.startswith(".common_site")]
		self.assertEqual(len(saved), 1)

		# As the recovery message says for a new site: drop the half-restored site, run again.
		shutil.rmtree(os.path.join(bench, "sites", "copy.example.com"))
		result = self.run_script(plan, **environment)
		self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
		self.assertIn(
			"An interrupted restore left its saved copy of sites/common_site_config.json", result.stderr
		)
		self.assertIn("Removed the decrypted files of an interrupted restore.", result.stderr)
		with open(common_config_path) as handle:
			self.assertEqual(handle.read(), self.common_config)
		self.assertEqual(stat.S_IMODE(os.stat(common_config_path).st_mode), 0o644)
		self.assertEqual(
			[name for name in os.listdir(os.path.join(bench, "sites")) if name.startswith(".")], []
		)
		self.assertFalse(os.path.exists(os.path.join(self.work_dir, "prepared")))

	def test_a_gpg_store_packet_is_refused_before_the_restore(self):
		bench = self.make_bench("frappe-bench")
		local_dir = os.path.join(self.root, "backups")
		manifest = self.make_backup(local_dir, encrypted=True)
		database = manifest.artifact(DATABASE)
		path = os.path.join(local_dir, database.file_name)
		# Literal data, no encryption: plain gpg --decrypt "decrypts" it with any key and exits 0.
		with open(os.path.join(self.root, "evil.sql.gz"), "wb") as handle:
			handle.write(gzip.compress(b"DROP TABLE `__Auth`;\n"))
		subprocess.run(
			["gpg", "--batch", "--yes", "--store", "-o", path, os.path.join(self.root, "evil.sql.gz")],
			env={**os.environ, "GNUPGHOME": self.gnupg_home},
			check=True,
			capture_output=True,
		)
		# Even with a manifest that lists the swapped file (as --trust-unverified would accept):
		database.size, database.sha256 = os.path.getsize(path), checksums.sha256_file(path)
		plan = build_restore_plan(
			manifest,
			RestoreOptions(
				target_site="copy.example.com",
				new_site=True,
				bench_path=bench,
				local_dir=local_dir,
				download_dir=self.work_dir,
			),
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD, BACKUP_ENCRYPTION_KEY=BACKUP_KEY)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("gpg did not decrypt an encrypted packet with the backup key", result.stderr)
		self.assertEqual(self.bench_calls(bench), [])
		self.assertFalse(os.path.exists(os.path.join(self.work_dir, "prepared")))

	def test_a_swapped_file_stops_at_verification_before_decryption(self):
		bench = self.make_bench("frappe-bench")
		local_dir = os.path.join(self.root, "backups")
		manifest = self.make_backup(local_dir, encrypted=True)
		swapped = os.path.join(local_dir, manifest.artifact(DATABASE).file_name)
		with mock.patch.dict(os.environ, {"GNUPGHOME": self.gnupg_home}):
			with open(swapped, "wb") as handle:
				handle.write(gzip.compress(b"DROP TABLE `__Auth`;\n"))
			encrypt_file_in_place(swapped, BACKUP_KEY)
		plan = build_restore_plan(
			manifest,
			RestoreOptions(
				target_site="copy.example.com", new_site=True, bench_path=bench, local_dir=local_dir
			),
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD, BACKUP_ENCRYPTION_KEY=BACKUP_KEY)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("FAILED", result.stdout + result.stderr)
		self.assertIn("Verify the backup files", result.stderr)
		self.assertEqual(self.bench_calls(bench), [])
		self.assertFalse(os.path.exists(os.path.join(bench, "backup-restore")))

	def test_missing_app_stops_before_anything_else(self):
		bench = self.make_bench("frappe-bench", apps=("frappe",))
		local_dir = os.path.join(self.root, "backups")
		plan = build_restore_plan(
			self.make_backup(local_dir, encrypted=False),
			RestoreOptions(
				target_site="copy.example.com", new_site=True, bench_path=bench, local_dir=local_dir
			),
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("get it with `bench get-app erpnext --branch version-15`", result.stderr)
		self.assertIn("Restore stopped at step 2/", result.stderr)
		self.assertEqual(self.bench_calls(bench), [])

	def test_damaged_file_stops_at_verification(self):
		bench = self.make_bench("frappe-bench")
		local_dir = os.path.join(self.root, "backups")
		manifest = self.make_backup(local_dir, encrypted=False)
		with open(os.path.join(local_dir, manifest.artifacts[1].file_name), "ab") as handle:
			handle.write(b"x")
		plan = build_restore_plan(
			manifest,
			RestoreOptions(
				target_site="copy.example.com", new_site=True, bench_path=bench, local_dir=local_dir
			),
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("FAILED", result.stdout)
		self.assertIn("(Verify the backup files)", result.stderr)
		self.assertEqual(self.bench_calls(bench), [])

	def test_wrong_allow_downgrade_value_is_refused(self):
		bench = self.make_bench("frappe-bench")
		local_dir = os.path.join(self.root, "backups")
		plan = build_restore_plan(
			self.make_backup(local_dir, encrypted=False),
			RestoreOptions(
				target_site="copy.example.com", new_site=True, bench_path=bench, local_dir=local_dir
			),
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD, ALLOW_DOWNGRADE="yes")
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("ALLOW_DOWNGRADE must be 1 or unset", result.stderr)

	def test_missing_required_variable_is_named(self):
		bench = self.make_bench("frappe-bench")
		local_dir = os.path.join(self.root, "backups")
		plan = build_restore_plan(
			self.make_backup(local_dir, encrypted=True),
			RestoreOptions(target_site=SITE, bench_path=bench, local_dir=local_dir),
		)
		result = self.run_script(plan, DB_ROOT_PASSWORD=ROOT_PASSWORD)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("Set the environment variable BACKUP_ENCRYPTION_KEY", result.stderr)
		self.assertEqual(self.bench_calls(bench), [])


class TestOffsiteToolContract(unittest.TestCase):
	def test_the_download_tool_parses_the_plan_arguments(self):
		from backup_manager.core.offsite_tool import build_parser

		plan = build_restore_plan(
			make_manifest(),
			make_options(local_dir=None, source=make_source(prefix="-backups", addressing_style="virtual")),
		)
		arguments = shlex.split(commands_of(plan, "download")[1])
		self.assertEqual(arguments[:3], ["./env/bin/python", "-m", "backup_manager.core.offsite_tool"])
		parsed = build_parser().parse_args(arguments[3:])
		self.assertEqual(
			(parsed.command, parsed.bucket, parsed.endpoint_url, parsed.region, parsed.prefix),
			(
				"download",
				"acme-backups",
				"https://s3.eu-central-1.wasabisys.com",
				"eu-central-1",
				"-backups",
			),
		)
		self.assertEqual(
			(parsed.addressing_style, parsed.site, parsed.backup_id, parsed.to_dir),
			("virtual", SITE, BACKUP_ID, WORK_DIR),
		)


class TestHostileDownloadCommand(BenchSandbox):
	def test_download_arguments_arrive_literally(self):
		bench = self.make_bench(f"bench {HOSTILE}")
		argv_file = os.path.join(self.root, "argv.bin")
		# The download runs under the bench's python: replace it by one that records its argv.
		self.write_executable(
			os.path.join(bench, "env", "bin", "python"),
			f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {shlex.quote(argv_file)}\n",
		)
		manifest = make_manifest(site=f"erp {HOSTILE}")
		source = make_source(
			bucket=f"bucket {HOSTILE}",
			prefix=f"$(touch pwned4) {HOSTILE}",
			endpoint_url=f"https://h/{HOSTILE}",
			region=HOSTILE,
		)
		plan = build_restore_plan(
			manifest,
			RestoreOptions(
				target_site=f"new {HOSTILE}",
				new_site=True,
				bench_path=bench,
				source=source,
				download_dir=self.work_dir,
			),
		)
		piece = (
			"set -euo pipefail\n"
			+ "\n".join(commands_of(plan, "bench") + commands_of(plan, "download"))
			+ "\n"
		)
		result = subprocess.run(
			[BASH, "-c", piece],
			cwd=self.root,
			env={"PATH": f"{self.bin_dir}:/usr/bin:/bin"},
			capture_output=True,
			text=True,
		)
		self.assertEqual(result.returncode, 0, result.stderr)
		with open(argv_file, "rb") as handle:
			argv = handle.read().decode().split("\0")[:-1]
		self.assertEqual(
			argv,
			[
				"-m",
				"backup_manager.core.offsite_tool",
				"download",
				f"--bucket=bucket {HOSTILE}",
				f"--endpoint-url=https://h/{HOSTILE}",
				f"--region={HOSTILE}",
				f"--prefix=$(touch pwned4) {HOSTILE}",
				f"--site=erp {HOSTILE}",
				f"--backup-id={BACKUP_ID}",
				f"--to={self.work_dir}",
			],
		)
		self.assertNoInjection()
		script = render_shell(plan)
		self.assertEqual(
			subprocess.run([BASH, "-n"], input=script, capture_output=True, text=True).returncode, 0
		)


class TestPlanPrograms(unittest.TestCase):
	"""The programs the fast paths run, fed on stdin as the script feeds them, in a bench-like folder."""

	def setUp(self):
		self.bench = tempfile.mkdtemp()
		self.addCleanup(shutil.rmtree, self.bench)
		self.site_files = os.path.join(self.bench, "sites", "copy.example.com")
		for folder in ("public", "private"):
			os.makedirs(os.path.join(self.site_files, folder, "files"))

	def run_program(self, name: str, *arguments: str, **environment) -> subprocess.CompletedProcess:
		from backup_manager.core.restore_plan.programs import read_program

		return subprocess.run(
			[TEST_PYTHON, "-", *arguments],
			input=read_program(name),
			cwd=self.bench,
			capture_output=True,
			text=True,
			env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environment},
			timeout=60,
		)

	def write_tar(self, name: str, members: list[tarfile.TarInfo], compress: bool = False) -> str:
		path = os.path.join(self.bench, name)
		with tarfile.open(path, "w:gz" if compress else "w") as archive:
			for member in members:
				archive.addfile(member, io.BytesIO(b"abc") if member.isfile() else None)
		return path

	def file_member(self, name: str) -> tarfile.TarInfo:
		member = tarfile.TarInfo(name)
		member.size = 3
		return member

	def test_archives_of_another_site_land_in_the_target_site(self):
		public = self.write_tar(
			"public.tar", [self.file_member("./old.example.com/public/files/sub/logo.png")]
		)
		# Without the leading "./", and gzipped: both are read as Frappe writes them.
		private = self.write_tar(
			"private.tgz", [self.file_member("old.example.com/private/files/a.pdf")], compress=True
		)
		result = self.run_program("restore_files", "copy.example.com", "public", public, "private", private)
		self.assertEqual(result.returncode, 0, result.stderr)
		with open(os.path.join(self.site_files, "public", "files", "sub", "logo.png"), "rb") as handle:
			self.assertEqual(handle.read(), b"abc")
		self.assertTrue(os.path.isfile(os.path.join(self.site_files, "private", "files", "a.pdf")))
		self.assertFalse(os.path.exists(os.path.join(self.site_files, "old.example.com")))

	def test_members_that_would_leave_the_files_folder_are_refused(self):
		outside_link = tarfile.TarInfo("./s/public/files/link")
		outside_link.type, outside_link.linkname = tarfile.SYMTYPE, "/etc/passwd"
		hard_link = tarfile.TarInfo("./s/public/files/hard")
		hard_link.type, hard_link.linkname = tarfile.LNKTYPE, "./s/site_config.json"
		cases = {
			"absolute path": [self.file_member("/s/public/files/x")],
			"'..'": [self.file_member("./s/public/files/../../../../evil")],
			"not under <site>/public/files": [self.file_member("./s/site_config.json")],
			"private folder in the public archive": [self.file_member("./s/private/files/x")],
			"two sites": [self.file_member("./s/public/files/x"), self.file_member("./t/public/files/y")],
			"symbolic link": [self.file_member("./s/public/files/ok"), outside_link],
			"hard link": [hard_link],
		}
		for case, members in cases.items():
			with self.subTest(case):
				archive = self.write_tar("bad.tar", members)
				result = self.run_program("restore_files", "copy.example.com", "public", archive)
				self.assertNotEqual(result.returncode, 0)
				self.assertIn("nothing of this archive was extracted", result.stderr)
				self.assertEqual(os.listdir(os.path.join(self.site_files, "public", "files")), [])
				self.assertEqual(sorted(os.listdir(self.site_files)), ["private", "public"])

	def test_verification_hashes_every_file_and_names_the_damaged_one(self):
		folder = os.path.join(self.bench, "backup")
		os.makedirs(folder)
		good, bad = os.path.join(folder, "a.sql.gz"), os.path.join(folder, "b.tar")
		for path in (good, bad):
			with open(path, "wb") as handle:
				handle.write(os.urandom(5 * 1024 * 1024 + 7))
		arguments = [
			folder,
			"hash",
			"a.sql.gz",
			checksums.sha256_file(good),
			"b.tar",
			checksums.sha256_file(bad),
		]
		self.assertEqual(self.run_program("verify_files", *arguments).returncode, 0)
		with open(bad, "r+b") as handle:
			handle.seek(5 * 1024 * 1024)
			handle.write(b"\0")
		result = self.run_program("verify_files", *arguments)
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("a.sql.gz: OK", result.stdout)
		self.assertIn("b.tar: FAILED", result.stdout)

	def test_a_download_is_checked_against_the_plan_without_hashing_again(self):
		folder = os.path.join(self.bench, "download")
		os.makedirs(folder)
		with open(os.path.join(folder, "a.sql.gz"), "wb") as handle:
			handle.write(b"not what the sha256 says: the download tool hashed it already")
		with open(os.path.join(folder, "manifest.json"), "w") as handle:
			json.dump({"artifacts": [{"file_name": "a.sql.gz", "sha256": digest("a")}]}, handle)
		self.assertEqual(
			self.run_program("verify_files", folder, "downloaded", "a.sql.gz", digest("a")).returncode, 0
		)
		# A manifest in the bucket that differs from the one the plan was made from stops the restore.
		result = self.run_program("verify_files", folder, "downloaded", "a.sql.gz", digest("b"))
		self.assertNotEqual(result.returncode, 0)
		self.assertIn("a.sql.gz: FAILED", result.stdout)

	def test_a_backup_of_a_newer_frappe_stops_unless_allowed(self):
		init_folder = os.path.join(self.bench, "apps", "frappe", "frappe")
		os.makedirs(init_folder)
		with open(os.path.join(init_folder, "__init__.py"), "w") as handle:
			handle.write('__version__ = "15.44.2"\n')
		self.assertEqual(self.run_program("frappe_version", "15.44.2").returncode, 0)
		self.assertEqual(self.run_program("frappe_version", "15.9.0").returncode, 0)
		refused = self.run_program("frappe_version", "15.50.0")
		self.assertNotEqual(refused.returncode, 0)
		self.assertIn("downgrade", refused.stderr)
		self.assertEqual(self.run_program("frappe_version", "15.50.0", ALLOW_DOWNGRADE="1").returncode, 0)

	def test_maintenance_mode_is_written_as_bench_writes_it(self):
		config_path = os.path.join(self.site_files, "site_config.json")
		with open(config_path, "w") as handle:
			json.dump({"db_name": "_x"}, handle)
		self.assertEqual(self.run_program("maintenance_mode", "copy.example.com", "1").returncode, 0)
		with open(config_path) as handle:
			self.assertEqual(json.load(handle), {"db_name": "_x", "maintenance_mode": 1})
		self.assertEqual(self.run_program("maintenance_mode", "copy.example.com", "0").returncode, 0)
		with open(config_path) as handle:
			self.assertEqual(json.load(handle)["maintenance_mode"], 0)
		self.assertEqual(sorted(os.listdir(self.site_files)), ["private", "public", "site_config.json"])
