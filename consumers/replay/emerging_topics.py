"""Emerging topics: cluster event embeddings, name clusters by their top terms, rank by growth.

Embeddings come from the classifier's encoder (``Classifier.embed``, L2-normalised), so cosine
geometry = Euclidean geometry and plain k-means fits. k is picked by silhouette over a small range
(on a sample, to stay cheap). Names come from class-based TF-IDF: each cluster's texts are one
document, and a term scores high when it is frequent in that cluster and rare across the others.
Growth compares each cluster's share of events in the second half of the range with the first half.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer
from sklearn.metrics import silhouette_score

Embedder = Callable[[list[str]], np.ndarray]
# Words every market headline uses: they would name every cluster the same.
DOMAIN_STOPWORDS = frozenset({
    "rt", "http", "https", "com", "www", "amp", "just", "today", "says", "said", "new", "stock", "stocks",
    "shares", "share", "market", "markets", "inc", "corp", "co", "ltd", "update", "like", "got", "im", "dont",
})
STOPWORDS = frozenset(ENGLISH_STOP_WORDS) | DOMAIN_STOPWORDS
MIN_CLUSTER_SIZE = 2


@dataclass
class TopicCluster:
    cluster: int
    label: str
    terms: list[str]
    size: int
    first_half: int
    second_half: int
    share_first: float
    share_second: float
    examples: list[str] = field(default_factory=list)

    @property
    def growth(self) -> float:
        """Change in share of all events, in percentage points (second half - first half)."""
        return 100.0 * (self.share_second - self.share_first)

    @property
    def ratio(self) -> float:
        """Share in the second half / share in the first (inf for a cluster new in the second half)."""
        return self.share_second / self.share_first if self.share_first > 0 else math.inf


def ctfidf_terms(texts: Sequence[str], labels: Sequence[int], top_n: int = 3,
                 stopwords: frozenset[str] = STOPWORDS) -> dict[int, list[str]]:
    """Top ``top_n`` terms per cluster label by class-based TF-IDF (unigrams and bigrams)."""
    classes = sorted(set(int(l) for l in labels))
    docs = [" ".join(t for t, l in zip(texts, labels) if int(l) == c) for c in classes]
    vec = CountVectorizer(stop_words=sorted(stopwords), token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b",
                          ngram_range=(1, 2), lowercase=True)
    try:
        counts = vec.fit_transform(docs).toarray().astype(float)
    except ValueError:  # only stopwords everywhere
        return {c: [] for c in classes}
    vocab = vec.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    avg_words = counts.sum() / len(classes)
    idf = np.log(1.0 + avg_words / np.maximum(counts.sum(axis=0), 1.0))
    scores = tf * idf
    out: dict[int, list[str]] = {}
    for row, c in enumerate(classes):
        order = np.lexsort((vocab, -scores[row]))  # best first, ties alphabetically
        picked: list[str] = []
        for i in order:
            if scores[row, i] <= 0 or len(picked) >= top_n:
                break
            term = str(vocab[i])
            # A bigram made of picked words (or a word inside a picked bigram) adds nothing.
            if any(term in p.split() or p in term.split() for p in picked):
                continue
            picked.append(term)
        out[c] = picked
    return out


def choose_k(x: np.ndarray, k_range: Sequence[int], seed: int = 0, sample: int = 2000) -> int:
    """The k with the best silhouette (ties: smaller k)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=min(sample, len(x)), replace=False)
    xs = x[idx]
    best_k, best = k_range[0], -2.0
    for k in k_range:
        if k < 2 or k >= len(xs):
            continue
        labels = _kmeans(k, len(xs), seed).fit_predict(xs)
        if len(set(labels)) < 2:
            continue
        s = float(silhouette_score(xs, labels, metric="euclidean"))
        if s > best + 1e-9:
            best_k, best = k, s
    return best_k


def _kmeans(k: int, n: int, seed: int):
    # Mini-batch beyond a few thousand points: same clusters in practice, a fraction of the time.
    if n > 5000:
        return MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=1024)
    return KMeans(n_clusters=k, random_state=seed, n_init=4)


def discover_topics(texts: Sequence[str], times: Sequence[datetime], embed: Embedder,
                    k: int | str = "auto", k_range: Sequence[int] = range(2, 11), seed: int = 0,
                    top_terms: int = 3, examples: int = 2) -> list[TopicCluster]:
    """Clusters, fastest-growing first. ``times`` split the range at its midpoint."""
    if len(texts) != len(times):
        raise ValueError("texts and times must have the same length")
    n = len(texts)
    if n < 2 * MIN_CLUSTER_SIZE:
        return []
    x = np.asarray(embed(list(texts)), dtype=np.float64)
    if k == "auto":
        kk = choose_k(x, [k for k in k_range if k < n], seed)
    else:
        kk = int(k)
        if not 1 <= kk <= n:
            raise ValueError(f"k must be between 1 and the number of events ({n})")
    labels = _kmeans(kk, n, seed).fit_predict(x) if kk > 1 else np.zeros(n, dtype=int)
    names = ctfidf_terms(texts, labels, top_terms)
    ts = np.array([t.timestamp() for t in times])
    mid = (ts.min() + ts.max()) / 2
    second = ts >= mid
    n_first, n_second = max(int((~second).sum()), 1), max(int(second.sum()), 1)
    out = []
    for c in sorted(set(int(l) for l in labels)):
        members = labels == c
        f, s = int((members & ~second).sum()), int((members & second).sum())
        terms = names.get(c, [])
        # Examples: the members closest to the centroid, the most typical texts.
        centroid = x[members].mean(axis=0)
        near = np.argsort(((x[members] - centroid) ** 2).sum(axis=1))[:examples]
        member_texts = [texts[i] for i in np.flatnonzero(members)]
        out.append(TopicCluster(
            cluster=c, label=" · ".join(terms) or f"cluster {c}", terms=terms, size=int(members.sum()),
            first_half=f, second_half=s, share_first=f / n_first, share_second=s / n_second,
            examples=[_short(member_texts[i]) for i in near]))
    out.sort(key=lambda t: (-t.growth, -t.size, t.cluster))
    return out


def _short(text: str, n: int = 120) -> str:
    t = re.sub(r"\s+", " ", text).strip()
    return t if len(t) <= n else t[: n - 1] + "…"


def tfidf_embedder(texts: list[str], dims: int = 64, seed: int = 0) -> np.ndarray:
    """Bag-of-words embeddings (TF-IDF -> SVD, L2-normalised) for tests and for hosts without the
    model artifact; the CLI says so when it uses them."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    m = TfidfVectorizer(stop_words=sorted(STOPWORDS), sublinear_tf=True,
                        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b").fit_transform(texts)
    d = max(1, min(dims, m.shape[1] - 1, m.shape[0] - 1))
    z = TruncatedSVD(n_components=d, random_state=seed).fit_transform(m) if d < m.shape[1] else m.toarray()
    return normalize(z)


def model_embedder(classifier) -> Embedder:
    return lambda texts: classifier.embed(texts)
