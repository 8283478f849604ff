"""`fabric`: the operator's command line."""

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.config import get_settings

cli = typer.Typer(help="Prime Fabric: ingest Studio snapshots, train and publish the stem model.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
quarantine_cli = typer.Typer(help="Rejected snapshots and requests, with reasons.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(quarantine_cli, name="quarantine")

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "snapshot.schema.json"


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_workers: Annotated[int, typer.Option(help="API processes")] = 1,
    worker: Annotated[bool, typer.Option(help="Also start a Celery worker process")] = True,
) -> None:
    """Migrate the database, then run the API (uvicorn) and a Celery worker until Ctrl-C."""
    import uvicorn

    from app.database import upgrade_database

    settings = get_settings()
    upgrade_database()
    worker_process = None
    if worker:
        worker_process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
             "--queues", settings.worker_kind, "--hostname", f"{settings.worker_kind}@%h",
             "--concurrency", "1", "--loglevel", settings.log_level.upper()]
        )  # fmt: skip
    try:
        typer.echo(f"Prime Fabric on http://{host}:{port}  (Studio's export URL: http://{host}:{port}/stem-separation)")
        uvicorn.run("app.main:app", host=host, port=port, workers=api_workers, log_level=settings.log_level)
    finally:
        if worker_process is not None:
            worker_process.send_signal(signal.SIGTERM)
            worker_process.wait(timeout=30)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to DATABASE_URL."""
    from app.database import upgrade_database

    upgrade_database()
    typer.echo("database is at the newest revision")


@cli.command()
def schema(check: Annotated[bool, typer.Option(help="Fail if the file is out of date")] = False) -> None:
    """Write the snapshot's JSON Schema to schemas/snapshot.schema.json."""
    from app.snapshots.schemas import Snapshot

    text = json.dumps(Snapshot.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"
    if check:
        if not SCHEMA_PATH.exists() or SCHEMA_PATH.read_text() != text:
            typer.echo(f"{SCHEMA_PATH} is out of date: run `fabric schema`", err=True)
            raise typer.Exit(1)
        return
    SCHEMA_PATH.write_text(text)
    typer.echo(f"wrote {SCHEMA_PATH}")


@quarantine_cli.command("list")
def quarantine_list(
    reason: Annotated[str | None, typer.Option(help="reason type, e.g. validation, malformed_json")] = None,
    status: Annotated[int | None, typer.Option(help="HTTP status answered")] = None,
    limit: int = 20,
    before: Annotated[int | None, typer.Option(help="page on: show ids below this")] = None,
) -> None:
    """The newest rejections, one line each."""
    from app.database import session_scope
    from app.quarantine.service import list_quarantined

    with session_scope() as session:
        for item in list_quarantined(session, reason_type=reason, http_status=status, limit=limit, before_id=before):
            first = item.reasons[0] if item.reasons else {}
            typer.echo(
                f"{item.id:>6}  {item.last_seen_at:%Y-%m-%d %H:%M:%S}  x{item.occurrences:<3} {item.http_status}"
                f"  {item.reason_type:<24} {first.get('loc', '')}: {first.get('msg', '')[:100]}"
            )


@quarantine_cli.command("show")
def quarantine_show(item_id: int) -> None:
    """One rejection: every reason and the kept (redacted) body."""
    from app.database import session_scope
    from app.quarantine.models import QuarantinedItem

    with session_scope() as session:
        item = session.get(QuarantinedItem, item_id)
        if item is None:
            typer.echo(f"no quarantined item {item_id}", err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(
            {c.name: getattr(item, c.name) for c in QuarantinedItem.__table__.columns if c.name != "body_excerpt"},
            indent=2, default=str,
        ))  # fmt: skip
        typer.echo(item.body_excerpt)


def main() -> None:
    cli()
