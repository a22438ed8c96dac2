"""EVO-TR: a local, private, Turkish-first AI assistant."""

__version__ = "0.1.0"
