"""Authentication and authorization: API keys, customer tokens, roles, limits, the principal."""
