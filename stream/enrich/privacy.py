"""Personal data out before storage: emails and phone numbers redacted, social handles pseudonymised.

Phone patterns are deliberately narrow (international ``+CC ...`` forms and North-American
``(212) 555-0100`` / ``212-555-0100`` forms) because market text is full of numbers that must survive:
prices ("$1,234.56"), percentages, years, dates, share counts and filing names ("10-K").

Handles become ``@user_<8 hex>``, an HMAC-SHA256 of the lower-cased handle under a secret key: the same
account maps to the same pseudonym (so per-author analytics still work) but the mapping cannot be
reversed or recomputed without the key, and rotating the key unlinks old pseudonyms.
"""
from __future__ import annotations

import hashlib
import hmac
import re

EMAIL_TOKEN = "[email]"
PHONE_TOKEN = "[phone]"

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)

PHONE_RE = re.compile(
    r"""
    (?<![\w$€£¥.,/:+-])                     # not glued to a word, price, decimal, date or time
    (?:
        \+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}   # +44 20 7946 0958
      | (?:1[\s.-])?\(\d{3}\)[\s.-]?\d{3}[\s.-]\d{4}                         # (212) 555-0100
      | (?:1[\s.-])?\d{3}([.-])\d{3}\1\d{4}                                  # 212-555-0100, 212.555.0100
      | (?:1\s)?\d{3}\s\d{3}\s\d{4}                                         # 212 555 0100
    )
    (?![\w%/-]|[.,:]\d)                     # not followed by more digits, "%", or a decimal part
    """,
    re.VERBOSE,
)

# A handle needs a letter or underscore somewhere so "sold 100 @12" is not a handle; the lookbehind
# keeps email local parts and "AT@T"-style glue out.
HANDLE_RE = re.compile(r"(?<![\w@./])@([A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*)\b")
_MAX_HANDLE = 50


def _key_bytes(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else key


def redact_emails(text: str) -> str:
    return EMAIL_RE.sub(EMAIL_TOKEN, text)


def redact_phones(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        digits = sum(ch.isdigit() for ch in m.group(0))
        # E.164 numbers have at most 15 digits; fewer than 9 is more likely a figure than a phone.
        return PHONE_TOKEN if 9 <= digits <= 15 else m.group(0)

    return PHONE_RE.sub(repl, text)


def redact_pii(text: str) -> str:
    """Emails first (so their ``@domain`` is never taken for a handle), then phone numbers."""
    return redact_phones(redact_emails(text))


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
