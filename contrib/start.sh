#!/usr/bin/env bash
# One command: install into .venv, write .env, migrate, create the demo, start everything.
#   bash contrib/start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --require-hashes -r requirements.lock  # bash contrib/lock.sh
.venv/bin/python contrib/generate_env.py
# Translations (locale/*.po -> .mo): GNU msgfmt when installed, else the pure-Python
# compiler beside the i18n check (same result; a server needs no gettext package).
if command -v msgfmt >/dev/null; then
  .venv/bin/python manage.py compilemessages --ignore=.venv --ignore=var -v 0
else
  .venv/bin/python contrib/check_i18n.py --compile
fi
.venv/bin/python manage.py migrate --no-input -v 0
.venv/bin/python manage.py collectstatic --no-input -v 0
.venv/bin/python manage.py demo_data
# Every process starts anew: metrics files of the previous run's processes go (their
# counters would otherwise be summed with the new ones').
.venv/bin/python manage.py shell -v 0 -c \
  "import shutil; from django.conf import settings; shutil.rmtree(settings.PROMETHEUS_MULTIPROC_DIR, ignore_errors=True)"
export PATH="$PWD/.venv/bin:$PATH"
exec honcho start "$@"
