"""Masking of personal data in an open comment, before it is stored (the original never is).

Three kinds are replaced by a marker; everything else is left as written:

- Finnish personal identity codes (henkilötunnus): ``DDMMYY`` + century sign + ``NNN`` +
  check character. Century signs: ``+`` (1800s), ``-`` and the 2023 additions ``Y X W V U``
  (1900s), ``A`` and ``B C D E F`` (2000s), upper or lower case. The shape is masked even when
  the check character is wrong: a mistyped code still points at a person. -> ``[HETU]``
- e-mail addresses, also written ``name(at)example.fi`` / ``name [at] example.fi``. -> ``[EMAIL]``
- phone numbers: Finnish national (a leading 0, 7-12 digits: ``040 123 4567``, ``(09) 123 4567``,
  ``050-123 45 67``) and international (``+`` or ``00`` and a country code, 7-15 digits:
  ``+358 40 123 4567``, ``+1 (555) 123-4567``, ``0046 70 123 45 67``). -> ``[PHONE]``

Not masked: dates (``1.12.2026``, ``01-12-2026``, ``2026-12-01``), times (``14:30``,
``klo 8.15``), opening hours (``8-16``), amounts, counts and other numbers without a leading
0 or ``+``. Digits are read after NFKC normalisation, so full-width digits count as digits.
Dots do not join a phone number's groups, because dates and times are written with dots:
``040.123.4567`` is left as it is (docs/counting.md "Open comments" says what masking cannot
promise, and why comments are read by coordinators only).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

HETU = "[HETU]"
EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
MARKERS = (HETU, EMAIL, PHONE)

CHECK_CHARS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
"""The identity code's check character: (DDMMYYNNN as a number) mod 31, read from this string."""
CENTURY_SIGNS = {"+": 1800, "-": 1900, "Y": 1900, "X": 1900, "W": 1900, "V": 1900, "U": 1900,
                 "A": 2000, "B": 2000, "C": 2000, "D": 2000, "E": 2000, "F": 2000}

_HETU_RE = re.compile(r"(?<![0-9A-Za-z])[0-9]{6}\s?[-+A-FU-Ya-fu-y]\s?[0-9]{3}[0-9A-Za-z](?![0-9A-Za-z])")
_LOCAL = r"[\w.!#$%&'*+/=?^`{|}~-]"
_EMAIL_RE = re.compile(
    rf"(?<!{_LOCAL}){_LOCAL}{{1,64}}\s?(?:@|\(at\)|\[at\]|\(a\))\s?[\w-]{{1,63}}(?:\.[\w-]{{1,63}})*"
    r"\.[A-Za-z][A-Za-z0-9-]{1,62}(?![\w-])",
    re.IGNORECASE)
_PHONE_TOKEN = re.compile(r"(?<![0-9A-Za-z+])\+?[0-9]+(?:[-/][0-9]+)*(?![0-9A-Za-z])")
_GAP = re.compile(r"[ \t]{0,2}\(?[ \t]?|[ \t]?\)[ \t]{0,2}\(?|\(\)")
_RANGE_LIKE = re.compile(r"^[0-9]{1,2}-[0-9]{1,2}$")
_DATE_LIKE = re.compile(r"^\(?[0-9]{1,2}[-/][0-9]{1,2}[-/]([0-9]{2}|[0-9]{4})$")


@dataclass(frozen=True)
class Masked:
    """The comment as it may be stored, and how many pieces of each kind were replaced."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def hetu_check(code: str) -> bool:
    """Whether ``code`` is a valid identity code (its date and its check character)."""
    code = code.upper().replace(" ", "")
    if not re.fullmatch(r"[0-9]{6}[-+A-FU-Y][0-9]{3}[0-9A-Y]", code):
        return False
    return CHECK_CHARS[int(code[:6] + code[7:10]) % 31] == code[10]


def _is_phone(candidate: str) -> bool:
    stripped = candidate.strip()
    if _DATE_LIKE.match(stripped):
        return False
    digits = re.sub(r"[^0-9]", "", stripped)
    if stripped.startswith("+"):
        return 7 <= len(digits) <= 15 and digits[0] != "0"
    if digits.startswith("00"):
        return 9 <= len(digits) <= 17 and digits[2] != "0"
    return digits.startswith("0") and 7 <= len(digits) <= 12


def _phones(text: str, counts: dict[str, int]) -> str:
    """Digit groups next to each other (spaces, hyphens, brackets between them) are joined, from
    each group that can start a number (``+``, ``0``) to the longest run that is one. A bracket
    just before the first group, as in ``(09) 123 4567``, goes with the number."""
    tokens = list(_PHONE_TOKEN.finditer(text))
    runs: list[list[re.Match[str]]] = []
    for tok in tokens:
        if runs and _GAP.fullmatch(text[runs[-1][-1].end():tok.start()]):
            runs[-1].append(tok)
        else:
            runs.append([tok])
    spans: list[tuple[int, int]] = []
    for run in runs:
        i = 0
        while i < len(run):
            first = run[i].group(0)
            if not first.startswith(("+", "0")) or _RANGE_LIKE.match(first) or _DATE_LIKE.match(first):
                i += 1
                continue
            for j in range(min(len(run) - 1, i + 7), i - 1, -1):
                parts = run[i:j + 1]
                international = first.startswith(("+", "00"))  # a country code: what follows is no date
                if not international and any(_DATE_LIKE.match(p.group(0)) or _RANGE_LIKE.match(p.group(0))
                                             for p in parts):
                    continue
                if _is_phone(text[run[i].start():run[j].end()]):
                    a = run[i].start()
                    spans.append((a - 1 if a and text[a - 1] == "(" else a, run[j].end()))
                    i = j
                    break
            i += 1
    out: list[str] = []
    last = 0
    for a, b in spans:
        out.append(text[last:a])
        out.append(PHONE)
        last = b
    out.append(text[last:])
    counts["phone"] = counts.get("phone", 0) + len(spans) if spans else counts.get("phone", 0)
    if not counts["phone"]:
        del counts["phone"]
    return "".join(out)


def mask(text: str) -> Masked:
    """``text`` with identity codes, e-mail addresses and phone numbers replaced by markers.

    Idempotent (masking a masked text changes nothing) and local: what is not one of the
    three kinds comes out as it went in (after NFKC normalisation and with control
    characters other than line breaks removed)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    counts: dict[str, int] = {}

    def sub(pattern: re.Pattern[str], marker: str, kind: str, value: str) -> str:
        def one(_m: re.Match[str]) -> str:
            counts[kind] = counts.get(kind, 0) + 1
            return marker

        return pattern.sub(one, value)

    text = sub(_HETU_RE, HETU, "hetu", text)
    text = sub(_EMAIL_RE, EMAIL, "email", text)
    text = _phones(text, counts)
    return Masked(text, counts)
