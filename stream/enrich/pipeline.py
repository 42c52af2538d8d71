"""The enrichment step between validation and the classifier.

Order matters: clean first (so patterns see plain text), then remove personal data (so nothing
stored or sent on carries it), then derive what the model and the alerting need.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from marketpulse.schemas import RawEvent, TickerMention
from marketpulse.text import clean_optional, clean_text, event_model_text
from stream.enrich.novelty import NoveltyIndex
from stream.enrich.privacy import pseudonymize_author, pseudonymize_handles, redact_pii, redact_url
from stream.enrich.tickers import link_tickers


class EnrichError(ValueError):
    """The event has nothing left to classify after cleaning (e.g. a text that was only HTML)."""

    reason = "empty_text"


@dataclass(frozen=True)
class Enriched:
    event: RawEvent                # cleaned, privacy-safe: the only form that may be stored
    model_text: str                # what the classifier sees (title + text, no URLs)
    tickers: list[TickerMention] = field(default_factory=list)
    novelty: float = 100.0
    duplicate_of: str | None = None



def scrub(raw: RawEvent, pseudonym_key: bytes | str) -> RawEvent:
    """Cleaned and privacy-safe copy of an event (no novelty or tickers): usable on its own, e.g. to
    store events from a replay without touching the novelty window."""
    text = clean_text(raw.text)
    title = clean_optional(raw.title)
    author = clean_optional(raw.author)
    text = redact_pii(text)
    title = redact_pii(title) if title else None
    if raw.source == "social":
        text = pseudonymize_handles(text, pseudonym_key)
        title = pseudonymize_handles(title, pseudonym_key) if title else None
        author = pseudonymize_author(author, pseudonym_key)
    elif author:
        author = redact_pii(author)  # bylines stay, but not a journalist's email or phone
    if not text:
        raise EnrichError(f"event {raw.id!r}: text is empty after removing HTML and whitespace")
    # model_copy skips validation; every field here only got shorter or was already valid
    return raw.model_copy(update={"text": text, "title": title, "author": author, "url": redact_url(raw.url)})


class Enricher:
    """``enrich(raw)`` for every validated event; keep one per worker (the novelty window is state)."""

    def __init__(self, pseudonym_key: bytes | str, novelty: NoveltyIndex | None = None):
        if not pseudonym_key:
            raise ValueError("pseudonym_key must not be empty")
        self._key = pseudonym_key
        self.novelty = novelty if novelty is not None else NoveltyIndex()

    def enrich(self, raw: RawEvent, ts: datetime | float | None = None) -> Enriched:
        """Clean, redact, link tickers, score novelty. ``ts`` (default: ``published_at``) places the
        event in the novelty window; event time keeps replays and tests deterministic.
        Raises EnrichError when nothing is left of the text."""
        event = scrub(raw, self._key)
        mtext = event_model_text(event)
        if not mtext:
            raise EnrichError(f"event {raw.id!r}: no text left once URLs are removed")
        tickers = link_tickers(event.text, event.title)
        # Same words about different companies are not copies of each other (templated posts).
        key = ",".join(sorted(t.symbol for t in tickers))
        novelty, duplicate_of = self.novelty.check_and_add(
            event.id, mtext, ts if ts is not None else event.published_at, key=key
        )
        return Enriched(event=event, model_text=mtext, tickers=tickers, novelty=novelty, duplicate_of=duplicate_of)
