"""The index writer lock (kept in the core, rag/index_lock.py, since a rollback from the API takes it too)."""

from rag.index_lock import index_writer_lock

__all__ = ["index_writer_lock"]
