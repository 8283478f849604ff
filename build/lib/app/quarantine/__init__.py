"""Quarantine: every rejected request or snapshot, kept (bounded, redacted) with its reasons."""
