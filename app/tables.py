"""Imports every domain's tables so Base.metadata knows them all (Alembic, tests)."""


def load_all_tables() -> None:
    import app.auth.models  # noqa: F401
    import app.datasets.models  # noqa: F401
    import app.quarantine.models  # noqa: F401
    import app.snapshots.models  # noqa: F401
    import app.stem_models.models  # noqa: F401
    import app.training_runs.models  # noqa: F401
