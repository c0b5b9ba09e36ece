"""Keep the gettext catalogues in step with the code: extract, update, compile, check.

    python -m kiosk.i18n.catalog update    # new texts into every .po (English filled in)
    python -m kiosk.i18n.catalog compile   # .po -> .mo (commit both)
    python -m kiosk.i18n.catalog check     # what tests/kiosk/test_i18n.py asserts

Texts are found in ``_("...")`` calls in the .kv files and in ``_()`` /
``N_()`` calls in the Python modules listed in SOURCES. Babel does the .po/.mo
work; the .kv files get a small regex because Babel has no kv extractor.
"""

from __future__ import annotations

import ast
import io
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from . import DOMAIN, LANGUAGES, LOCALE_DIR

_LOGGER = logging.getLogger(__name__)

KIOSK_DIR = Path(__file__).resolve().parent.parent
SOURCES = ("ui/*.kv", "ui/*.py", "audio.py")
"""Globs under kiosk/ whose texts the patient or staff can see or hear."""

_KV_CALL = re.compile(r"""\b_\(\s*(?P<q>["'])(?P<text>(?:\\.|(?!(?P=q)).)*)(?P=q)""")
_FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
_KEYWORDS = {"_": None, "N_": None}


def source_files(root: Path = KIOSK_DIR) -> list[Path]:
    return sorted({p for pattern in SOURCES for p in root.glob(pattern)})


def extract(root: Path = KIOSK_DIR) -> Catalog:
    """Every UI text in the sources, as a template catalogue."""
    template = Catalog(domain=DOMAIN, creation_date=_FIXED_DATE)
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
                if isinstance(message, str) and message:
                    template.add(message, locations=[(rel, lineno)])
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


def po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str, locale_dir: Path = LOCALE_DIR) -> Catalog:
    with po_path(lang, locale_dir).open("rb") as handle:
        return read_po(handle, locale=lang, domain=DOMAIN)


def compiled(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def update(locale_dir: Path = LOCALE_DIR) -> None:
    """Merge the extracted texts into every language's .po (kept: existing translations)."""
    template = extract()
    for lang in LANGUAGES:
        path = po_path(lang, locale_dir)
        if path.exists():
            catalog = read_catalog(lang, locale_dir)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=lang, domain=DOMAIN, creation_date=_FIXED_DATE)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        if lang == "en":
            for message in catalog:
                if message.id and not message.string:
                    message.string = message.id
        catalog.project, catalog.version = "palaute", "1"
        catalog.revision_date = _FIXED_DATE
        catalog.fuzzy = False  # the header is reviewed with the texts
        with path.open("wb") as handle:
            write_po(handle, catalog, width=88, include_lineno=False, sort_output=False)
        _LOGGER.info("updated %s", path)


def compile_all(locale_dir: Path = LOCALE_DIR) -> None:
    for lang in LANGUAGES:
        mo = po_path(lang, locale_dir).with_suffix(".mo")
        mo.write_bytes(compiled(read_catalog(lang, locale_dir)))
        _LOGGER.info("compiled %s", mo)


def _text(string: str | tuple[str, ...] | list[str]) -> str:
    """A message id or translation as one text; a plural's forms joined."""
    return string if isinstance(string, str) else " ".join(string)


def problems(locale_dir: Path = LOCALE_DIR) -> list[str]:
    """Everything that would make a patient see an untranslated or outdated text."""
    found: list[str] = stray_texts()
    wanted = {m.id for m in extract() if m.id}
    for lang in LANGUAGES:
        path = po_path(lang, locale_dir)
        if not path.exists():
            found.append(f"{path}: missing; run `python -m kiosk.i18n.catalog update`")
            continue
        catalog = read_catalog(lang, locale_dir)
        for msgid in sorted(wanted):
            message = catalog.get(msgid)
            if message is None:
                found.append(f"{lang}: {msgid!r} is not in {path.name}; run `... catalog update`")
            elif not message.string or message.fuzzy:
                found.append(f"{lang}: {msgid!r} has no (or only a fuzzy) translation")
            elif set(re.findall(r"{\w*}", _text(msgid))) != set(re.findall(r"{\w*}", _text(message.string))):
                found.append(f"{lang}: {msgid!r} translation changes the {{placeholders}}")
        mo = path.with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compiled(catalog):
            found.append(f"{mo}: stale or missing; run `python -m kiosk.i18n.catalog compile`")
    return found


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    verb = (argv if argv is not None else sys.argv[1:] or ["check"])[0]
    if verb == "update":
        update()
    elif verb == "compile":
        compile_all()
    elif verb == "check":
        issues = problems()
        for line in issues:
            print(line)
        return 1 if issues else 0
    else:
        print("usage: python -m kiosk.i18n.catalog update|compile|check", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
