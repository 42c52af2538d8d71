"""Ticker linking: which listed companies an event is about, and how much.

Two signals: cashtags (``$AAPL``, ``$BRK.B``; money like ``$5`` or ``$1.2B`` starts with a digit and is
ignored) and company names from the curated dictionary in ``companies.py`` (case-sensitive, whole
words, so "apple pie" is not Apple).

Relevance in [0, 1] separates the subject of an item from a passing mention:

* 1.0  - named at the start of the title (the headline's grammatical subject)
* 0.85 - elsewhere in the title
* 0.9  - at the start of the text (a post's subject)
* 0.7  - in the first sentence of the text
* 0.5 .. 0.3 - later in the text, decaying with position
* the only ticker in an event is its subject: at least 0.9
* among three or more tickers, anything that is not a subject (< 0.9) is scaled by 0.8
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from marketpulse.schemas import TickerMention
from stream.enrich.companies import BY_SYMBOL, COMPANIES, Company, canonical_symbol

# "$" not preceded by a word character or another "$"; letters only (digits mean money); optional
# one-letter share class (".B"); not followed by more letters/digits.
CASHTAG_RE = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:[.-][A-Za-z](?![A-Za-z]))?)(?![\w$])")

# Prefixes wire services put before the real subject ("UPDATE 2-", "BREAKING:").
_LEADING_NOISE = re.compile(r"^(?:(?:BREAKING|UPDATE(?: \d+)?|EXCLUSIVE|WRAPUP(?: \d+)?|ANALYSIS|RPT|CORRECTED)\s*[-:]\s*)+")
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
SUBJECT_WORDS = 3  # a mention with at most this many words before it is in subject position


@dataclass(frozen=True)
class _Hit:
    symbol: str
    matched: str
    relevance: float
    pos: int  # order key: title hits before text hits


class _NameMatcher:
    """One alternation over every alias (longest first, so "J.P. Morgan" beats "Morgan")."""

    def __init__(self, companies: tuple[Company, ...], ignore_case: bool = False):
        self._fold = str.upper if ignore_case else (lambda x: x)
        flags = re.IGNORECASE if ignore_case else 0
        self._by_name: dict[str, Company] = {}
        for c in companies:
            for n in c.names:
                self._by_name.setdefault(self._fold(n), c)
        alt = "|".join(re.escape(n) for n in sorted({n for c in companies for n in c.names}, key=len, reverse=True))
        # Word boundaries that also work for names ending in "." or "&" and possessives ("Apple's").
        self._re = re.compile(rf"(?<![\w&.])(?:{alt})(?![\w&]|-[A-Za-z])", flags)
        self._exclude = {
            c.symbol: [re.compile(p, flags) for p in c.exclude] for c in companies if c.exclude
        }

    def find(self, text: str) -> list[tuple[int, int, Company]]:
        out = []
        for m in self._re.finditer(text):
            company = self._by_name[self._fold(m.group(0))]
            if self._excluded(company, text, m.start(), m.end()):
                continue
            out.append((m.start(), m.end(), company))
        return out

    def _excluded(self, company: Company, text: str, start: int, end: int) -> bool:
        for pat in self._exclude.get(company.symbol, ()):
            lo = max(0, start - 40)
            for em in pat.finditer(text, lo, min(len(text), end + 40)):
                if em.start() < end and em.end() > start:  # overlaps the name
                    return True
        return False


@lru_cache(maxsize=2)
def _default_matcher(ignore_case: bool = False) -> _NameMatcher:
    return _NameMatcher(COMPANIES, ignore_case)


def _words_before(text: str, index: int) -> int:
    return len(_WORD.findall(text[:index]))


def _subject_offset(text: str) -> int:
    m = _LEADING_NOISE.match(text)
    return m.end() if m else 0


def _find(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, symbol, matched) for cashtags and names in one string."""
    found: list[tuple[int, int, str, str]] = []
    for m in CASHTAG_RE.finditer(text):
        raw = m.group(1)
        symbol = canonical_symbol(raw.replace("-", "."))
        # Lower-case cashtags are common in casual posts but also in noise; only trust known ones.
        if not raw.isupper() and symbol not in BY_SYMBOL:
            continue
        found.append((m.start(), m.end(), symbol, m.group(0)))
    # ALL-CAPS headlines ("TESLA SHARES PLUNGE") carry no case signal, so match them case-insensitively.
    shouting = not any(ch.islower() for ch in text)
    for start, end, company in _default_matcher(shouting).find(text):
        found.append((start, end, company.symbol, text[start:end]))
    return found


_JOINER = re.compile(r"^\s*(?:,|/|&|and|or|vs\.?|v\.)?\s*$", re.IGNORECASE)


def _subjects(text: str, found: list[tuple[int, int, str, str]]) -> set[int]:
    """Starts of the mentions in subject position: the first mention if it has at most
    SUBJECT_WORDS words before it, plus mentions joined to it by "," / "and" / "&" ("Apple, Microsoft lead")."""
    base = _subject_offset(text)
    out: set[int] = set()
    prev_end = None
    for start, end, _sym, _m in sorted(found):
        if prev_end is None:
            if start < base or _words_before(text[base:], start - base) > SUBJECT_WORDS:
                break
        elif not _JOINER.match(text[prev_end:start]):
            break
        out.add(start)
        prev_end = end
    return out


def _text_relevance(text: str, start: int, n_words: int) -> float:
    """Relevance of a mention in the body that is not in subject position."""
    before = _words_before(text, start)
    first_end = _SENTENCE_END.search(text)
    first_sentence_end = first_end.start() if first_end else len(text)
    # the opening sentence, capped so one endless sentence is not all "opening"
    if start < first_sentence_end and before <= 25:
        return 0.7
    frac = min(1.0, before / max(1, n_words))
    return 0.5 - 0.2 * frac


def link_tickers(text: str, title: str | None = None) -> list[TickerMention]:
    """Ticker mentions in an event, one per symbol (its highest relevance), most relevant first."""
    hits: list[_Hit] = []
    if title:
        found = _find(title)
        subjects = _subjects(title, found)
        for start, _end, symbol, matched in found:
            hits.append(_Hit(symbol, matched, 1.0 if start in subjects else 0.85, start))
    offset = len(title) + 1 if title else 0
    n_words = len(_WORD.findall(text))
    found = _find(text)
    subjects = _subjects(text, found)
    for start, _end, symbol, matched in found:
        rel = 0.9 if start in subjects else _text_relevance(text, start, n_words)
        hits.append(_Hit(symbol, matched, rel, offset + start))

    best: dict[str, _Hit] = {}
    first_pos: dict[str, int] = {}
    for h in hits:
        first_pos[h.symbol] = min(first_pos.get(h.symbol, h.pos), h.pos)
        cur = best.get(h.symbol)
        if cur is None or h.relevance > cur.relevance:
            best[h.symbol] = h
    scores = {s: h.relevance for s, h in best.items()}
    if len(scores) == 1:
        (only,) = scores
        scores[only] = max(scores[only], 0.9)
    elif len(scores) >= 3:
        scores = {s: (r if r >= 0.9 else r * 0.8) for s, r in scores.items()}
    order = sorted(scores, key=lambda s: (-scores[s], first_pos[s]))
    return [
        TickerMention(symbol=s, relevance=round(min(1.0, max(0.0, scores[s])), 3), matched=best[s].matched)
        for s in order
    ]
