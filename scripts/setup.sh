#!/usr/bin/env bash
# Create .venv (if missing) and install labeler into it (editable, so models/ and db/ stay beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77" >/dev/null
.venv/bin/python -m pip install -q -e .
