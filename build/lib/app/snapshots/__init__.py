"""Snapshots: what Studio sends after each separation, validated, sanitised and stored once."""
