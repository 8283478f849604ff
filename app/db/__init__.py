"""The database: engine and sessions (engine.py), the tables' base and shared column types
(base.py), fast and atomic writes (writes.py), migrations (migrate.py)."""
