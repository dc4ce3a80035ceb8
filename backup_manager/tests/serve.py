"""A real `bench serve` for the site under test, and a headless Chromium (as in the Restore Guide test)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import frappe

from backup_manager.tests.utils import sites_path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

try:
	from selenium import webdriver
	from selenium.webdriver.chrome.service import Service
except ImportError:  # scripts/bench-tests.sh installs selenium into the bench env
	webdriver = None

BROWSER_READY = webdriver is not None and os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def free_port() -> int:
	with socket.socket() as probe:
		probe.bind(("127.0.0.1", 0))
		return probe.getsockname()[1]


class BenchServer:
	"""`bench --site SITE serve` on a free port; stop() when done."""

	def __init__(self):
		self.port = free_port()
		self.base_url = f"http://{frappe.local.site}:{self.port}"
		self.process = subprocess.Popen(
			[
				sys.executable,
				"-m",
				"frappe.utils.bench_helper",
				"frappe",
				"--site",
				frappe.local.site,
				"serve",
				"--port",
				str(self.port),
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
				self.request("/login")
				return
			except Exception:
				time.sleep(0.5)
		self.stop()
		raise RuntimeError("bench serve did not answer within 60 s")

	def request(self, path: str, headers: dict | None = None) -> tuple[int, str, dict]:
		"""GET a path on the site (Host header set, so any site name works); status, body, headers."""
		request = urllib.request.Request(
			f"http://127.0.0.1:{self.port}{path}",
			headers={"Host": f"{frappe.local.site}:{self.port}", **(headers or {})},
		)
		try:
			with urllib.request.urlopen(request, timeout=30) as response:
				return response.status, response.read().decode(), dict(response.headers)
		except urllib.error.HTTPError as error:
			return error.code, error.read().decode(), dict(error.headers)

	def stop(self):
		self.process.terminate()
		try:
			self.process.wait(timeout=10)
		except subprocess.TimeoutExpired:
			self.process.kill()


def make_browser():
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
	return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
