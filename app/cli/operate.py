"""Commands for the people who run the service: start it, migrate its database, hand out
tokens, read what was quarantined."""

import json
import signal
import subprocess
from typing import Annotated

import typer

from app.config import get_settings

commands = typer.Typer()
db = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
tokens = typer.Typer(help="API tokens for operators and admins.", no_args_is_help=True)
quarantine = typer.Typer(help="Rejected snapshots and requests, with reasons.", no_args_is_help=True)
commands.add_typer(db, name="db")
commands.add_typer(tokens, name="token")
commands.add_typer(quarantine, name="quarantine")


@commands.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_workers: Annotated[int, typer.Option(help="API processes")] = 1,
    worker: Annotated[bool, typer.Option(help="Also start a Celery worker process")] = True,
) -> None:
    """Migrate the database, then run the API (uvicorn) and a Celery worker until Ctrl-C."""
    from app.db.migrate import upgrade_database
    from app.serving import run_api

    settings = get_settings()
    upgrade_database()
    worker_process = None
    if worker:
        from app.broker import worker_argv

        worker_process = subprocess.Popen(
            worker_argv(
                settings.worker_kind, f"{settings.worker_kind}@%h", "--concurrency", "1", "--loglevel", settings.log_level.upper()
            )
        )
    # uvicorn shuts down gracefully on SIGTERM and then raises it again; with the default
    # handler that killed this process before `finally`, leaving the worker running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        typer.echo(f"Prime Fabric on http://{host}:{port}  (Studio's export URL: http://{host}:{port}/stem-separation)")
        run_api(host, port, api_workers)
    finally:
        if worker_process is not None:
            worker_process.send_signal(signal.SIGTERM)
            worker_process.wait(timeout=30)


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(128 + signal.SIGTERM)


@commands.command()
def api(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="API processes")] = 1,
) -> None:
    """Run the API alone (uvicorn, with the connection limits and timeouts of the settings);
    the database must be migrated (`fabric db upgrade`)."""
    from app.serving import run_api

    run_api(host, port, workers)


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to DATABASE_URL."""
    from app.db.migrate import upgrade_database

    upgrade_database()
    typer.echo("database is at the newest revision")


@tokens.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what it is for")],
    role: Annotated[str, typer.Option(help="operator or admin")] = "operator",
) -> None:
    """Create a token. It is shown once; only its hash is stored."""
    from app.auth.service import create_token
    from app.db.engine import session_scope

    with session_scope() as session:
        token, row = create_token(name, role, db_session=session)
        typer.echo(f"token {row.id} ({row.role}, {row.name}); keep it now, it is not shown again:\n{token}")


@tokens.command("list")
def token_list() -> None:
    """Tokens, without their secrets."""
    from app.auth.service import get_all_tokens
    from app.db.engine import session_scope

    with session_scope() as session:
        for row in get_all_tokens(db_session=session):
            state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
            typer.echo(f"{row.id:>4}  {row.role:9} {state:24} {row.name}")


@tokens.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token: it is refused from the next request on."""
    from app.auth.service import revoke_token
    from app.db.engine import session_scope

    with session_scope() as session:
        if not revoke_token(token_id, db_session=session):
            typer.echo(f"no active token {token_id}", err=True)
            raise typer.Exit(1)
    typer.echo(f"token {token_id} revoked")


@quarantine.command("list")
def quarantine_list(
    reason: Annotated[str | None, typer.Option(help="reason type, e.g. validation, malformed_json")] = None,
    status: Annotated[int | None, typer.Option(help="HTTP status answered")] = None,
    limit: int = 20,
    before: Annotated[int | None, typer.Option(help="page on: show ids below this")] = None,
) -> None:
    """The newest rejections, one line each."""
    from app.db.engine import session_scope
    from app.quarantine.service import list_quarantined

    with session_scope() as session:
        for item in list_quarantined(reason_type=reason, http_status=status, limit=limit, before_id=before, db_session=session):
            first = item.reasons[0] if item.reasons else {}
            typer.echo(
                f"{item.id:>6}  {item.last_seen_at:%Y-%m-%d %H:%M:%S}  x{item.occurrences:<3} {item.http_status}"
                f"  {item.reason_type:<24} {first.get('loc', '')}: {first.get('msg', '')[:100]}"
            )


@quarantine.command("show")
def quarantine_show(item_id: int) -> None:
    """One rejection: every reason and the kept (redacted) body."""
    from app.db.engine import session_scope
    from app.quarantine import service
    from app.quarantine.models import QuarantinedItem

    with session_scope() as session:
        item = service.get(item_id, db_session=session)
        if item is None:
            typer.echo(f"no quarantined item {item_id}", err=True)
            raise typer.Exit(1)
        typer.echo(
            json.dumps(
                {c.name: getattr(item, c.name) for c in QuarantinedItem.__table__.columns if c.name != "body_excerpt"},
                indent=2,
                default=str,
            )
        )
        typer.echo(item.body_excerpt)
