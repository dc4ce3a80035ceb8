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
PAGE = "#page-backup-restore-guide"
# How long the test holds back the answer for a slow New Site: far longer than the server
# takes to refuse the next one, so the answers arrive in the opposite order to the requests.
SLOW_ANSWER_MS = 10000

# In the page: remember what Download Script saves (file name and text) instead of saving it.
RECORD_DOWNLOADS_JS = """
window.bm_downloads = [];
const blob_texts = {};
const create_object_url = URL.createObjectURL;
URL.createObjectURL = function (blob) {
	const url = create_object_url.call(URL, blob);
	blob.text().then((text) => { blob_texts[url] = text; });
	return url;
};
const click = HTMLAnchorElement.prototype.click;
HTMLAnchorElement.prototype.click = function () {
	if (!this.download) return click.call(this);
	window.bm_downloads.push({ name: this.download, url: this.href });
};
window.bm_saved_scripts = () =>
	window.bm_downloads.map((download) => ({ name: download.name, text: blob_texts[download.url] }));
"""

# In the page: hold back the Restore Guide's answer for one New Site, like a slow network.
DELAY_ANSWER_JS = """
const [slow_site, delay_ms] = arguments;
window.bm_slow = { sent: false, answered: false };
const call = frappe.call;
frappe.call = function (opts) {
	const request = call.apply(this, arguments);
	if (!opts || !opts.args || opts.args.new_site !== slow_site) return request;
	window.bm_slow.sent = true;
	const later = (settle, value) =>
		setTimeout(() => {
			settle(value);
			// The page has handled the answer well before this runs.
			setTimeout(() => { window.bm_slow.answered = true; }, 500);
		}, delay_ms);
	return new Promise((resolve, reject) => {
		request.then((r) => later(resolve, r), (xhr) => later(reject, xhr));
	});
};
"""

try:
	from selenium import webdriver
	from selenium.webdriver.chrome.service import Service
	from selenium.webdriver.common.by import By
	from selenium.webdriver.common.keys import Keys
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
		self.assertIn("Restore the database", page)
		self.assertIn("Restore the database and the files", page)
		self.assertIn("started in the background before the database restore", page)
		self.assertIn(f"bench --site {frappe.local.site} backup-manager restore-and-migrate", page)
		self.assertIn("Verify the backup files", page)
		self.assertIn("frappe", self.browser.find_element(By.CSS_SELECTOR, ".app-checks").text)
		self.browser.save_screenshot(os.path.join(SCREENSHOT, "restore-guide.png"))

		# A new site: the steps change to new-site ones.
		new_site = self.browser.find_element(By.CSS_SELECTOR, "[data-fieldname='new_site'] input")
		new_site.send_keys("staging.localhost")
		new_site.send_keys("\t")
		WebDriverWait(self.browser, 30).until(
			lambda browser: (
				"bench new-site staging.localhost --source-sql"
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

	def test_a_refused_refresh_leaves_no_old_guide_and_download_shows_the_error(self):
		log = jobs.execute_run(
			jobs.start_run(policy=make_policy("browser-stale").name, trigger="CLI", enqueue=False)
		)
		self.assertEqual(log.status, "Success", log.error_message)
		password = self.make_login("bm-browser-admin@example.com", ["System Manager"])
		self.log_in("bm-browser-admin@example.com", password)
		self.browser.get(f"{self.base_url}/app/backup-restore-guide?backup_log={log.name}")
		self.wait_for_guide_showing(f"bench --site {frappe.local.site} backup-manager restore-and-migrate")
		self.browser.execute_script(RECORD_DOWNLOADS_JS)

		# Download Script saves the script of the options shown, each time they change.
		self.download_button().click()
		self.wait_for_saved_scripts(1)
		self.set_new_site("staging.localhost")
		self.wait_for_guide_showing("bench new-site staging.localhost")
		self.download_button().click()
		same_site, new_site = self.wait_for_saved_scripts(2)
		self.assertEqual(same_site["name"], f"restore-{log.name}.sh")
		self.assertNotIn("staging.localhost", same_site["text"])
		self.assertIn("staging.localhost", new_site["text"])

		# A slow answer for one new site, then a new site the server refuses: the refusal
		# arrives first, and the slow answer that follows must not bring a guide back.
		self.browser.execute_script(DELAY_ANSWER_JS, "slow.localhost", SLOW_ANSWER_MS)
		self.set_new_site("slow.localhost")
		WebDriverWait(self.browser, 30).until(
			lambda browser: browser.execute_script("return window.bm_slow.sent")
		)
		self.set_new_site("bad/site")
		error_text = self.wait_for_visible(f"{PAGE} .backup-restore-guide .restore-guide-error", 60).text
		error_text = error_text.strip()
		self.assertIn("bad/site", error_text)
		self.assertFalse(
			self.browser.execute_script("return window.bm_slow.answered"),
			"the refusal came after the slow answer: this test did not reverse the order",
		)
		WebDriverWait(self.browser, SLOW_ANSWER_MS / 1000 + 30).until(
			lambda browser: browser.execute_script("return window.bm_slow.answered")
		)
		guide = self.browser.find_element(By.CSS_SELECTOR, f"{PAGE} .backup-restore-guide")
		self.assertEqual(guide.find_elements(By.CSS_SELECTOR, ".restore-step"), [])
		self.assertNotIn("slow.localhost", guide.text)
		self.assertNotIn("staging.localhost", guide.text)
		self.assertEqual(guide.find_element(By.CSS_SELECTOR, ".restore-guide-error").text.strip(), error_text)

		# Download Script now shows that error and saves nothing.
		self.assertTrue(self.download_button().is_enabled())
		self.download_button().click()
		self.assertEqual(self.wait_for_visible(".modal .restore-guide-error", 30).text.strip(), error_text)
		time.sleep(1)
		self.assertEqual(len(self.browser.execute_script("return window.bm_saved_scripts()")), 2)
		self.browser.save_screenshot(os.path.join(SCREENSHOT, "restore-guide-refused-site.png"))

	def download_button(self):
		return self.browser.find_element(By.CSS_SELECTOR, f"{PAGE} .page-actions .primary-action")

	def set_new_site(self, value: str):
		"""Replace the New Site text and leave the field, as a user does."""
		field = self.browser.find_element(By.CSS_SELECTOR, f"{PAGE} [data-fieldname='new_site'] input")
		field.send_keys(Keys.CONTROL, "a")
		field.send_keys(value, Keys.TAB)

	def wait_for_guide_showing(self, text: str):
		"""Wait until the guide shows `text` and Download Script can be clicked again."""
		WebDriverWait(self.browser, 60).until(
			lambda browser: (
				text in browser.find_element(By.CSS_SELECTOR, f"{PAGE} .backup-restore-guide").text
				and self.download_button().is_enabled()
			)
		)

	def wait_for_visible(self, selector: str, timeout: float):
		"""The first displayed element matching `selector`, once there is one."""
		return WebDriverWait(self.browser, timeout).until(
			lambda browser: next(
				(
					element
					for element in browser.find_elements(By.CSS_SELECTOR, selector)
					if element.is_displayed()
				),
				None,
			)
		)

	def wait_for_saved_scripts(self, count: int) -> list[dict]:
		WebDriverWait(self.browser, 30).until(
			lambda browser: (
				len(scripts := browser.execute_script("return window.bm_saved_scripts()")) == count
				and all(script["text"] for script in scripts)
			)
		)
		return self.browser.execute_script("return window.bm_saved_scripts()")
