"""private-rag core: settings, types, database models, errors and the embedder interface."""
