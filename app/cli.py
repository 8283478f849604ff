"""`fabric`: the operator's command line."""

import json
import signal
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from app.config import get_settings

cli = typer.Typer(help="Prime Fabric: ingest Studio snapshots, train and publish the stem model.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
quarantine_cli = typer.Typer(help="Rejected snapshots and requests, with reasons.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(quarantine_cli, name="quarantine")
token_cli = typer.Typer(help="API tokens for operators and admins.", no_args_is_help=True)
cli.add_typer(token_cli, name="token")

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "snapshot.schema.json"


@cli.command()
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


@cli.command()
def api(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="API processes")] = 1,
) -> None:
    """Run the API alone (uvicorn, with the connection limits and timeouts of the settings);
    the database must be migrated (`fabric db upgrade`)."""
    from app.serving import run_api

    run_api(host, port, workers)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to DATABASE_URL."""
    from app.db.migrate import upgrade_database

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
    from app.db.engine import session_scope
    from app.quarantine.service import list_quarantined

    with session_scope() as session:
        for item in list_quarantined(reason_type=reason, http_status=status, limit=limit, before_id=before, db_session=session):
            first = item.reasons[0] if item.reasons else {}
            typer.echo(
                f"{item.id:>6}  {item.last_seen_at:%Y-%m-%d %H:%M:%S}  x{item.occurrences:<3} {item.http_status}"
                f"  {item.reason_type:<24} {first.get('loc', '')}: {first.get('msg', '')[:100]}"
            )


@quarantine_cli.command("show")
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


@cli.command()
def synth(
    count: Annotated[int, typer.Option(help="How many snapshots")] = 100,
    seed: int = 0,
    out: Annotated[Path | None, typer.Option(help="Write JSONL here")] = None,
    post: Annotated[str | None, typer.Option(help="POST each to this export URL instead")] = None,
) -> None:
    """Synthetic Studio snapshots with ground truth (demo data)."""
    import httpx
    import numpy as np
    from rich.progress import track

    from training.synthetic import synthetic_snapshot

    rng = np.random.default_rng(seed)
    sink = out.open("w") if out else None
    with httpx.Client(timeout=30) as client:
        for _ in track(range(count), description="synthesising"):
            snapshot = synthetic_snapshot(rng)
            if post:
                response = client.post(post, json=snapshot, headers={"X-Prime-Fabric-Channel": "stem-separation"})
                response.raise_for_status()
            if sink:
                sink.write(json.dumps(snapshot) + "\n")
    if sink:
        sink.close()


@cli.command()
def sanitize(
    files: Annotated[list[Path], typer.Argument(help="Snapshot files: JSON (one or an array) or JSONL")],
    out: Annotated[Path, typer.Option("--out", help="JSONL of results, one per snapshot")],
) -> None:
    """Validate and sanitise snapshots offline, exactly as ingest does; no database."""
    from app.quarantine.service import RequestContext
    from app.snapshots.service import Accepted, prepare_request

    settings = get_settings()
    accepted = rejected = 0
    with out.open("w") as sink:
        for path in files:
            context = RequestContext("stem-separation", None, "application/json", None)
            prepared = prepare_request(path.read_bytes(), context, settings)
            if prepared.error:
                typer.echo(f"{path}: {prepared.error.detail}", err=True)
                rejected += 1
                continue
            for item in prepared.items:
                if isinstance(item, Accepted):
                    accepted += 1
                    row = {k: v for k, v in item.clean.row.items() if not isinstance(v, bytes | None)}
                    sink.write(
                        json.dumps(
                            {
                                "id": str(item.snapshot_id),
                                "status": "accepted",
                                "rulesFired": item.clean.rules_fired,
                                "stored": row,
                            },
                            default=str,
                        )
                        + "\n"
                    )
                else:
                    rejected += 1
                    sink.write(
                        json.dumps(
                            {"id": item.snapshot_id, "status": "rejected", "reasons": [r.model_dump() for r in item.reasons]}
                        )
                        + "\n"
                    )
    typer.echo(f"{accepted} accepted, {rejected} rejected -> {out}")


@cli.command()
def dataset(
    run_label: Annotated[str, typer.Option("--run-label", "--runLabel")] = "manual",
    validation_share: Annotated[float, typer.Option("--validation-share")] = 0.15,
    test_share: Annotated[float, typer.Option("--test-share")] = 0.15,
) -> None:
    """Build a dataset from the stored snapshots that carry a label (DATABASE_URL): ground truth,
    users' corrections, or both; into the artifact store (FABRIC_ARTIFACTS_DIR, or
    FABRIC_ARTIFACTS_URL)."""
    from app.artifacts import get_store
    from app.datasets.service import build_dataset
    from app.db.engine import session_scope

    with session_scope() as session:
        built = build_dataset(get_store(), run_label, validation_share, test_share, db_session=session)
        typer.echo(
            json.dumps(
                {
                    "key": built.artifact_key,
                    "folder": str(get_store().local(built.artifact_key)),
                    "hash": built.content_hash,
                    **built.manifest["counts"],
                    "audit": built.manifest["audit"],
                },
                indent=2,
            )
        )


@cli.command()
def train(
    dataset_dir: Annotated[Path, typer.Option("--dataset-dir", "--datasetDir")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "--outputDir")],
    epochs: Annotated[int, typer.Option("--epochs")] = 50,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "--batchSize", help="Default: the candidate's own")] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "--learningRate", help="Default: the candidate's own")
    ] = None,
    candidate: Annotated[str, typer.Option("--candidate", help="full, small, tiny or mlp")] = "small",
    seed: int = 0,
) -> None:
    """Train one learned candidate on a built dataset; resumes if --outputDir holds a checkpoint."""
    from rich.progress import Progress

    from app.datasets.service import load_split
    from app.training_runs.schemas import RunParameters
    from app.training_runs.service import training_overrides
    from training.candidates import candidate_config
    from training.train import train as run_training

    parameters = RunParameters(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, candidates=[candidate])
    config = candidate_config(candidate, epochs, training_overrides(parameters))
    with Progress() as progress:
        bar = progress.add_task("training", total=epochs)

        def on_epoch(p) -> None:
            progress.update(bar, completed=p.epoch + 1, description=f"epoch {p.epoch + 1} loss {p.loss:.4f} val {p.val_loss:.4f}")

        result = run_training(
            load_split(dataset_dir, "train"),
            load_split(dataset_dir, "validation"),
            config,
            output_dir,
            on_epoch=on_epoch,
            seed=seed,
        )
    typer.echo(f"{result.epochs_run} epochs{' (stopped early)' if result.stopped_early else ''}; checkpoints in {output_dir}")


def _print_judgement(metrics: dict) -> None:
    """A judged run's figures: every predictor's test level error, and the margin."""
    typer.echo(f"{'':14}{'level error dB':>15}{'present err dB':>15}{'presence AUC':>13}{'false activity':>15}")
    from training.metrics import BASELINES

    for name in ("model", *BASELINES):
        if (report := metrics.get(name)) is None:
            continue
        typer.echo(
            f"{name:14}{report['level_error_db']:>15.2f}{report['present_error_db']:>15.2f}"
            f"{report['presence_auc']:>13.3f}{report['false_activity']:>15.3f}"
        )
    if choice := metrics.get("choice"):
        typer.echo("candidates (validation level error, test level error, dB):")
        for name, c in choice["candidates"].items():
            typer.echo(f"  {name:12}{c['validation_error_db']:>8.2f}{c['test_error_db']:>8.2f}")
        typer.echo(f"model = {choice['predictor']['name']}: {choice['reason']}")
    m = metrics["margin"]
    typer.echo(
        f"model - {m['reference']}: {m['difference_db']:+.2f} dB, 95% interval [{m['low_db']:+.2f}, {m['high_db']:+.2f}] "
        f"over {m['snapshots']} test snapshots"
    )


def _load_model(path: Path):
    """A published model's folder (model.keras) or a run's checkpoint folder."""
    import keras

    from app.stem_models.service import KERAS_FILE
    from training.train import load_best_model

    return keras.models.load_model(path / KERAS_FILE) if (path / KERAS_FILE).exists() else load_best_model(path)


@cli.command()
def evaluate(
    model_dir: Annotated[
        Path, typer.Option("--model-dir", "--modelDir", help="A run's checkpoint folder or a published model's folder")
    ],
    dataset_dir: Annotated[
        Path | None, typer.Option("--dataset-dir", "--datasetDir", help="Judge on this dataset's test split")
    ] = None,
    audio: Annotated[Path | None, typer.Option("--audio", help="Judge on these multitrack songs' audio")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the figures as JSON here")] = None,
) -> None:
    """Judge a model. --datasetDir: level error on the test split beside every baseline, and the
    gate's margin. --audio: Studio's filter stems with and without the model's gains over time,
    and with oracle gains, scored by BSS-Eval against the true stems."""
    if (dataset_dir is None) == (audio is None):
        raise typer.BadParameter("give --datasetDir or --audio")
    model = _load_model(model_dir)
    if dataset_dir is not None:
        from app.datasets.service import load_split
        from app.stem_models.service import gate, judge
        from training.train import evaluate_against_baselines

        splits = [load_split(dataset_dir, s) for s in ("train", "validation", "test")]
        metrics = judge(evaluate_against_baselines(model, *splits), splits[0])
        _print_judgement(metrics)
        typer.echo(gate(metrics)[1])
    else:
        from training.audio_eval import evaluate_songs

        metrics = evaluate_songs(model, audio, on_skip=lambda message: typer.echo(f"skipped: {message}", err=True))
        typer.echo(metrics.summary())
        metrics = metrics.as_dict()
    if out:
        out.write_text(json.dumps(metrics, indent=2, default=float))


@cli.command()
def run(
    run_label: Annotated[str, typer.Option("--run-label", "--runLabel")] = "run",
    epochs: Annotated[int, typer.Option("--epochs")] = 50,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "--batchSize", help="Default: each candidate's own")] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "--learningRate", help="Default: each candidate's own")
    ] = None,
    candidates: Annotated[
        str | None,
        typer.Option("--candidates", help="Learned candidates beside ridge, comma-separated (full, small, tiny, mlp)"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    wait: Annotated[bool, typer.Option(help="Follow the run until it ends")] = True,
) -> None:
    """All of it: create a run and have the workers build, train and evaluate."""
    import time

    from app.broker import BrokerUnavailable
    from app.db.engine import session_scope
    from app.training_runs import flows, service
    from app.training_runs.models import TERMINAL_STATUSES
    from app.training_runs.schemas import RunParameters

    chosen = {} if candidates is None else {"candidates": [name.strip() for name in candidates.split(",")]}
    parameters = RunParameters(
        run_label=run_label, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, **chosen
    )
    try:
        with session_scope() as session:
            run_id = flows.start_run(parameters, db_session=session).id
    except (flows.RunInProgress, BrokerUnavailable) as refused:
        typer.echo(f"not started: {refused}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"run {run_id} queued")
    while wait:
        time.sleep(1)
        with session_scope() as session:
            current = service.get(run_id, db_session=session)
            typer.echo(f"\r{current.status:10} {current.stage:11} epoch {current.epoch or 0}/{epochs}", nl=False)
            if current.status in TERMINAL_STATUSES:
                typer.echo(f"\n{current.error or ''}")
                if current.metrics and "margin" in current.metrics:
                    from app.stem_models.service import corrections_summary

                    _print_judgement(current.metrics)
                    typer.echo(corrections_summary(current.metrics))
                break


@cli.command()
def encode(
    snapshot: Annotated[Path, typer.Argument(help="A snapshot as Studio sends it (JSON)")],
    feature_version: Annotated[
        str | None, typer.Option("--feature-version", help="The version the model wants (its manifest's feature_version)")
    ] = None,
) -> None:
    """Print the model input for a snapshot, exactly as training encodes it:
    {"featureVersion", "shape", "columns", "data"} (data flattened, row-major). Refuses when the
    model wants another feature version: its input would not mean what it learned."""
    from training.features import COLUMNS, FEATURE_VERSION, encode_features, from_wire

    if feature_version is not None and feature_version != FEATURE_VERSION:
        typer.echo(f"this encoder makes {FEATURE_VERSION}; the model wants {feature_version}: refused", err=True)
        raise typer.Exit(2)
    try:
        encoded = encode_features(from_wire(json.loads(snapshot.read_text())))
    except (OSError, ValueError, KeyError, TypeError) as error:
        typer.echo(f"{snapshot}: not a snapshot Studio would send: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        json.dumps(
            {
                "featureVersion": FEATURE_VERSION,
                "shape": list(encoded.shape),
                "columns": list(COLUMNS),
                "data": [float(v) for v in encoded.ravel()],
            }
        )
    )


@cli.command("import-stems")
def import_stems(
    folder: Annotated[Path, typer.Argument(help="One folder per song, one WAV/FLAC file per stem (MUSDB18's layout)")],
    post: Annotated[str | None, typer.Option(help="POST each snapshot to this export URL, as Studio does")] = None,
    out: Annotated[Path | None, typer.Option(help="Write each snapshot as <id>.json into this folder")] = None,
    sample_rate: Annotated[
        int | None,
        typer.Option(
            "--sample-rate",
            min=8000,
            help="Describe each song as a browser decoding it at this rate would (default: the files' rate)",
        ),
    ] = None,
) -> None:
    """Turn multitrack songs into the snapshots Studio would send for their mixes (the song's
    mixture file, else the sum of its stems), with the stems as ground truth: what the kit's
    buildSnapshot makes of the same audio. A song that cannot be used is reported and skipped."""
    import httpx

    from training.multitrack import SongError, missing_stems, read_song, song_folders, song_snapshot

    if (post is None) == (out is None):
        raise typer.BadParameter("give --post URL or --out FOLDER")
    try:
        folders = song_folders(folder)
    except SongError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    done = skipped = 0
    with httpx.Client(timeout=60) as client:
        for song_folder in folders:
            try:
                song = read_song(song_folder, sample_rate)
                snapshot = song_snapshot(song)
            except SongError as error:
                typer.echo(f"skipped: {error}", err=True)
                skipped += 1
                continue
            if missing := missing_stems(song):
                typer.echo(f"{song.name}: no file for {', '.join(missing)}: imported as unknown, not silent", err=True)
            if post:
                response = client.post(post, json=snapshot, headers={"X-Prime-Fabric-Channel": "stem-separation"})
                if response.status_code >= 300:
                    typer.echo(
                        f"skipped: {song_folder.name}: the server answered {response.status_code}: {response.text[:300]}",
                        err=True,
                    )
                    skipped += 1
                    continue
            else:
                (out / f"{snapshot['id']}.json").write_text(json.dumps(snapshot))
            done += 1
    typer.echo(f"{done} songs imported, {skipped} skipped")
    if done == 0:
        raise typer.Exit(1)


@cli.command("render-songs")
def render_songs(
    folder: Annotated[Path, typer.Argument(help="Where to write the songs")],
    count: int = 20,
    seed: int = 0,
    seconds: float = 40.0,
    sample_rate: Annotated[int, typer.Option("--sample-rate")] = 22050,
) -> None:
    """Render multitrack songs played by sampled instruments (FluidSynth, General MIDI), for
    development and evaluation: songs whose true stems are known."""
    from training.render import render_song

    for index in range(count):
        typer.echo(render_song(folder, seed + index, seconds, sample_rate))


@token_cli.command("create")
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


@token_cli.command("list")
def token_list() -> None:
    """Tokens, without their secrets."""
    from app.auth.service import get_all_tokens
    from app.db.engine import session_scope

    with session_scope() as session:
        for row in get_all_tokens(db_session=session):
            state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
            typer.echo(f"{row.id:>4}  {row.role:9} {state:24} {row.name}")


@token_cli.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token: it is refused from the next request on."""
    from app.auth.service import revoke_token
    from app.db.engine import session_scope

    with session_scope() as session:
        if not revoke_token(token_id, db_session=session):
            typer.echo(f"no active token {token_id}", err=True)
            raise typer.Exit(1)
    typer.echo(f"token {token_id} revoked")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
