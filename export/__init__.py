"""livedub.export."""
