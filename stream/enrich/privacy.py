"""Personal data out before storage: emails (also written as ``name(at)host(dot)com``), phone
numbers, IBANs, payment card numbers and US SSNs redacted, links stripped to where they point,
social handles pseudonymised.

Number patterns are deliberately narrow because market text is full of numbers that must survive:
prices ("$1,234.56"), percentages, years, dates, share counts, ISINs and filing names ("10-K").
Phones are international ``+CC ...`` forms, North-American ``(212) 555-0100`` / ``212-555-0100``,
national forms with a trunk ``0`` (``020 7946 0958``), and space-separated digits only after a word
such as "call" or "tel" ("Revenue 212 555 0100 units" stays). IBANs and cards are checked (mod 97,
Luhn), SSNs must be in issued ranges.

Handles become ``@user_<8 hex>``, an HMAC-SHA256 of the lower-cased handle under a secret key: the same
account maps to the same pseudonym (so per-author analytics still work) but the mapping cannot be
reversed or recomputed without the key, and rotating the key unlinks old pseudonyms.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

EMAIL_TOKEN = "[email]"
PHONE_TOKEN = "[phone]"
IBAN_TOKEN = "[iban]"
CARD_TOKEN = "[card]"
SSN_TOKEN = "[ssn]"

# \w is Unicode: "josé@exämple.de" and "用户@例子.公司" are addresses too. The top-level label is
# letters only, so "v1.2@3.4" is not.
EMAIL_RE = re.compile(
    r"(?<![\w.%+-])\w[\w.%+-]*@\w(?:[\w-]*\w)?(?:\.\w(?:[\w-]*\w)?)*\.[^\W\d_]{2,24}\b"
)
# "jane(at)example(dot)com", "jane [at] example [dot] co [dot] uk", "jane {at} example.com": written
# that way to dodge scrapers, still an address. Bare "at"/"dot" words are left alone ("meet at noon").
_AT = r"\s*[(\[{<]\s*at\s*[)\]}>]\s*"
_DOT = r"(?:\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\.)"
OBFUSCATED_EMAIL_RE = re.compile(
    rf"(?<![\w.%+-])\w[\w.%+-]*{_AT}\w(?:[\w-]*\w)?(?:{_DOT}\w(?:[\w-]*\w)?)*{_DOT}[^\W\d_]{{2,24}}\b",
    re.IGNORECASE,
)

PHONE_RE = re.compile(
    r"""
    (?<![\w$€£¥.,/:+-])                     # not glued to a word, price, decimal, date or time
    (?:
        \+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}   # +44 20 7946 0958
      | (?:1[\s.-])?\(\d{3}\)[\s.-]?\d{3}[\s.-]\d{4}                         # (212) 555-0100
      | (?:1[\s.-])?\d{3}([.-])\d{3}\1\d{4}                                  # 212-555-0100, 212.555.0100
      | 0[1-9]\d{0,3}(?:[\s/-]\d{2,8}){1,4}                                # national trunk 0: 020 7946 0958
    )
    (?![\w%/-]|[.,:]\d)                     # not followed by more digits, "%", or a decimal part
    """,
    re.VERBOSE,
)
# Digits in space-separated groups ("212 555 0100") are as often a figure as a phone, so they are
# a phone only after a word that says so.
CUED_PHONE_RE = re.compile(
    r"""
    \b(?:tel|telephone|phone|ph|mobile|mob|cell|fax|call|text|whatsapp|sms|contact)\b[.:#]?\s*(?:me\s+|us\s+|at\s+|on\s+)?
    (?P<number>(?:1\s)?\d{3}\s\d{3}\s\d{4}|\d{2,4}(?:\s\d{2,4}){2,4})
    (?![\w%/-]|[.,:]\d)
    """,
    re.VERBOSE | re.IGNORECASE,
)

# IBAN: country, check digits, 11-30 alphanumerics, often in groups of four; the mod-97 check
# (ISO 13616) keeps ISINs, order numbers and tickers out.
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
# Payment cards: 13-19 digits, plain or in groups split by one space or dash; Luhn-checked.
CARD_RE = re.compile(r"(?<![\w$€£¥.,/:+-])\d(?:[ -]?\d){12,18}(?![\w%/-]|[.,:]\d)")
# US SSN in its written form; areas 000, 666 and 9xx, group 00 and serial 0000 are never issued.
SSN_RE = re.compile(r"(?<![\w$.,/:+-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w%/-]|[.,:]\d)")

# A handle needs a letter or underscore somewhere so "sold 100 @12" is not a handle; the lookbehind
# keeps email local parts and "AT@T"-style glue out. \w: "@José_Ñ" and "@трейдер" are handles too.
HANDLE_RE = re.compile(r"(?<![\w@./])@(\w*[^\W\d]\w*)")
_MAX_HANDLE = 50


def _key_bytes(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(_digits(number))):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def redact_emails(text: str) -> str:
    return OBFUSCATED_EMAIL_RE.sub(EMAIL_TOKEN, EMAIL_RE.sub(EMAIL_TOKEN, text))


def redact_phones(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        # E.164 numbers have at most 15 digits; fewer than 9 is more likely a figure than a phone.
        return PHONE_TOKEN if 9 <= len(_digits(m.group(0))) <= 15 else m.group(0)

    def cued(m: re.Match[str]) -> str:
        number = m.group("number")
        if not 9 <= len(_digits(number)) <= 15:
            return m.group(0)
        return m.group(0)[: m.start("number") - m.start()] + PHONE_TOKEN

    return CUED_PHONE_RE.sub(cued, PHONE_RE.sub(repl, text))


def redact_financial_ids(text: str) -> str:
    """IBANs, payment card numbers and US SSNs; each checked (mod 97, Luhn, issued ranges) so that
    look-alike figures stay."""
    text = IBAN_RE.sub(lambda m: IBAN_TOKEN if iban_ok(m.group(0)) else m.group(0), text)
    text = CARD_RE.sub(lambda m: CARD_TOKEN if luhn_ok(m.group(0)) else m.group(0), text)
    return SSN_RE.sub(SSN_TOKEN, text)


def redact_pii(text: str) -> str:
    """Emails first (so their ``@domain`` is never taken for a handle), then the checked financial
    ids (a card number must not be half-taken for a phone), then phone numbers."""
    return redact_phones(redact_financial_ids(redact_emails(text)))


def redact_url(url: str | None) -> str | None:
    """A link keeps where it points (scheme, host, path) and loses what identifies a reader: the
    user info, the query string (newsletter links carry ``?email=``, tokens, tracking ids) and the
    fragment. ``mailto:``/``tel:`` links are personal data as a whole."""
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() in ("mailto", "tel", "sms", "callto"):
        return None
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = redact_pii(unquote(parts.path))
    return urlunsplit((parts.scheme, host, quote(path, safe="/[]:@!$&'()*+,;=-._~"), "", "")) or None


def pseudonym(handle: str, key: bytes | str) -> str:
    """``@user_<8 hex>`` for a handle (with or without "@"); case-insensitive like the networks."""
    name = handle.strip().lstrip("@").lower()
    digest = hmac.new(_key_bytes(key), name.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"@user_{digest[:8]}"


def pseudonymize_handles(text: str, key: bytes | str) -> str:
    def repl(m: re.Match[str]) -> str:
        handle = m.group(1)
        if len(handle) > _MAX_HANDLE:
            return m.group(0)
        return pseudonym(handle, key)

    return HANDLE_RE.sub(repl, text)


def pseudonymize_author(author: str | None, key: bytes | str) -> str | None:
    """Social authors are account names: the whole field becomes a pseudonym."""
    if author is None or not author.strip():
        return None
    return pseudonym(author, key)
