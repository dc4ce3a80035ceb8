"""The Backup Manager workspace in a real headless Chromium: policies show their real state."""

import os
import unittest

import frappe
from frappe.utils.password import update_password

from backup_manager import jobs
from backup_manager.tests.serve import BROWSER_READY, BenchServer, make_browser
from backup_manager.tests.utils import (
	FrappeTestCase,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	make_user,
)

if BROWSER_READY:
	from selenium.webdriver.support.ui import WebDriverWait

if not BROWSER_READY and os.environ.get("BM_REQUIRE_BROWSER") == "1":
	raise RuntimeError("BM_REQUIRE_BROWSER=1 but selenium, chromium or chromedriver is missing")

SCREENSHOT = os.environ.get("BM_SCREENSHOT_DIR", "/tmp")
ADMIN = "bm-workspace-admin@example.com"

# The overview lives in a Custom HTML Block, i.e. in a shadow root: read it from there.
READ_OVERVIEW_JS = """
for (const element of document.querySelectorAll("*")) {
	const root = element.shadowRoot;
	const overview = root && root.querySelector(".bm-overview[data-loaded]");
	if (!overview) continue;
	const rows = {};
	for (const row of root.querySelectorAll("tr[data-policy]")) {
		rows[row.dataset.policy] = {
			state: row.querySelector(".bm-enabled").innerText.trim(),
			last_status: row.querySelector(".bm-last-status").innerText.trim(),
			age: row.querySelector(".bm-age").innerText.trim(),
		};
	}
	const runs = Array.from(root.querySelectorAll("tr[data-backup-log]")).map((row) => row.innerText);
	const banner = root.querySelector(".bm-banner");
	return { rows, runs, banner: banner.hidden ? "" : banner.innerText };
}
return null;
"""


@unittest.skipUnless(BROWSER_READY, "selenium, chromium or chromedriver is not installed")
class TestWorkspaceInBrowser(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		ensure_outgoing_email_account()
		cls.server = BenchServer()
		cls.browser = make_browser()

	@classmethod
	def tearDownClass(cls):
		cls.browser.quit()
		cls.server.stop()
		super().tearDownClass()

	def setUp(self):
		self.scheduler_was = frappe.db.get_single_value("System Settings", "enable_scheduler")

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.set_single_value("System Settings", "enable_scheduler", self.scheduler_was)
		frappe.db.commit()
		delete_test_policies()

	def log_in(self):
		make_user(ADMIN, ["System Manager"])
		password = frappe.generate_hash(length=20)
		update_password(ADMIN, password)
		frappe.db.commit()
		self.browser.delete_all_cookies()
		self.browser.get(f"{self.server.base_url}/login")
		answer = self.browser.execute_async_script(
			"const [usr, pwd, done] = arguments;"
			"fetch('/api/method/login', {method: 'POST', headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},"
			" body: JSON.stringify({usr, pwd})}).then(async (response) => done([response.status, await response.text()]));",
			ADMIN,
			password,
		)
		self.assertEqual(answer[0], 200, answer[1])

	def open_workspace(self) -> dict:
		self.browser.get(f"{self.server.base_url}/app/backup-manager")
		return WebDriverWait(self.browser, 60).until(lambda browser: browser.execute_script(READ_OVERVIEW_JS))

	def test_enabled_policy_shows_as_enabled_with_its_last_status_and_runs_with_size(self):
		enabled = make_policy("workspace on", enabled=1, with_files=0)
		disabled = make_policy("workspace off", enabled=0)
		log = jobs.execute_run(jobs.start_run(policy=enabled.name, trigger="CLI", enqueue=False))
		self.assertEqual(log.status, "Success", log.error_message)
		frappe.db.set_value(
			"Backup Policy",
			enabled.name,
			"last_success_at",
			frappe.utils.add_to_date(frappe.utils.now_datetime(), hours=-3, minutes=-5),
			update_modified=False,
		)
		frappe.db.set_single_value("System Settings", "enable_scheduler", 0)
		frappe.db.commit()

		self.log_in()
		overview = self.open_workspace()
		self.browser.save_screenshot(os.path.join(SCREENSHOT, "workspace-overview.png"))
		self.assertEqual(overview["rows"][enabled.name]["state"], "Enabled")
		self.assertEqual(overview["rows"][enabled.name]["last_status"], "Success")
		self.assertEqual(overview["rows"][enabled.name]["age"], "3 h ago")
		self.assertEqual(overview["rows"][disabled.name]["state"], "Disabled")
		self.assertEqual(overview["rows"][disabled.name]["last_status"], "Never run")
		run_row = next(row for row in overview["runs"] if log.name in row)
		self.assertIn("Success", run_row)
		self.assertIn(log.total_size_human, run_row)
		# The watchdog banner names the problem and its fix.
		self.assertIn("scheduler of this site is off", overview["banner"])
		self.assertIn("enable-scheduler", overview["banner"])
