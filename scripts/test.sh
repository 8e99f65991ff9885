#!/usr/bin/env bash
# Set up a virtual environment (if missing) and run the test suite. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77" >/dev/null
# torch (the train extra) and ray (the ray extra) too, so the training and Ray tests run rather than skip
.venv/bin/python -m pip install -q -e '.[test,train,ray]'
# a real browser for the end-to-end UI test (Debian's chromium; Playwright cannot download one here)
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"
fi
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
# pytest exits 5 when no test ran: that is a failure here
if [ "$rc" = 5 ]; then echo "no tests ran"; exit 1; fi
exit "$rc"
