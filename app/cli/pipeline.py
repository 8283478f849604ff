"""Commands for the training pipeline: build a dataset, train a candidate, judge a model, run
all of it on the workers."""

import json
from pathlib import Path
from typing import Annotated

import typer

commands = typer.Typer()


@commands.command()
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


@commands.command()
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
    if (audio := metrics.get("audio")) and audio.get("headline", {}).get("songs"):
        h, applied = audio["headline"], audio.get("applied_stems", [])
        worst = max((f["worse_share"] for stem, f in audio["per_stem"].items() if stem in applied), default=None)
        typer.echo(
            f"audio, {h['songs']} held-out songs (gains applied to {', '.join(applied) or 'no stem'}): the gains recover "
            f"{h['sdr_ceiling_share']:.2f} of the ceiling's SDR improvement over filters, 95% interval "
            f"[{h['sdr_ceiling_share_low']:.2f}, {h['sdr_ceiling_share_high']:.2f}]"
            + (f"; an applied stem is made worse in at most {worst:.2f} of the songs" if worst is not None else "")
        )


def _load_model(path: Path):
    """A published model's folder (model.keras) or a candidate's checkpoint folder (runs/<id>/<candidate>)."""
    import keras

    from app.stem_models.service import KERAS_FILE
    from training.train import load_best_model

    return keras.models.load_model(path / KERAS_FILE) if (path / KERAS_FILE).exists() else load_best_model(path)


@commands.command()
def evaluate(
    model_dir: Annotated[
        Path,
        typer.Option(
            "--model-dir",
            "--modelDir",
            help="A candidate's checkpoint folder (runs/<id>/<candidate>) or a published model's folder",
        ),
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


@commands.command()
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
