"""Translations guard rail (issue 16), run by the lint step of contrib/test.sh.

    python contrib/check_i18n.py            # check; exit 1 with one line per problem
    python contrib/check_i18n.py --compile  # .po -> .mo without GNU gettext (fallback)
    python contrib/check_i18n.py --extract-js  # JS strings (t, tn) -> djangojs.po (needs gettext)

The check fails when
1. a template under templates/ shows a person text that is not inside `{% translate %}` /
   `{% blocktranslate %}`: text between tags and the attributes people read (title,
   placeholder, alt, aria-label, ...), parsed with Django's own template lexer; whitespace,
   punctuation, symbols, template variables and tags, comments, and the bodies of <script>,
   <style>, <code>, <kbd> and <samp> are ignored;
2. a language of settings.LANGUAGES (English aside) lacks a django.po or djangojs.po, or a
   .po file has an entry that is empty (any plural form included), fuzzy, or whose
   %(name)s placeholders differ from the English text's (a crash at format time);
3. a string the product marks (gettext & co. in Python, {% translate %} in templates, t()
   and tn() in static/**/*.js) is not in the catalogs yet: someone forgot makemessages /
   --extract-js. This part needs GNU xgettext (contrib/test.sh installs it like Chromium);
   without it the check says it skipped it.

--compile exists so `contrib/start.sh` needs no system package: `manage.py
compilemessages` wants GNU msgfmt, which a minimal server or container may lack; the .mo
format is small and documented (GNU gettext manual, "MO Files"), and Python's own gettext
module reads what this writes. With msgfmt present the scripts use compilemessages.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
# The project's templates and each app's own (<app>/templates/).
TEMPLATE_DIRS = [ROOT / "templates", *sorted(ROOT.glob("*/templates"))]
JS_SOURCES = ("static",)
LANGUAGES = ("ru", "pt_BR")  # locale names of settings.LANGUAGES besides English
DOMAINS = ("django", "djangojs")
# Attributes whose values a person reads or hears (screen readers: aria-*).
VISIBLE_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label", "aria-description", "label"}
# Not prose: scripts, styles, and code a person types as is (<code>{{ name }}</code>).
HIDDEN_TAGS = {"script", "style", "code", "kbd", "samp"}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]|%[sdif]")
MARK = "\ue000"  # stands for a template tag or variable inside the HTML text


# --- .po files ---------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0


def _unquote(text: str) -> str:
    return str(ast.literal_eval(text))  # a .po string is a C string: the same escapes


def po_parse(path: Path) -> list[Entry]:
    """Entries of a .po file (obsolete `#~` ones left out)."""
    entries: list[Entry] = []
    entry: Entry | None = None
    target: tuple[str, int] = ("", 0)
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if line.startswith("#~") and entry is not None and not entry.msgstr and not entry.msgid:
            entry = None  # the flags belonged to an obsolete entry
        if not line or line.startswith("#~"):
            continue
        if line.startswith("#"):
            if entry is not None and entry.msgstr:  # a comment starts the next entry
                entries.append(entry)
                entry = None
            if line.startswith("#,"):
                entry = entry or Entry(line=number)
                entry.flags |= {f.strip() for f in line[2:].split(",")}
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.startswith('"'):
            rest, keyword = line, ""
        elif keyword in ("msgctxt", "msgid") and entry is not None and entry.msgstr:
            entries.append(entry)
            entry = None
        entry = entry or Entry(line=number)
        if keyword:
            match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
            target = ("msgstr", int(match.group(1))) if match else (keyword, 0)
            if keyword == "msgid":
                entry.line = number
        text = _unquote(rest)
        name, index = target
        if name == "msgstr":
            entry.msgstr[index] = entry.msgstr.get(index, "") + text
        elif name in ("msgid_plural", "msgctxt"):
            setattr(entry, name, (getattr(entry, name) or "") + text)
        else:
            entry.msgid += text
    if entry is not None:
        entries.append(entry)
    return entries


def _nplurals(header: Entry) -> int:
    match = re.search(r"nplurals\s*=\s*(\d+)", header.msgstr.get(0, ""))
    return int(match.group(1)) if match else 2


def po_problems(path: Path) -> list[str]:
    entries = po_parse(path)
    rel = path.relative_to(ROOT)
    if not entries or entries[0].msgid != "":
        return [f"{rel}: no header entry"]
    header, problems = entries[0], []
    if "fuzzy" in header.flags:
        problems.append(f"{rel}:{header.line}: the header is fuzzy (msgfmt would ignore it)")
    forms = _nplurals(header)
    for e in entries[1:]:
        where = f"{rel}:{e.line}: {e.msgid[:60]!r}"
        if "fuzzy" in e.flags:
            problems.append(f"{where} is fuzzy")
        wanted = range(forms) if e.msgid_plural is not None else range(1)
        if any(not e.msgstr.get(i, "").strip() for i in wanted):
            problems.append(
                f"{where} has no translation" + (" (every form)" * bool(e.msgid_plural))
            )
            continue
        source = set(PLACEHOLDER.findall(e.msgid + (e.msgid_plural or "")))
        for i in wanted:
            if set(PLACEHOLDER.findall(e.msgstr[i])) - source:
                problems.append(f"{where}: msgstr[{i}] has placeholders the English lacks")
        if e.msgid_plural is None and set(PLACEHOLDER.findall(e.msgstr[0])) != source:
            problems.append(f"{where}: the placeholders differ from the English text's")
    return problems


def mo_write(entries: list[Entry], target: Path) -> None:
    """Write a GNU .mo file of the translated, non-fuzzy entries (and the header)."""
    pairs: dict[bytes, bytes] = {}
    for e in entries:
        if "fuzzy" in e.flags or not all(e.msgstr.values()) or not e.msgstr:
            continue
        key = e.msgid if e.msgid_plural is None else f"{e.msgid}\0{e.msgid_plural}"
        if e.msgctxt is not None:
            key = f"{e.msgctxt}\x04{key}"
        value = "\0".join(e.msgstr[i] for i in sorted(e.msgstr))
        pairs[key.encode()] = value.encode()
    keys = sorted(pairs)
    count = len(keys)
    originals_at = 7 * 4
    translations_at = originals_at + count * 8
    data_at = translations_at + count * 8
    tables, blob = [b"", b""], b""
    for column, strings in enumerate((keys, [pairs[k] for k in keys])):
        for s in strings:
            tables[column] += struct.pack("<II", len(s), data_at + len(blob))
            blob += s + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, count, originals_at, translations_at, 0, 0)
    # Whole or not at all: a server (or a parallel test run) may be reading the old file.
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_bytes(header + tables[0] + tables[1] + blob)
    os.replace(partial, target)


def compile_all() -> int:
    for po in sorted(LOCALE.glob("*/LC_MESSAGES/*.po")):
        mo_write(po_parse(po), po.with_suffix(".mo"))
    return 0


# --- templates ---------------------------------------------------------------------------


class _Visible(HTMLParser):
    """Collects (line, text) a person reads from HTML whose template parts are MARKs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self.hidden = 0  # inside <script> or <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN_TAGS:
            self.hidden += 1
        for name, value in attrs:
            if name in VISIBLE_ATTRIBUTES and value:
                self.found.append((self.getpos()[0], value))

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN_TAGS and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.found.append((self.getpos()[0], data))


