"""Keep the gettext catalogues in step with the code: extract, update, compile, check.

    python -m kiosk.i18n.catalog update    # new texts into every .po (English filled in)
    python -m kiosk.i18n.catalog compile   # .po -> .mo (commit both)
    python -m kiosk.i18n.catalog check     # what tests/kiosk/test_i18n.py asserts

Texts are found in ``_("...")`` calls in the .kv files and in ``_()`` /
``N_()`` calls in the Python modules listed in SOURCES (the .kv files get a small
regex because Babel has no kv extractor). The .po/.mo work is the dashboard's too:
palaute_wire.catalog_tool.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file

from palaute_wire.catalog_tool import FIXED_DATE, CatalogTool, add_message

from . import DOMAIN, LANGUAGES, LOCALE_DIR

KIOSK_DIR = Path(__file__).resolve().parent.parent
SOURCES = ("ui/*.kv", "ui/*.py", "audio.py")
"""Globs under kiosk/ whose texts the patient or staff can see or hear."""

_KV_CALL = re.compile(r"""\b_\(\s*(?P<q>["'])(?P<text>(?:\\.|(?!(?P=q)).)*)(?P=q)""")
_KEYWORDS = {"_": None, "N_": None}


def source_files(root: Path = KIOSK_DIR) -> list[Path]:
    return sorted({p for pattern in SOURCES for p in root.glob(pattern)})


def extract(root: Path = KIOSK_DIR) -> Catalog:
    """Every UI text in the sources, as a template catalogue."""
    template = Catalog(domain=DOMAIN, creation_date=FIXED_DATE)
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".kv":
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for match in _KV_CALL.finditer(line):
                    text = match.group("text").encode().decode("unicode_escape")
                    template.add(text, locations=[(rel, lineno)])
        else:
            for lineno, message, _comments, _context in extract_from_file(
                "python", str(path), keywords=_KEYWORDS
            ):
                add_message(template, message, (rel, lineno))
    return template


_KV_LITERAL_TEXT = re.compile(r"""^\s*text:\s*(?P<q>["'])(?P<text>[^"']*)(?P=q)\s*$""")
_WORD = re.compile(r"[^\W\d_]{2,}")
_MARKERS = {"_", "N_", "tr", "gettext"}
_QUIET_CALLS = {"debug", "info", "warning", "error", "exception", "critical", "getLogger"}
"""Log lines are for the journal (English by design), not for patients or staff."""


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def stray_texts(root: Path = KIOSK_DIR) -> list[str]:
    """Texts a person could see or hear that the catalogue cannot translate.

    - a ``_()``/``N_()``/``tr()`` text that extraction never saw (inside an f-string,
      where Babel does not look);
    - words in an f-string's own text (outside the catalogue by construction);
    - a literal ``text: "words"`` in a .kv file.
    Log messages and exceptions are for the journal and are skipped.
    """
    known = {m.id for m in extract(root) if m.id}
    found: list[str] = []
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8")
        if path.suffix == ".kv":
            for lineno, line in enumerate(source.splitlines(), 1):
                match = _KV_LITERAL_TEXT.match(line)
                if match and _WORD.search(match.group("text")):
                    found.append(f"{rel}:{lineno}: text {match.group('text')!r} is not from the catalogue; use _()")
            continue
        tree = ast.parse(source)
        quiet: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in _QUIET_CALLS or isinstance(node, ast.Raise):
                quiet.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if id(node) in quiet:
                continue
            if isinstance(node, ast.Call) and _call_name(node) in _MARKERS and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value not in known:
                    found.append(f"{rel}:{node.lineno}: {arg.value!r} is marked but extraction never finds it "
                                 "(inside an f-string?); mark it in a plain call")
            elif isinstance(node, ast.JoinedStr):
                words = [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str) and _WORD.search(v.value)]
                if words:
                    found.append(f"{rel}:{node.lineno}: f-string text {words[0]!r} is not from the catalogue; "
                                 "put the words in a catalogue text with {placeholders}")
    return found


TOOL = CatalogTool(domain=DOMAIN, locale_dir=LOCALE_DIR, languages=LANGUAGES, extract=extract,
                   command="python -m kiosk.i18n.catalog", extra_problems=stray_texts)
po_path, read_catalog, update, compile_all, problems, main = (
    TOOL.po_path, TOOL.read_catalog, TOOL.update, TOOL.compile_all, TOOL.problems, TOOL.main)


if __name__ == "__main__":
    sys.exit(main())
