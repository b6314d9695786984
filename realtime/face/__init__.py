"""The face half of a session: tracking, the lip engine, and file mode's video writer."""
