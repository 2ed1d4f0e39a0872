"""The `rag` command: the outermost layer, composing the core, the worker and the API per process."""
