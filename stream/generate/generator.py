"""Deterministic synthetic stream for demos, load tests and end-to-end tests.

A background Poisson process of news headlines and social posts (varied topics and sentiment, about
~50 real large caps), with some of the same stories re-published by other feeds or retweeted
(near-duplicates), some posts carrying fictional emails/phone numbers (to exercise redaction), plus
scenario streams such as a negative burst about one ticker. Every random choice comes from
``random.Random`` seeded with strings derived from ``seed``, so a seed reproduces the stream exactly.
"""
from __future__ import annotations

import heapq
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from marketpulse.schemas import RawEvent, stable_id
from stream.enrich.companies import BY_SYMBOL, Company
from stream.generate import templates as T
from stream.generate.scenarios import NegativeBurst, Scenario, parse_scenario

# ~50 tickers across sectors, so every topic has companies to talk about.
GEN_TICKERS: tuple[str, ...] = (
    "AAPL", "MSFT", "GOOGL", "AMZN", "META", "NVDA", "TSLA", "NFLX", "AMD", "INTC", "ORCL", "CRM",
    "ADBE", "AVGO", "QCOM", "IBM", "MU", "PLTR", "UBER", "SHOP", "COIN", "PYPL", "DIS", "NKE", "SBUX",
    "MCD", "WMT", "COST", "TGT", "KO", "PEP", "JNJ", "PFE", "LLY", "MRNA", "UNH", "BA", "CAT", "GE",
    "F", "GM", "JPM", "BAC", "GS", "MS", "WFC", "C", "XOM", "CVX", "COP", "OXY", "FCX", "NEM",
)
SENTIMENT_WEIGHTS = (0.3, 0.4, 0.3)
REPORTERS = ("Dana Whitfield", "Marcus Lee", "Priya Raman", "Tom Okafor", "Elena Rossi", "Sam Carter")
BURST_NEWS_TOPICS = ("Legal | Regulation", "Company | Product News", "Earnings", "Personnel Change",
                     "Legal | Regulation", "Company | Product News")
MALFORMED_KINDS = ("not_json", "not_utf8", "not_object", "missing_field", "empty_text", "nul_bytes", "bad_date")


@dataclass(frozen=True)
class Sample:
    """One generated event with the ground truth it was generated from."""

    offset_s: float
    event: RawEvent
    sentiment: str
    topic: str
    ticker: str | None
    scenario: str | None = None
    duplicate_of: str | None = None  # id of the original story this re-publishes


@dataclass(frozen=True)
class RawRecord:
    offset_s: float
    source: str              # "news" | "social": which raw topic
    key: bytes
    value: bytes
    malformed: str | None    # a MALFORMED_KINDS entry, or None for a valid RawEvent


def _slug(text: str, words: int = 8) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:words])


