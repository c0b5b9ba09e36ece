"""Masking an open comment: identity codes, phone numbers and e-mail addresses go, dates,
times and ordinary numbers stay (fleet_server.channels.masking)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fleet_server.channels.masking import CENTURY_SIGNS, CHECK_CHARS, EMAIL, HETU, MARKERS, PHONE, hetu_check, mask

WORDS = st.sampled_from(["Kiitos", "hyvä", "palvelu", "odotin", "lääkäri", "Tack", "bra", "service", "and", "ja",
                         "och", "klo", "huone", "jono", "kävin", "eilen", "—", ",", ".", "!", "?"])
TEXT = st.lists(WORDS, max_size=8).map(" ".join)


def _hetu(day: date, sign: str, number: int) -> str:
    head = f"{day:%d%m}{day.year % 100:02d}"
    return f"{head}{sign}{number:03d}{CHECK_CHARS[int(f'{head}{number:03d}') % 31]}"


SIGNS_BY_CENTURY = {c: [s for s, base in CENTURY_SIGNS.items() if base == c] for c in (1800, 1900, 2000)}
HETUS = st.builds(
    lambda day, pick, number, lower: (_hetu(day, SIGNS_BY_CENTURY[day.year // 100 * 100][pick % len(
        SIGNS_BY_CENTURY[day.year // 100 * 100])], number)).lower() if lower else _hetu(
        day, SIGNS_BY_CENTURY[day.year // 100 * 100][pick % len(SIGNS_BY_CENTURY[day.year // 100 * 100])], number),
    st.dates(min_value=date(1850, 1, 1), max_value=date(2099, 12, 31)), st.integers(0, 5), st.integers(2, 999),
    st.booleans())


def _present(secret: str, masked: str) -> bool:
    return secret.lower() in masked.lower()


@pytest.mark.parametrize("code", ["131052-308T", "010101A123Z", "311299Y9991", "010123B123N", "290200F0023",
                                  "131052+308T", "010594W1234", "131052-308t"])
def test_identity_codes_with_every_century_sign_are_masked(code):
    out = mask(f"Minun hetuni on {code}, soittakaa.")
    assert out.text == f"Minun hetuni on {HETU}, soittakaa." and out.counts == {"hetu": 1}


def test_the_check_character_is_computed_as_the_population_register_does():
    assert hetu_check("131052-308T") and not hetu_check("131052-308U")
    assert hetu_check(_hetu(date(2023, 1, 1), "B", 123)) and hetu_check(_hetu(date(1999, 12, 31), "Y", 999))


@given(prefix=TEXT, code=HETUS, suffix=TEXT)
@settings(max_examples=300, deadline=None)
def test_any_identity_code_in_any_sentence_is_masked(prefix, code, suffix):
    out = mask(f"{prefix} {code} {suffix}")
    assert not _present(code, out.text) and HETU in out.text and out.counts.get("hetu") == 1


@pytest.mark.parametrize("phone", [
    "040 123 4567", "0401234567", "040-1234567", "050 123 45 67", "050-123 45 67", "(09) 123 4567", "09 1234 5678",
    "020 123 456", "+358 40 123 4567", "+358401234567", "+358 (0)40 123 4567", "00358 40 123 4567",
    "+46 70 123 45 67", "0046 70 123 45 67", "+1 (555) 123-4567", "+44 20 7946 0958", "+49 30 901820",
])
def test_finnish_and_international_phone_numbers_are_masked(phone):
    out = mask(f"Soittakaa minulle numeroon {phone} kiitos.")
    assert out.text == f"Soittakaa minulle numeroon {PHONE} kiitos.", out.text


def _mobile(op: str, rest: str, style: str) -> str:
    return style.format(op=op, op_=op[1:], a=rest[:3], b=rest[3:], c=rest[3:5], d=rest[5:])


@given(prefix=TEXT, op=st.sampled_from(["040", "041", "044", "045", "046", "050"]),
       rest=st.text("0123456789", min_size=7, max_size=7),
       style=st.sampled_from(["{op} {a} {b}", "{op}{a}{b}", "{op}-{a}{b}", "{op} {a} {c} {d}", "({op}) {a} {b}",
                              "+358 {op_} {a} {b}", "+358{op_}{a}{b}", "00358 {op_} {a} {b}", "+358 (0){op_} {a} {b}"]),
       suffix=TEXT)
@settings(max_examples=300, deadline=None)
def test_any_mobile_number_in_any_format_is_masked(prefix, op, rest, style, suffix):
    phone = _mobile(op, rest, style)
    out = mask(f"{prefix} {phone} {suffix}")
    assert rest not in out.text.replace(" ", "").replace("-", "") and PHONE in out.text, out.text


@pytest.mark.parametrize("address", ["matti.meikalainen@example.fi", "a+b@sub.example.com", "Anna_S@kunta.fi",
                                     "matti(at)example.fi", "matti [at] example.fi", "äiti@esimerkki.fi"])
def test_email_addresses_are_masked(address):
    out = mask(f"Vastatkaa osoitteeseen {address}, kiitos")
    assert out.text == f"Vastatkaa osoitteeseen {EMAIL}, kiitos" and out.counts == {"email": 1}


@given(prefix=TEXT, address=st.emails(), suffix=TEXT)
@settings(max_examples=300, deadline=None)
@example(prefix="", address="0401234567@example.fi", suffix="")
def test_any_email_address_is_masked(prefix, address, suffix):
    out = mask(f"{prefix} {address} {suffix}")
    assert "@" not in out.text and EMAIL in out.text, (address, out.text)


@pytest.mark.parametrize("text", [
    "Kävin 1.12.2026 klo 14:30 ja odotin 45 minuuttia.", "Aika oli 01.12.2026 kello 08.15.",
    "Ajanvaraus 01-12-2026, 2026-12-01 tai 1/12/2026.", "Auki ma-pe 8-16, la 08-14 17-20, 0-24 päivystys.",
    "Maksoin 1 200 € ja 35,50 euroa, vuonna 2025 kolme kertaa.", "Huone 12, jononumero A123, kerros 3.",
    "Odotin 2 h 15 min (noin 135 min).", "Lääkäri soitti 3 kertaa klo 9.00-10.00.", "Tack för 2025!",
    "Puhelinaika 12-13.", "Sain ajan 5.1. klo 10.", "Kello 23:59:59.", "+5 astetta ulkona",
])
def test_dates_times_and_ordinary_numbers_are_not_masked(text):
    out = mask(text)
    assert out.text == text and out.counts == {}


@given(day=st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
       fmt=st.sampled_from(["{d}.{m}.{y}", "{dd}.{mm}.{y}", "{y}-{mm}-{dd}", "{dd}-{mm}-{y}", "{d}/{m}/{y}",
                            "{d}.{m}.", "{dd}.{mm}.{yy}"]),
       hour=st.integers(0, 23), minute=st.integers(0, 59),
       tfmt=st.sampled_from(["klo {h}.{mi}", "{hh}:{mi}", "kello {hh}.{mi}", "{h}-{h2}"]), amount=st.integers(0, 10**7))
@settings(max_examples=400, deadline=None)
def test_any_date_time_or_amount_is_left_as_written(day, fmt, hour, minute, tfmt, amount):
    when = fmt.format(d=day.day, m=day.month, dd=f"{day.day:02d}", mm=f"{day.month:02d}", y=day.year,
                      yy=f"{day.year % 100:02d}")
    clock = tfmt.format(h=hour, hh=f"{hour:02d}", mi=f"{minute:02d}", h2=min(hour + 2, 24))
    text = f"Kävin {when} {clock} ja maksoin {amount} euroa, {amount:,} €".replace(",", " ")
    out = mask(text)
    assert out.text == text, out.text


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_masking_is_idempotent_and_keeps_its_markers(text):
    once = mask(text)
    twice = mask(once.text)
    assert twice.text == once.text and twice.counts == {}
    assert all(once.text.count(m) >= text.count(m) for m in MARKERS)


def test_full_width_digits_are_read_as_digits():
    assert mask("０４０ １２３ ４５６７").text == PHONE


@given(prefix=TEXT, country=st.integers(1, 998), groups=st.lists(st.text("0123456789", min_size=2, max_size=4),
                                                                 min_size=2, max_size=4),
       sep=st.sampled_from([" ", "-", ""]), suffix=TEXT)
@settings(max_examples=300, deadline=None)
def test_any_international_number_is_masked(prefix, country, groups, sep, suffix):
    digits = str(country) + "".join(groups)
    if not 7 <= len(digits) <= 15:
        return
    phone = f"+{country} " + sep.join(groups)
    out = mask(f"{prefix} {phone} {suffix}")
    assert "+" + str(country) not in out.text and PHONE in out.text, (phone, out.text)
