"""Prewarm core: domain models, cache key schema, pure payload builders, settings."""
