#!/usr/bin/env bash
# Runs every Backup Manager test suite:
#   1. the pure (frappe-free) tests with plain pytest, against a real S3 server (SeaweedFS);
#   2. the bench (integration) tests, when a Frappe bench exists at ${BENCH_PATH:-$HOME/frappe-bench}:
#      this checkout is installed into that bench and tested on a dedicated test site.
# Usage: bash scripts/run-tests.sh [--pure-only]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${BENCH_PATH:-$HOME/frappe-bench}"
TEST_SITE="${BM_TEST_SITE:-bm-test.localhost}"
WORK="${BM_TEST_WORKDIR:-$(mktemp -d /tmp/backup-manager-tests.XXXXXX)}"
VENV="${BM_PURE_VENV:-$REPO/.ci/venv}"
PURE_ONLY=0
[ "${1:-}" = "--pure-only" ] && PURE_ONLY=1

say() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }
loud() { printf '\n\033[1;33m!! %s\033[0m\n' "$*"; }

# --- what the tests need on the machine -------------------------------------
if ! command -v gpg >/dev/null; then
	say "Installing gnupg (encrypted backups are tested for real)"
	apt-get install -y -q gnupg >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q gnupg >/dev/null; }
fi

if [ ! -x /usr/sbin/sshd ]; then
	say "Installing openssh-server (SFTP destinations are tested against a real sshd)"
	apt-get install -y -q openssh-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q openssh-server >/dev/null; }
fi
# The SFTP tests start their own sshd on a free port; they must not skip in CI.
export BM_REQUIRE_SSHD=1
if ! command -v pigz >/dev/null || ! command -v igzip >/dev/null; then
	say "Installing pigz and isal (igzip) (policies compress with them; the tests check they stand in for gzip)"
	apt-get install -y -q pigz isal >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q pigz isal >/dev/null; }
fi

say "Pure test environment: $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO/dev-requirements.txt"

# --- S3 server ---------------------------------------------------------------
say "Starting SeaweedFS (S3 on 127.0.0.1)"
"$VENV/bin/python" "$REPO/tests/seaweed.py" start --dir "$WORK/seaweed" --env-file "$WORK/s3.env"
stop_s3() { "$VENV/bin/python" "$REPO/tests/seaweed.py" stop --dir "$WORK/seaweed" || true; }
trap stop_s3 EXIT
set -a
# shellcheck disable=SC1091
. "$WORK/s3.env"
set +a

# --- 1. pure tests -----------------------------------------------------------
say "Pure tests: pytest tests"
(cd "$REPO" && "$VENV/bin/python" -m pytest tests -q -p no:cacheprovider)

if [ "$PURE_ONLY" = 1 ]; then
	loud "BENCH TESTS NOT RUN (--pure-only)"
	exit 0
fi

# --- 2. bench tests ----------------------------------------------------------
if [ ! -d "$BENCH/apps/frappe" ]; then
	loud "BENCH TESTS SKIPPED: no Frappe bench at $BENCH (set BENCH_PATH). Only the pure tests ran."
	exit 0
fi
# The S3 server is running: the bench suite must not skip its offsite tests.
export BM_REQUIRE_S3=1
bash "$REPO/scripts/bench-tests.sh" "$REPO" "$BENCH" "$TEST_SITE"