class Generator:
    """``for offset_s, event in Generator(seed=1, rate_per_s=20, duration_s=60): ...``"""

    def __init__(
        self,
        seed: int = 0,
        rate_per_s: float = 10.0,
        duration_s: float = 60.0,
        scenarios: Iterable[Scenario | str] = (),
        start: datetime | None = None,
        *,
        social_fraction: float = 0.5,
        duplicate_fraction: float = 0.05,
        pii_fraction: float = 0.05,
        malformed_fraction: float = 0.0,
        tickers: Iterable[str] = GEN_TICKERS,
    ):
        if rate_per_s < 0 or duration_s < 0:
            raise ValueError("rate_per_s and duration_s must be >= 0")
        for name, frac in (("social_fraction", social_fraction), ("duplicate_fraction", duplicate_fraction),
                           ("pii_fraction", pii_fraction), ("malformed_fraction", malformed_fraction)):
            if not 0.0 <= frac <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        self.seed = seed
        self.rate_per_s = rate_per_s
        self.duration_s = duration_s
        self.scenarios: list[Scenario] = [parse_scenario(s) if isinstance(s, str) else s for s in scenarios]
        start = start or datetime.now(timezone.utc).replace(microsecond=0)
        self.start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
        self.social_fraction = social_fraction
        self.duplicate_fraction = duplicate_fraction
        self.pii_fraction = pii_fraction
        self.malformed_fraction = malformed_fraction
        self.companies: list[Company] = [BY_SYMBOL[t] for t in tickers]
        if not self.companies:
            raise ValueError("need at least one ticker")

    # -- public API -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[float, RawEvent]]:
        return self.events()

    def events(self) -> Iterator[tuple[float, RawEvent]]:
        """``(offset_s, RawEvent)`` in time order."""
        for s in self.samples():
            yield s.offset_s, s.event

    def samples(self) -> Iterator[Sample]:
        """Events with their ground truth (sentiment, topic, ticker, scenario), in time order."""
        streams = [self._stream(random.Random(f"{self.seed}:background"), 0.0, self.duration_s,
                                self.rate_per_s, None)]
        for i, sc in enumerate(self.scenarios):
            end = min(sc.end_s, self.duration_s)
            streams.append(self._stream(random.Random(f"{self.seed}:scenario:{i}"), sc.start_s, end,
                                        sc.rate_per_s, sc))
        return heapq.merge(*streams, key=lambda s: s.offset_s)

    def records(self) -> Iterator[tuple[float, str, bytes, bytes]]:
        """``(offset_s, source, key, value)`` ready for Kafka; with ``malformed_fraction`` > 0 some
        values are broken on purpose (see MALFORMED_KINDS) to exercise validation and dead-lettering."""
        for r in self.raw_records():
            yield r.offset_s, r.source, r.key, r.value

    def raw_records(self) -> Iterator["RawRecord"]:
        """Like ``records()``, also saying which records are malformed and how."""
        rng = random.Random(f"{self.seed}:malformed")
        for s in self.samples():
            key = s.event.id.encode()
            kind = None
            if self.malformed_fraction and rng.random() < self.malformed_fraction:
                kind = rng.choice(MALFORMED_KINDS)
                value = malformed_value(s.event, kind)
            else:
                value = s.event.model_dump_json(exclude_none=True).encode()
            yield RawRecord(s.offset_s, s.event.source, key, value, kind)

    # -- streams ----------------------------------------------------------------------------------

    def _stream(self, rng: random.Random, t0: float, t1: float, rate: float, sc: Scenario | None) -> Iterator[Sample]:
        """Poisson arrivals in [t0, t1); copies (duplicates) are queued and released in time order."""
        pending: list[tuple[float, int, Sample]] = []
        counter = 0
        t = t0
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= t1:
                break
            while pending and pending[0][0] <= t:
                yield heapq.heappop(pending)[2]
            sample = self._burst_sample(rng, t, sc) if sc is not None else self._background_sample(rng, t)
            yield sample
            if rng.random() < self.duplicate_fraction:
                for copy in self._copies(rng, sample):
                    if copy.offset_s < self.duration_s:
                        counter += 1
                        heapq.heappush(pending, (copy.offset_s, counter, copy))
        while pending:
            yield heapq.heappop(pending)[2]

    def _background_sample(self, rng: random.Random, t: float) -> Sample:
        sentiment = rng.choices(T.SENTIMENTS, SENTIMENT_WEIGHTS)[0]
        topic = rng.choice(T.TOPICS)
        if rng.random() < self.social_fraction:
            company = rng.choice(self.companies)
            text = self._post(rng, rng.choice(T.SOCIAL[sentiment]), company, sentiment)
            return self._social(rng, t, text, sentiment, topic_for_social(topic, sentiment), company, None)
        company = self._company_for(rng, topic)
        title = self._fill(rng, rng.choice(T.NEWS[topic][sentiment]), company, sentiment)
        has_company = company.name in title
        return self._news(rng, t, title, sentiment, topic, company if has_company else None, None)

    def _burst_sample(self, rng: random.Random, t: float, sc: NegativeBurst) -> Sample:
        company = BY_SYMBOL[sc.ticker]
        if rng.random() < sc.social_fraction:
            text = self._post(rng, rng.choice(T.BURST_SOCIAL), company, "negative")
            return self._social(rng, t, text, "negative", "Stock Movement", company, sc.name)
        i = rng.randrange(len(T.BURST_NEWS))
        title = self._fill(rng, T.BURST_NEWS[i], company, "negative")
        return self._news(rng, t, title, "negative", BURST_NEWS_TOPICS[i], company, sc.name)

    # -- builders ---------------------------------------------------------------------------------

    def _company_for(self, rng: random.Random, topic: str) -> Company:
        sectors = T.TOPIC_SECTORS.get(topic)
        pool = [c for c in self.companies if sectors is None or c.sector in sectors] or self.companies
        return rng.choice(pool)

    def _fill(self, rng: random.Random, template: str, company: Company, sentiment: str) -> str:
        peers = [c for c in self.companies if c.symbol != company.symbol] or self.companies
        return template.format(
            co=company.name, tk=company.symbol, peer=rng.choice(peers).name, firm=rng.choice(T.FIRMS),
            pct=f"{rng.uniform(1.5, 18.0):.1f}%", pct2=f"{rng.uniform(3.8, 5.2):.2f}%",
            px=f"${rng.uniform(15, 900):,.2f}", amt=f"${rng.choice((0.5, 1.2, 2.5, 4, 7.5, 12, 30))} billion",
            q=rng.choice(("Q1", "Q2", "Q3", "Q4")), role=rng.choice(T.ROLES), bp=rng.choice(("25", "50")),
            n=f"{rng.randint(2, 900) * 1000:,}", emo=rng.choice(T.EMOJI[sentiment]),
            year=rng.choice(("2008", "2020", "2022")),
        ).strip()

    def _post(self, rng: random.Random, template: str, company: Company, sentiment: str) -> str:
        tail = self._fill(rng, rng.choice(T.SOCIAL_TAILS[sentiment]), company, sentiment)
        text = self._fill(rng, template, company, sentiment)
        return f"{text} {tail}" if tail else text

    def _news(self, rng: random.Random, t: float, title: str, sentiment: str, topic: str,
              company: Company | None, scenario: str | None) -> Sample:
        feed, domain = rng.choice(T.NEWS_FEEDS)
        detail = self._fill(rng, rng.choice(T.NEWS_DETAILS[sentiment]), company or self.companies[0], sentiment)
        text = " ".join(p for p in (f"{title}.", rng.choice(T.NEWS_BODY[sentiment]), detail) if p)
        url = f"https://{domain}/markets/{_slug(title)}-{rng.randrange(10**8):08d}"
        event = RawEvent(
            id=stable_id("news", url, text), source="news", source_name=feed,
            published_at=self.start + timedelta(seconds=t), text=text, title=title, url=url,
            author=rng.choice(REPORTERS) if rng.random() < 0.6 else None,
        )
        return Sample(t, event, sentiment, topic, company.symbol if company else None, scenario)

    def _handle(self, rng: random.Random) -> str:
        a, b = T.HANDLE_PARTS
        return f"@{rng.choice(a)}{rng.choice(b)}{rng.randrange(100) if rng.random() < 0.5 else ''}"

    def _social(self, rng: random.Random, t: float, text: str, sentiment: str, topic: str,
                company: Company, scenario: str | None) -> Sample:
        network, domain = rng.choice(T.SOCIAL_NETWORKS)
        author = self._handle(rng)
        if rng.random() < 0.2:
            text = f"{self._handle(rng)} {text}"  # a reply
        if rng.random() < self.pii_fraction:
            snippet = rng.choice(T.PII_SNIPPETS).format(
                user=author[1:].lower(), d2=f"{rng.randrange(100):02d}", d3=f"{rng.randrange(1000):03d}")
            text = f"{text} — {snippet}"
        url = f"https://{domain}/{author[1:]}/status/{rng.randrange(10**15, 10**16)}"
        event = RawEvent(
            id=stable_id("social", url, text), source="social", source_name=network,
            published_at=self.start + timedelta(seconds=t), text=text, url=url, author=author,
        )
        return Sample(t, event, sentiment, topic, company.symbol, scenario)

    def _copies(self, rng: random.Random, original: Sample) -> list[Sample]:
        """The same story re-published: other feeds (changed casing/punctuation, a wire prefix,
        new URL) for news, retweets for social posts."""
        out = []
        ev = original.event
        for _ in range(rng.randint(1, 3)):
            t = original.offset_s + rng.uniform(0.5, 30.0)
            if ev.source == "news":
                feed, domain = rng.choice([f for f in T.NEWS_FEEDS if f[0] != ev.source_name])
                title = _variant(rng, ev.title or ev.text)
                text = _variant(rng, ev.text)
                url = f"https://{domain}/news/{_slug(title)}-{rng.randrange(10**8):08d}"
                copy = ev.model_copy(update={
                    "id": stable_id("news", url, text), "source_name": feed, "title": title, "text": text,
                    "url": url, "published_at": self.start + timedelta(seconds=t), "author": None,
                })
            else:
                author = self._handle(rng)
                text = f"RT {ev.author}: {ev.text}"
                url = f"https://{ev.url.split('/')[2]}/{author[1:]}/status/{rng.randrange(10**15, 10**16)}"
                copy = ev.model_copy(update={
                    "id": stable_id("social", url, text), "text": text, "url": url, "author": author,
                    "published_at": self.start + timedelta(seconds=t),
                })
            out.append(Sample(t, copy, original.sentiment, original.topic, original.ticker,
                              original.scenario, duplicate_of=ev.id))
        return out


