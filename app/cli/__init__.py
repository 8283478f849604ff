"""`fabric`: the command line, by audience. operate.py: running the service (serve, api, db,
token, quarantine); pipeline.py: datasets, training, judging and runs; data.py: snapshots and
songs (synth, render-songs, import-stems, sanitize, encode, schema)."""

import typer

from app.cli import data, operate, pipeline

cli = typer.Typer(help="Prime Fabric: ingest Studio snapshots, train and publish the stem model.", no_args_is_help=True)
for audience in (operate, pipeline, data):
    cli.add_typer(audience.commands)


def main() -> None:
    cli()
