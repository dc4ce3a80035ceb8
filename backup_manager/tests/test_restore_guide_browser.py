"""The Restore Guide page in a real headless Chromium against `bench serve`."""

import os
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

import frappe
from frappe.utils.password import update_password

from backup_manager import jobs
from backup_manager.tests.utils import (
	FrappeTestCase,
	delete_test_policies,
	ensure_outgoing_email_account,
	make_policy,
	make_user,
	sites_path,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = os.environ.get("BM_SCREENSHOT_DIR", "/tmp")

try:
	from selenium import webdriver
	from selenium.webdriver.chrome.service import Service
	from selenium.webdriver.common.by import By
	from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # scripts/bench-tests.sh installs selenium into the bench env
	webdriver = None

BROWSER_READY = webdriver is not None and os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)
if not BROWSER_READY and os.environ.get("BM_REQUIRE_BROWSER") == "1":
	raise RuntimeError("BM_REQUIRE_BROWSER=1 but selenium, chromium or chromedriver is missing")


def free_port() -> int:
	with socket.socket() as probe:
		probe.bind(("127.0.0.1", 0))
		return probe.getsockname()[1]


@unittest.skipUnless(BROWSER_READY, "selenium, chromium or chromedriver is not installed")
class TestRestoreGuideInBrowser(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		ensure_outgoing_email_account()
		cls.port = free_port()
		cls.base_url = f"http://{frappe.local.site}:{cls.port}"
		cls.server = subprocess.Popen(
			[
				sys.executable,
				"-m",
				"frappe.utils.bench_helper",
				"frappe",
				"--site",
				frappe.local.site,
				"serve",
				"--port",
				str(cls.port),
				"--noreload",
			],
			cwd=sites_path(),
			stdout=subprocess.DEVNULL,
			stderr=subprocess.DEVNULL,
			start_new_session=True,
			env={
				name: value
				for name, value in os.environ.items()
				if name in ("PATH", "HOME", "LANG", "LC_ALL", "USER")
			},
		)
		deadline = time.monotonic() + 60
		while time.monotonic() < deadline:
			try:
				request = urllib.request.Request(
					f"http://127.0.0.1:{cls.port}/login", headers={"Host": f"{frappe.local.site}:{cls.port}"}
				)
				urllib.request.urlopen(request, timeout=5)
				break
			except Exception:
				time.sleep(0.5)
		else:
			cls.server.kill()
			raise RuntimeError("bench serve did not answer within 60 s")

		options = webdriver.ChromeOptions()
		options.binary_location = CHROMIUM
		for argument in (
			"--headless=new",
			"--no-sandbox",
			"--disable-gpu",
			"--disable-dev-shm-usage",
			"--disable-quic",
			"--no-first-run",
			"--disable-background-networking",
			"--disable-component-update",
			"--disable-sync",
			"--window-size=1400,2200",
		):
			options.add_argument(argument)
		cls.browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

	@classmethod
	def tearDownClass(cls):
		cls.browser.quit()
		cls.server.terminate()
		try:
			cls.server.wait(timeout=10)
		except subprocess.TimeoutExpired:
			cls.server.kill()
		super().tearDownClass()

	def tearDown(self):
		frappe.set_user("Administrator")
		delete_test_policies()

	def log_in(self, email: str, password: str):
		"""Log in through Frappe's login API from the page, as the login form does."""
		self.browser.delete_all_cookies()
		self.browser.get(f"{self.base_url}/login")
		answer = self.browser.execute_async_script(
			"const [usr, pwd, done] = arguments;"
			"fetch('/api/method/login', {method: 'POST', headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},"
			" body: JSON.stringify({usr, pwd})}).then(async (response) => done([response.status, await response.text()]));",
			email,
			password,
		)
		self.assertEqual(answer[0], 200, answer[1])

	def make_login(self, email: str, roles: list[str]) -> str:
		make_user(email, roles)
		password = frappe.generate_hash(length=20)
		update_password(email, password)
		frappe.db.commit()
		return password

	def test_system_manager_sees_the_steps_and_others_are_refused(self):
		log = jobs.execute_run(
			jobs.start_run(policy=make_policy("browser").name, trigger="CLI", enqueue=False)
		)
		self.assertEqual(log.status, "Success", log.error_message)

		password = self.make_login("bm-browser-admin@example.com", ["System Manager"])
		self.log_in("bm-browser-admin@example.com", password)
		self.browser.get(f"{self.base_url}/app/backup-restore-guide?backup_log={log.name}")
		WebDriverWait(self.browser, 60).until(
			lambda browser: len(browser.find_elements(By.CSS_SELECTOR, ".restore-step")) >= 5
		)
		page = self.browser.find_element(By.CSS_SELECTOR, ".backup-restore-guide").text
		self.assertIn(log.name, page)
		self.assertIn(frappe.local.site, page)
		self.assertIn("Restore the database and files", page)
		self.assertIn(f"bench --site {frappe.local.site} restore", page)
		self.assertIn("sha256sum -c", page)
		self.assertIn("frappe", self.browser.find_element(By.CSS_SELECTOR, ".app-checks").text)
		self.browser.save_screenshot(os.path.join(SCREENSHOT, "restore-guide.png"))

		# A new site: the steps change to new-site ones.
		new_site = self.browser.find_element(By.CSS_SELECTOR, "[data-fieldname='new_site'] input")
		new_site.send_keys("staging.localhost")
		new_site.send_keys("\t")
		WebDriverWait(self.browser, 30).until(
			lambda browser: (
				"bench new-site staging.localhost"
				in browser.find_element(By.CSS_SELECTOR, ".backup-restore-guide").text
			)
		)

		plain = self.make_login("bm-browser-plain@example.com", ["Blogger"])
		self.log_in("bm-browser-plain@example.com", plain)
		status = self.browser.execute_async_script(
			"const done = arguments[arguments.length - 1];"
			f"fetch('/api/method/backup_manager.api.get_restore_guide?backup_log={log.name}')"
			".then((response) => done(response.status));"
		)
		self.assertEqual(status, 403)
		self.browser.get(f"{self.base_url}/app/backup-restore-guide?backup_log={log.name}")
		time.sleep(3)
		self.assertEqual(self.browser.find_elements(By.CSS_SELECTOR, ".restore-step"), [])
		self.browser.save_screenshot(os.path.join(SCREENSHOT, "restore-guide-refused.png"))