def _has_words(text: str) -> bool:
    return any(unicodedata.category(c).startswith("L") for c in text.replace(MARK, ""))


def template_problems(path: Path) -> list[str]:
    from django.template.base import Lexer, TokenType

    # depth: inside blocktranslate; skip: inside a comment; blocks: open {% block %} names.
    html, depth, skip, blocks, extends = [], 0, "", [], False
    for token in Lexer(path.read_text(encoding="utf-8")).tokenize():
        words = token.split_contents() if token.token_type == TokenType.BLOCK else []
        name = words[0] if words else ""
        if skip:
            skip = "" if name == skip else skip
            html.append("\n" * token.contents.count("\n"))
        elif name == "comment":
            skip = "endcomment"
        elif name in ("blocktranslate", "blocktrans"):
            depth += 1
        elif name in ("endblocktranslate", "endblocktrans"):
            depth -= 1
        elif name == "extends":
            extends = True
        elif name == "block":
            blocks.append(words[1] if len(words) > 1 else "")
        elif name == "endblock" and blocks:
            blocks.pop()
        # Not shown: text outside every block of a child template (Django drops it), and a
        # block named "...class" (by convention an attribute value: <body class="{% block ...").
        hidden = (extends and not blocks) or any(b.endswith("class") for b in blocks)
        if token.token_type == TokenType.TEXT and not depth and not skip and not hidden:
            html.append(token.contents)
        elif token.token_type != TokenType.COMMENT and not skip:
            html.append(MARK + "\n" * token.contents.count("\n"))
    parser = _Visible()
    parser.feed("".join(html))
    parser.close()
    rel = path.relative_to(ROOT)
    return [
        f"{rel}:{line}: text not marked for translation: {' '.join(text.split())[:70]!r}"
        for line, text in parser.found
        if _has_words(text)
    ]


# --- JavaScript strings --------------------------------------------------------------------


