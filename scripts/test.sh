#!/usr/bin/env bash
# Set up a virtual environment (if missing) and run the test suite. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77" >/dev/null
# torch (the train extra), ray (the ray extra) and the quality extra too, so their tests run rather than skip
.venv/bin/python -m pip install -q -e '.[test,train,ray,quality]'
# what this script installs (and the committed models) is required: a test that finds one missing fails
# rather than skips (tests/conftest.py reads LABELER_REQUIRE_*; only the README's optional tests skip)
export LABELER_REQUIRE_MODELS=1 LABELER_REQUIRE_TORCH=1 LABELER_REQUIRE_RAY=1 LABELER_REQUIRE_QUALITY=1
# a real browser for the end-to-end UI test (Debian's chromium; Playwright cannot download one here);
# as root (CI) its absence is a failure, not a skip
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if ! command -v chromium >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser tests will fail"
  fi
  export LABELER_REQUIRE_CHROMIUM=1
fi
# PostgreSQL (Debian's package) for the tests that run on both backends; as root (CI) its absence is
# a failure, not a skip (tests/conftest.py reads LABELER_REQUIRE_PG)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || echo "postgresql not installed"
  fi
  export LABELER_REQUIRE_PG=1
fi
# the PostgreSQL tests stop the server they start (tests/conftest.py); should pytest itself be killed,
# a server this run started is stopped here all the same (one running before is left alone)
if ! bash scripts/pg_server.sh status; then
  trap 'bash scripts/pg_server.sh stop' EXIT
fi
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
# pytest exits 5 when no test ran: that is a failure here
if [ "$rc" = 5 ]; then echo "no tests ran"; exit 1; fi
exit "$rc"
