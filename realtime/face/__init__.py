"""The face half of a session: tracking and the lip engine (path.py), file mode's video writer (video.py), and
cross-session batching of network lip engines (batcher.py)."""
