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

    from app.training_runs.schemas import RunParameters
    from app.training_runs.stages import training_overrides
    from training.candidates import candidate_config
    from training.shards import load_split
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
    from training.train import load_model

    model = load_model(model_dir)
    if dataset_dir is not None:
        from training.judgement import gate, judge
        from training.shards import load_split
        from training.train import evaluate_against_baselines

        splits = [load_split(dataset_dir, s) for s in ("train", "validation", "test")]
        judgement = judge(evaluate_against_baselines(model, *splits), splits[0])
        typer.echo("\n".join(judgement.table()))
        typer.echo(gate(judgement)[1])
        figures = judgement.stored_form()
    else:
        from training.audio_eval import evaluate_songs

        played = evaluate_songs(model, audio, on_skip=lambda message: typer.echo(f"skipped: {message}", err=True))
        typer.echo(played.summary())
        figures = played.as_dict()
    if out:
        out.write_text(json.dumps(figures, indent=2, default=float))


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
    from app.broker import BrokerUnavailable
    from app.db.engine import session_scope
    from app.training_runs import flows
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
    if not wait:
        return
    for current in flows.follow(run_id):
        typer.echo(f"\r{current.status:10} {current.stage:11} epoch {current.epoch or 0}/{epochs}", nl=False)
    typer.echo(f"\n{current.error or ''}")
    if current.metrics is not None:
        typer.echo("\n".join(current.metrics.table()))
