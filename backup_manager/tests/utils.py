"""Shared helpers for the bench (integration) tests: real site, real MariaDB, real RQ."""

import os
import shutil
import subprocess
import sys

import frappe

try:  # Frappe v16 moved the test base classes
	from frappe.tests import IntegrationTestCase as FrappeTestCase  # noqa: F401 (re-exported)
except ImportError:  # Frappe v15
	from frappe.tests.utils import FrappeTestCase  # noqa: F401 (re-exported)

from backup_manager.local_backup import get_backup_root

TEST_POLICY_PREFIX = "_Test BM "


# Policies made by this test process: cleanup removes only these, so test modules running
# at the same time on the same site do not delete each other's policies.
CREATED_POLICIES: set[str] = set()


def make_policy(name: str, **values):
	"""Insert (or replace) a committed test policy; defaults keep it small and off the scheduler."""
	full_name = TEST_POLICY_PREFIX + name
	delete_policy(full_name)
	CREATED_POLICIES.add(full_name)
	policy = frappe.get_doc(
		{
			"doctype": "Backup Policy",
			"policy_name": full_name,
			"enabled": 0,
			"frequency": "Daily",
			"with_files": 1,
			"keep_last": 3,
			"keep_daily": 0,
			"keep_weekly": 0,
			"keep_monthly": 0,
			"notify_on_failure": 1,
			"recipients": "backup-alerts@example.com",
			**values,
		}
	)
	policy.insert(ignore_permissions=True)
	frappe.db.commit()
	return policy


def delete_policy(name: str):
	for log in frappe.get_all("Backup Log", filters={"policy": name}, fields=["name", "backup_dir"]):
		if log.backup_dir and os.path.isdir(log.backup_dir):
			shutil.rmtree(log.backup_dir)
		frappe.delete_doc("Backup Log", log.name, force=True, ignore_permissions=True)
	frappe.db.delete("Email Queue", {"reference_doctype": "Backup Policy", "reference_name": name})
	if frappe.db.exists("Backup Policy", name):
		frappe.delete_doc("Backup Policy", name, force=True, ignore_permissions=True)
	frappe.db.commit()


def delete_test_policies():
	for name in sorted(CREATED_POLICIES):
		delete_policy(name)
	CREATED_POLICIES.clear()


def bench_command(*args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
	"""Run `bench --site <this site> ...` the way bench does, from the sites folder."""
	return subprocess.run(
		bench_argv(*args),
		cwd=sites_path(),
		capture_output=True,
		text=True,
		timeout=timeout,
		check=False,
		**kwargs,
	)


def bench_argv(*args: str) -> list[str]:
	return [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", frappe.local.site, *args]


def sites_path() -> str:
	return os.path.abspath(frappe.local.sites_path)


def run_worker_burst(queue: str = "long") -> subprocess.CompletedProcess:
	"""Drain `queue` with a real RQ worker in burst mode (it exits when the queue is empty)."""
	result = bench_command("worker", "--queue", queue, "--burst", timeout=900)
	if result.returncode != 0:
		raise AssertionError(f"bench worker --burst failed:\n{result.stdout}\n{result.stderr}")
	return result


def backup_dirs_on_disk() -> set[str]:
	root = get_backup_root()
	return set(os.listdir(root)) if os.path.isdir(root) else set()


def ensure_outgoing_email_account():
	"""Alerts are queued through a default outgoing account, as on a real site (nothing is sent in tests)."""
	if frappe.db.exists("Email Account", {"default_outgoing": 1, "enable_outgoing": 1}):
		return
	frappe.get_doc(
		{
			"doctype": "Email Account",
			"email_account_name": "_Test BM Outgoing",
			"email_id": "backups@example.com",
			"enable_outgoing": 1,
			"default_outgoing": 1,
			"smtp_server": "127.0.0.1",
			"smtp_port": 2525,
			"no_smtp_authentication": 1,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()


def make_user(email: str, roles: list[str]):
	if not frappe.db.exists("User", email):
		user = frappe.get_doc(
			{
				"doctype": "User",
				"email": email,
				"first_name": "BM Test",
				"send_welcome_email": 0,
				"user_type": "System User",
			}
		)
		user.insert(ignore_permissions=True)
	user = frappe.get_doc("User", email)
	user.set("roles", [])
	user.add_roles(*roles)
	frappe.db.commit()
	return user
