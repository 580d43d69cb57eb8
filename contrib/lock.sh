#!/usr/bin/env bash
# Regenerate the lock files from the human-edited requirement lists:
#   requirements.txt      -> requirements.lock      (runtime; contrib/start.sh installs it)
#   requirements-dev.txt  -> requirements-dev.lock  (runtime + dev; contrib/test.sh installs it)
# Every package, transitive ones included, is pinned with the sha256 of each of its files on
# PyPI, so `pip install --require-hashes -r <lock>` installs the same bytes everywhere.
#   bash contrib/lock.sh             # keep every pin that still satisfies the lists
#   bash contrib/lock.sh --upgrade   # move every unpinned (transitive) package to its newest
#   bash contrib/lock.sh --check     # offline: do the locks hold exactly the lists' pins?
# The dev lock is resolved under the runtime lock (-c), so both agree on every shared package.
# uv resolves against PyPI itself (it does not read pip's config, so a local mirror set up in
# pip.conf cannot leak its own file hashes into the lock).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --check ]; then
  # The lint step runs this: a list edited without `bash contrib/lock.sh` fails here, not
  # later as a package that start.sh or CI does not install.
  exec .venv/bin/python - <<'PY'
import re
import sys


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def wanted(path):
    """name -> version of every `name==version` in a list, following `-r`."""
    pins = {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(wanted(line[3:].strip()))
        elif "==" in line:
            name, version = line.split("==", 1)
            pins[norm(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return pins


def locked(path, lists):
    """name -> versions in a lock, and the names a list asks for directly (uv's `via -r`)."""
    versions, direct, name = {}, set(), None
    for line in open(path):
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line)
        if m:
            name = norm(m.group(1))
            versions.setdefault(name, set()).add(m.group(2))
        elif name and re.match(r"\s+#\s+(via )?-r ", line) and line.split("-r ", 1)[1].strip() in lists:
            direct.add(name)
    return versions, direct


errors = []
for src, lock, lists in (
    ("requirements.txt", "requirements.lock", {"requirements.txt"}),
    ("requirements-dev.txt", "requirements-dev.lock", {"requirements.txt", "requirements-dev.txt"}),
):
    pins = wanted(src)
    versions, direct = locked(lock, lists)
    for name, version in sorted(pins.items()):
        if version not in versions.get(name, set()):
            errors.append(f"{src}: {name}=={version}, {lock}: {sorted(versions.get(name, [])) or 'missing'}")
    for name in sorted(direct - set(pins)):
        errors.append(f"{lock}: {name} is locked as asked for by {src}, which no longer lists it")
for error in errors:
    print(error)
if errors:
    sys.exit("the locks are out of date: run `bash contrib/lock.sh` and commit the .lock files")
print("locks match requirements.txt and requirements-dev.txt")
PY
fi
[ -x .venv/bin/uv ] || { echo "uv is missing: bash contrib/test.sh (or pip install -r requirements-dev.lock) first" >&2; exit 1; }
compile() {
  .venv/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --no-config --index-url https://pypi.org/simple --custom-compile-command "bash contrib/lock.sh" \
    "$@"
}
compile requirements.txt -o requirements.lock "$@"
compile requirements-dev.txt -c requirements.lock -o requirements-dev.lock "$@"
