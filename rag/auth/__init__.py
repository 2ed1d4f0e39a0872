"""Who is calling: API keys and identity-provider tokens, resolved to a Principal with a role and groups."""