def _variant(rng: random.Random, text: str) -> str:
    """Same words, different presentation: what two feeds do to one wire story."""
    choice = rng.randrange(4)
    if choice == 0:
        return text.upper()
    if choice == 1:
        return text.replace(",", ";").replace(".", "")
    if choice == 2:
        return f"UPDATE 1-{text}"
    return text


def topic_for_social(topic: str, sentiment: str) -> str:
    """Social templates are about a stock, so their topic is stock talk whatever was drawn."""
    return "Stock Commentary" if topic not in ("Stock Movement", "Stock Commentary") else topic


def malformed_value(event: RawEvent, kind: str) -> bytes:
    """A broken Kafka value derived from a good event; ``kind`` is one of MALFORMED_KINDS."""
    good = json.loads(event.model_dump_json(exclude_none=True))
    if kind == "not_json":
        return event.text.encode()
    if kind == "not_utf8":
        return b"\xff\xfe" + event.model_dump_json().encode("utf-8")[:-1] + b"\xc3"
    if kind == "not_object":
        return json.dumps([good]).encode()
    if kind == "missing_field":
        good.pop("source_name", None)
        return json.dumps(good).encode()
    if kind == "empty_text":
        good["text"] = "   "
        return json.dumps(good).encode()
    if kind == "nul_bytes":
        good["text"] = good["text"] + "\x00"
        return json.dumps(good).encode()
    if kind == "bad_date":
        good["published_at"] = "yesterday-ish"
        return json.dumps(good).encode()
    raise ValueError(f"unknown malformed kind {kind!r}; one of {MALFORMED_KINDS}")
