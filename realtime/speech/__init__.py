"""The speech half of a session: unit sources (streaming or whole recording), the one speech path
(MT → TTS → placement), pacing, and the live loop around it."""
