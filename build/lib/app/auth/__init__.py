"""API tokens: created by the `fabric token` command, shown once, stored as a hash."""
