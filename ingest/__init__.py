"""The ingestion worker: discover files -> parse -> chunk -> embed -> commit -> publish indexes."""
