"""livedub.realtime."""
