#!/usr/bin/env bash
# Creates .venv and installs the project (and, with --test, pytest). CUDA users: also
# `.venv/bin/pip install cupy-cuda12x` (or cupy-cuda13x) for the GPU kernel.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
requirements=requirements.txt
[ "${1:-}" = "--test" ] && requirements=requirements-test.txt
.venv/bin/pip install -q --disable-pip-version-check -r "$requirements"
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
.venv/bin/python -c "import unicornn, torch; print('unicornn ready, torch', torch.__version__)"
