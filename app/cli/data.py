"""Commands for data: snapshots and songs made, imported, checked and encoded as Studio's
would be, and the snapshot's JSON Schema."""

import json
from pathlib import Path
from typing import Annotated

import typer

from app.config import get_settings
from app.snapshots.schemas import CHANNEL_HEADER

commands = typer.Typer()
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "snapshot.schema.json"


@commands.command()
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
                response = client.post(post, json=snapshot, headers={CHANNEL_HEADER: get_settings().channels[0]})
                response.raise_for_status()
            if sink:
                sink.write(json.dumps(snapshot) + "\n")
    if sink:
        sink.close()


@commands.command()
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
            context = RequestContext(settings.channels[0], None, "application/json", None)
            prepared = prepare_request(path.read_bytes(), context, settings)
            if prepared.error:
                typer.echo(f"{path}: {prepared.error.detail}", err=True)
                rejected += 1
                continue
            for item in prepared.items:
                accepted += isinstance(item, Accepted)
                rejected += not isinstance(item, Accepted)
                sink.write(json.dumps(item.as_record(), default=str) + "\n")
    typer.echo(f"{accepted} accepted, {rejected} rejected -> {out}")


@commands.command()
def encode(
    snapshot: Annotated[Path, typer.Argument(help="A snapshot as Studio sends it (JSON)")],
    feature_version: Annotated[
        str | None, typer.Option("--feature-version", help="The version the model wants (its manifest's feature_version)")
    ] = None,
) -> None:
    """Print the model input for a snapshot, exactly as training encodes it:
    {"featureVersion", "shape", "columns", "data"} (data flattened, row-major). Refuses when the
    model wants another feature version: its input would not mean what it learned."""
    from training.features import FEATURE_VERSION, model_input

    if feature_version is not None and feature_version != FEATURE_VERSION:
        typer.echo(f"this encoder makes {FEATURE_VERSION}; the model wants {feature_version}: refused", err=True)
        raise typer.Exit(2)
    try:
        encoded = model_input(json.loads(snapshot.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        typer.echo(f"{snapshot}: not a snapshot Studio would send: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(encoded))


@commands.command("import-stems")
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
                response = client.post(post, json=snapshot, headers={CHANNEL_HEADER: get_settings().channels[0]})
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


@commands.command("render-songs")
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


@commands.command()
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
