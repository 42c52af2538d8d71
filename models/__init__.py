"""Model training, evaluation, export and inference backends."""
