#!/usr/bin/env bash
# Regenerate the lock files from the human-edited requirement lists:
#   requirements.txt      -> requirements.lock      (runtime; contrib/start.sh installs it)
#   requirements-dev.txt  -> requirements-dev.lock  (runtime + dev; contrib/test.sh installs it)
# Every package, transitive ones included, is pinned with the sha256 of each of its files on
# PyPI, so `pip install --require-hashes -r <lock>` installs the same bytes everywhere.
#   bash contrib/lock.sh             # keep every pin that still satisfies the lists
#   bash contrib/lock.sh --upgrade   # move every unpinned (transitive) package to its newest
# The dev lock is resolved under the runtime lock (-c), so both agree on every shared package.
# uv resolves against PyPI itself (it does not read pip's config, so a local mirror set up in
# pip.conf cannot leak its own file hashes into the lock).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/uv ] || { echo "uv is missing: bash contrib/test.sh (or pip install -r requirements-dev.lock) first" >&2; exit 1; }
compile() {
  .venv/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --no-config --index-url https://pypi.org/simple --custom-compile-command "bash contrib/lock.sh" \
    "$@"
}
compile requirements.txt -o requirements.lock "${@}"
compile requirements-dev.txt -c requirements.lock -o requirements-dev.lock "${@}"