def extract_js() -> int:
    """xgettext over the static JavaScript (keywords t and tn, static/console/i18n.js), then
    msgmerge into each language's djangojs.po (new entries empty: the check then fails
    until someone translates them)."""
    if not shutil.which("xgettext"):
        print("xgettext (GNU gettext) is needed to extract strings", file=sys.stderr)
        return 1
    sources = sorted(str(p.relative_to(ROOT)) for d in JS_SOURCES for p in (ROOT / d).rglob("*.js"))
    pot = LOCALE / "djangojs.pot"
    subprocess.run(
        ["xgettext", "--language=JavaScript", "--from-code=UTF-8", "--keyword=t",
         "--keyword=tn:1,2", "--keyword=gettext", "--keyword=ngettext:1,2",
         "--add-location=file", "-o", str(pot), *sources],
        check=True, cwd=ROOT,
    )  # fmt: skip
    # As makemessages does: the sources are UTF-8, the template header says CHARSET.
    pot.write_text(pot.read_text(encoding="utf-8").replace("charset=CHARSET", "charset=UTF-8"))
    for language in LANGUAGES:
        po = LOCALE / language / "LC_MESSAGES" / "djangojs.po"
        if not po.exists():
            po.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(LOCALE / language / "LC_MESSAGES" / "django.po", po)
            subprocess.run(["msgattrib", "--no-obsolete", "--only-fuzzy", "-o", str(po), str(po)])
        subprocess.run(
            ["msgmerge", "--quiet", "--update", "--backup=none", "--no-fuzzy-matching",
             "--add-location=file", str(po), str(pot)],
            check=True,
        )  # fmt: skip
    pot.unlink()
    return 0


# What `makemessages` scans (README "Languages"): the product, not its tests or tools.
SKIPPED_DIRS = {".venv", "var", "tests", "contrib", "static", "node_modules", "migrations"}
PY_KEYWORDS = ["gettext_lazy", "ngettext_lazy:1,2", "pgettext:1c,2", "pgettext_lazy:1c,2"]


def _xgettext(language: str, keywords: list[str], files: list[str], cwd: Path) -> set[tuple]:
    """(msgctxt, msgid) of the strings marked in `files` (GNU xgettext)."""
    if not files:
        return set()
    with tempfile.TemporaryDirectory() as tmp:
        pot = Path(tmp) / "out.pot"
        subprocess.run(
            ["xgettext", f"--language={language}", "--from-code=UTF-8",
             *(f"--keyword={k}" for k in keywords), "-o", str(pot), *files],
            check=True, cwd=cwd, capture_output=True,
        )  # fmt: skip
        if not pot.exists():
            return set()
        return {(e.msgctxt, e.msgid) for e in po_parse(pot) if e.msgid}


def marked_strings() -> dict[str, set[tuple]] | None:
    """Per domain, every string the sources mark for translation; None without xgettext.
    Templates go through Django's `templatize`, as makemessages does."""
    if not shutil.which("xgettext"):
        return None
    from django.utils.translation.template import templatize

    py_files, templates = [], []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.endswith(".py"):
                py_files.append(str(path.relative_to(ROOT)))
            elif name.endswith(".html") and "templates" in path.parts:
                templates.append(path)
    django_ids = _xgettext("Python", PY_KEYWORDS, py_files, ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        converted = []
        for number, template in enumerate(templates):
            target = Path(tmp) / f"t{number}.py"
            target.write_text(
                templatize(template.read_text(encoding="utf-8"), origin=str(template))
            )
            converted.append(target.name)
        django_ids |= _xgettext("Python", PY_KEYWORDS, converted, Path(tmp))
    js_files = sorted(
        str(p.relative_to(ROOT)) for d in JS_SOURCES for p in (ROOT / d).rglob("*.js")
    )
    js_keywords = ["t", "tn:1,2", "gettext", "ngettext:1,2"]
    return {"django": django_ids, "djangojs": _xgettext("JavaScript", js_keywords, js_files, ROOT)}


def check() -> int:
    problems = []
    for template in sorted(p for d in TEMPLATE_DIRS for p in d.rglob("*.html")):
        problems += template_problems(template)
    marked = marked_strings()
    if marked is None:
        print("check_i18n: xgettext missing: marked strings not compared with the catalogs")
    for language in LANGUAGES:
        for domain in DOMAINS:
            po = LOCALE / language / "LC_MESSAGES" / f"{domain}.po"
            if not po.exists():
                problems.append(f"{po.relative_to(ROOT)}: missing")
                continue
            problems += po_problems(po)
            known = {(e.msgctxt, e.msgid) for e in po_parse(po)}
            for _context, msgid in sorted((marked or {}).get(domain, set()) - known, key=str):
                problems.append(
                    f"{po.relative_to(ROOT)}: {msgid[:60]!r} is marked in the sources but not "
                    "in the catalog (run makemessages / --extract-js, then translate it)"
                )
    for line in problems:
        print(line)
    print(f"check_i18n: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compile", action="store_true", help="write .mo files (no msgfmt)")
    parser.add_argument("--extract-js", action="store_true", help="update djangojs.po files")
    args = parser.parse_args()
    if args.compile:
        return compile_all()
    if args.extract_js:
        return extract_js()
    return check()


if __name__ == "__main__":
    sys.exit(main())
