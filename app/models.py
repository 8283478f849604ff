"""Imports every domain's tables so Base.metadata knows them all (Alembic, tests)."""


def load_all_models() -> None:
    import app.quarantine.models  # noqa: F401
    import app.snapshots.models  # noqa: F401
