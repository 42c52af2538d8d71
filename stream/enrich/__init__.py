"""Enrichment before the model: normalisation, privacy, ticker linking, novelty."""
from stream.enrich.novelty import NoveltyIndex
from stream.enrich.pipeline import EnrichError, Enriched, Enricher, scrub

__all__ = ["EnrichError", "Enriched", "Enricher", "NoveltyIndex", "scrub"]
