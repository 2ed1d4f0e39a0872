"""Vector (FAISS) and keyword (BM25) indexes, persisted as crash-safe on-disk generations."""
