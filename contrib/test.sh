#!/usr/bin/env bash
# One command: install the dev requirements into .venv (and Chromium for the browser
# tests when it is missing and we are root), then run lint, types and the test suite.
#   bash contrib/test.sh [pytest args]
# Uses DATABASE_URL / REDIS_URL when set; otherwise SQLite and an embedded Valkey.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# The lock pins every package, transitive ones too, with its hashes (bash contrib/lock.sh).
.venv/bin/python -m pip install -q --require-hashes -r requirements-dev.lock
if [ "${CI:-}" = true ]; then export REQUIRE_BROWSER=1; fi  # CI: a missing browser fails
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped (or fail with REQUIRE_BROWSER=1)"
fi
# GNU gettext: the i18n check compares the strings the sources mark with the catalogs
# (xgettext); without it that comparison is skipped (contrib/check_i18n.py says so).
if ! command -v xgettext >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null) \
    || echo "warning: could not install gettext; the i18n check will not compare sources and catalogs"
fi
if [ "${REQUIRE_BROWSER:-}" = 1 ] && ! command -v "${CHROMIUM_PATH:-chromium}" >/dev/null 2>&1; then
  echo "error: REQUIRE_BROWSER=1 but chromium is missing (install it, or set CHROMIUM_PATH)" >&2
  exit 1
fi
export PATH="$PWD/.venv/bin:$PATH"
# Translations (locale/*.po -> .mo), as contrib/start.sh does: msgfmt, else pure Python.
if command -v msgfmt >/dev/null; then
  python manage.py compilemessages --ignore=.venv --ignore=var -v 0
else
  python contrib/check_i18n.py --compile
fi
if [ "${SKIP_LINT:-}" != 1 ]; then
  ruff check .
  ruff format --check .
  mypy
  # Guard rails (pyproject.toml says what each checks and why):
  lint-imports --no-cache --no-logo  # the layering contracts
  python contrib/check_private_imports.py  # no module imports another's _private names
  python contrib/check_i18n.py  # template text marked for translation; .po files complete
  vulture  # dead code; framework hooks in contrib/vulture_whitelist.py
  deptry .  # unused, missing and transitive-only dependencies
  bash contrib/lock.sh --check  # the locks hold exactly the lists' pins
fi
exec pytest -rs --durations=15 "$@"  # -rs: every skip with its reason; the 15 slowest tests
