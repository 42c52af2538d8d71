"""Text normalisation before anything is stored or classified, and what the classifier sees.

Feeds deliver HTML fragments, entities, odd Unicode forms (full-width letters, ligatures, non-breaking
spaces) and ragged whitespace. ``clean_text`` turns them into one plain, comparable line; ``model_text``
additionally drops URLs, which carry no sentiment and only waste the classifier's token budget (the
URL stays in ``RawEvent.url`` and in the stored text).
"""
from __future__ import annotations

import html
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from marketpulse.schemas import RawEvent

# Tag-like only (letter, "/" or "!" after "<"), so "x < 5 and y > 3" in plain prose survives.
_TAG = re.compile(r"<(?:[A-Za-z!/?][^<>]*)>")
# Inline tags vanish ("<b>re</b>call" -> "recall"); any other tag becomes a space so blocks don't glue.
_INLINE_TAG = re.compile(r"</?(?:a|b|i|u|em|strong|span|small|sup|sub|font|abbr|code|mark)\b[^<>]*>", re.IGNORECASE)
_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# Zero-width characters, bidirectional overrides/isolates and C0/C1 controls (except whitespace)
# are invisible: they defeat duplicate detection and ticker matching, and bidi overrides can make
# a post read differently from what it says.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WS = re.compile(r"\s+")
URL_RE = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>\"']+", re.IGNORECASE)


def strip_html(text: str) -> str:
    """Remove tags (replaced by a space so words don't glue) and unescape entities.

    Runs twice because RSS descriptions are often HTML escaped once more (``&lt;p&gt;``).
    """
    for _ in range(2):
        text = _SCRIPT_STYLE.sub(" ", text)
        text = _COMMENT.sub(" ", text)
        text = _INLINE_TAG.sub("", text)
        text = _TAG.sub(" ", text)
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return text


def collapse_whitespace(text: str) -> str:
    return _WS.sub(" ", text).strip()


def clean_text(text: str) -> str:
    """HTML stripped and unescaped, NFKC-normalised, invisible characters removed, one line."""
    text = strip_html(text)
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    return collapse_whitespace(text)


def clean_optional(text: str | None) -> str | None:
    """``clean_text`` for optional fields: empty after cleaning becomes None."""
    if text is None:
        return None
    cleaned = clean_text(text)
    return cleaned or None


def remove_urls(text: str) -> str:
    return collapse_whitespace(URL_RE.sub(" ", text))


def model_text(text: str, title: str | None = None) -> str:
    """What the classifier sees: title (when not already the start of the text) + text, no URLs.

    Expects already cleaned input (``clean_text``).
    """
    body = remove_urls(text)
    head = remove_urls(title) if title else ""
    if head and not body.lower().startswith(head.lower()):
        sep = " " if head[-1:] in ".!?:;" else ". "
        body = f"{head}{sep}{body}" if body else head
    return body


def event_model_text(event: "RawEvent") -> str:
    """What the classifier sees for a stored (cleaned) event: the worker labels this, and a replay
    with ``--rescore`` classifies exactly the same, so its labels reproduce the live ones."""
    return model_text(event.text, event.title)
