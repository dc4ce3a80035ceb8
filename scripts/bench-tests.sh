#!/usr/bin/env bash
# Installs a Backup Manager checkout into an existing bench and runs its bench test suite
# on a dedicated test site. The bench's own apps/backup_manager is set aside and put back.
# Usage: bash scripts/bench-tests.sh REPO BENCH TEST_SITE
set -euo pipefail
REPO="$1"
BENCH="$2"
TEST_SITE="$3"
APP_DIR="$BENCH/apps/backup_manager"
SAVED="$BENCH/apps/.backup_manager.saved-by-tests"

say() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }
bench_() { (cd "$BENCH" && bench "$@"); }

say "Bench tests on $BENCH, site $TEST_SITE, app from $REPO"

# Install the checkout under test in place of whatever the bench had.
if [ -e "$APP_DIR" ] || [ -L "$APP_DIR" ]; then
	rm -rf "$SAVED"
	mv "$APP_DIR" "$SAVED"
fi
restore_app() {
	rm -rf "$APP_DIR"
	if [ -e "$SAVED" ] || [ -L "$SAVED" ]; then mv "$SAVED" "$APP_DIR"; fi
}
trap restore_app EXIT
git clone -q "$REPO" "$APP_DIR"
(cd "$REPO" && git diff --quiet HEAD) || echo "note: $REPO has uncommitted changes; the bench tests use its last commit"
if [ -x "$BENCH/env/bin/pip" ]; then
	"$BENCH/env/bin/pip" install -q -e "$APP_DIR"
else
	uv pip install -q --python "$BENCH/env/bin/python" -e "$APP_DIR"
fi
# The Restore Guide is tested in a real headless Chromium driven by selenium.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
	say "Installing chromium and chromium-driver for the browser test"
	(apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)
fi
"$BENCH/env/bin/python" -m pip install -q --disable-pip-version-check "selenium>=4.20" 2>/dev/null \
	|| uv pip install -q --python "$BENCH/env/bin/python" "selenium>=4.20"
export BM_REQUIRE_BROWSER=1
# SFTP destinations (normally installed by requirements.txt; an offline install may have missed it).
"$BENCH/env/bin/python" -c "import paramiko" 2>/dev/null \
	|| "$BENCH/env/bin/python" -m pip install -q --disable-pip-version-check "paramiko>=3.4" 2>/dev/null \
	|| uv pip install -q --python "$BENCH/env/bin/python" "paramiko>=3.4"
if [ ! -x /usr/sbin/sshd ]; then
	say "Installing openssh-server for the SFTP tests"
	(apt-get update -q >/dev/null && apt-get install -y -q openssh-server >/dev/null)
fi
export BM_REQUIRE_SSHD=1
grep -qx backup_manager "$BENCH/sites/apps.txt" || printf '\nbackup_manager\n' >> "$BENCH/sites/apps.txt"
sed -i '/^$/d' "$BENCH/sites/apps.txt"

if [ ! -d "$BENCH/sites/$TEST_SITE" ]; then
	say "Creating test site $TEST_SITE (database root password from sites/common_site_config.json)"
	ADMIN_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
	python3 - "$BENCH/sites/common_site_config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
if not config.get("root_password"):
	sys.exit("sites/common_site_config.json has no root_password: add the MariaDB root password there (see README, Development bench)")
PY
	bench_ new-site "$TEST_SITE" --admin-password "$ADMIN_PASSWORD" >/dev/null
	# Complete the setup wizard in UTC: otherwise run-tests completes it with America/New_York,
	# and scheduled times in the tests would be read hours apart.
	bench_ --site "$TEST_SITE" execute frappe.desk.page.setup_wizard.setup_wizard.setup_complete --kwargs \
		'{"args": {"language": "English", "email": "bm-admin@example.com", "full_name": "BM Admin", "password": "'"$ADMIN_PASSWORD"'", "country": "United States", "timezone": "UTC", "currency": "USD"}}' >/dev/null
fi
bench_ --site "$TEST_SITE" set-config allow_tests 1 >/dev/null
if ! bench_ --site "$TEST_SITE" list-apps 2>/dev/null | grep -q '^backup_manager'; then
	bench_ --site "$TEST_SITE" install-app backup_manager
fi
bench_ --site "$TEST_SITE" migrate >/dev/null
bench_ build --app backup_manager >/dev/null 2>&1 || echo "note: bench build --app backup_manager failed; browser tests may miss assets"

say "Bench tests: CI=1 bench --site $TEST_SITE run-tests --app backup_manager"
(cd "$BENCH" && CI=1 bench --site "$TEST_SITE" run-tests --app backup_manager)
say "BENCH TESTS RAN on site $TEST_SITE"
