"""Fixtures for the fake Gemini / Voyage / Storage server (filled in by the providers work)."""
