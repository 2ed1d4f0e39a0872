"""Generator backends behind one interface: an OpenAI-compatible server, an embedded CPU model, extraction."""
