"""Stream processing: ingest, validation, micro-batching, enrichment, the faust worker."""
