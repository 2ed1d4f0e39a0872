"""Adapting the embedder to a corpus without labels: pseudo-queries, training, held-out evaluation."""
