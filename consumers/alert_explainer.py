"""The words behind an alert: each top event gets the words of its text that raised P(negative) the
most, before the alert is published (live alerter and replay alike).

The stream worker classifies only, so this is where an analyst's "why" is computed: for the few
events an alert shows, not for every record. The classifier is loaded the first time an alert has
events to explain, and all of an alert's events are explained in one batched call. Explanations
are best effort: if the model cannot be loaded or fails, the alert goes out without them (a warning
is logged once), never later and never lost.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from marketpulse.schemas import Alert
from marketpulse.settings import Settings

log = logging.getLogger(__name__)
TOP_WORDS = 5
CACHE_TEXTS = 2048  # an escalation repeats its opening's events, and replay lanes share theirs


class Explains(Protocol):
    def explain(self, texts: list[str], top_k: int = ..., *, label: str | None = ...) -> list[list[str]]: ...


class TopEventExplainer:
    """``explainer(alert)`` -> the alert with ``explanation`` filled in on its top events.

    ``load`` returns the classifier (default: ``Classifier.from_settings(settings.model)``); it is
    called once, at the first alert with top events."""

    def __init__(self, settings: Settings, load: Callable[[], Explains] | None = None, top_k: int = TOP_WORDS):
        self._load = load or (lambda: _load_classifier(settings))
        self.top_k = top_k
        self._clf: Explains | None = None
        self._unavailable = False  # the model failed to load: not tried again for every alert
        self._warned = False
        self._cache: OrderedDict[str, list[str]] = OrderedDict()

    def __call__(self, alert: Alert) -> Alert:
        wanted = list(dict.fromkeys(e.text for e in alert.top_events if e.text.strip()))
        if not wanted:
            return alert
        missing = [t for t in wanted if t not in self._cache]
        for text in wanted:
            if text not in missing:
                self._cache.move_to_end(text)  # newest last, so making room cannot drop them
        if missing:
            found = self._explain(missing)
            if found is None:
                return alert
            for text, words in zip(missing, found):
                self._remember(text, words)
        events = [e.model_copy(update={"explanation": list(self._cache.get(e.text, []))}) for e in alert.top_events]
        return alert.model_copy(update={"top_events": events})

    def _explain(self, texts: list[str]) -> list[list[str]] | None:
        if self._unavailable:
            return None
        if self._clf is None:
            try:
                self._clf = self._load()
            except Exception as exc:
                self._unavailable = True
                self._warn(f"alerts are published without explanations: the model could not be loaded "
                           f"({type(exc).__name__}: {exc})")
                return None
        try:
            # Top events are negative contributors: what is explained is why they read as negative.
            return self._clf.explain(texts, self.top_k, label="negative")
        except Exception as exc:
            self._warn(f"alert published without explanations: {type(exc).__name__}: {exc}")
            return None

    def _remember(self, text: str, words: list[str]) -> None:
        self._cache[text] = words
        while len(self._cache) > CACHE_TEXTS:
            self._cache.popitem(last=False)

    def _warn(self, message: str) -> None:
        if self._warned:
            log.debug("%s", message)
            return
        self._warned = True
        log.warning("%s (further failures are logged at debug level)", message)


def _load_classifier(settings: Settings) -> Any:
    from models.classifier import Classifier

    clf = Classifier.from_settings(settings.model)
    log.info("loaded model %s (%s) to explain alerts' top events", clf.model_version, clf.backend)
    return clf


def from_settings(settings: Settings, load: Callable[[], Explains] | None = None) -> TopEventExplainer | None:
    """The explainer the alerter and replay use, or None when ``alerts.explain_top_events`` is off."""
    return TopEventExplainer(settings, load) if settings.alerts.explain_top_events else None
