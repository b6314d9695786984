"""livedub.engines."""
