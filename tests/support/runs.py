"""Tiny training runs carried out in-process by the pipeline's own stage functions (dataset,
train, evaluate, publish), for tests and benchmarks that need trained, judged models in the
database and the artifact store, without a worker."""

from pathlib import Path


def tiny_runs(artifacts: Path, epochs: tuple[int, ...], label: str, worker: str = "test") -> list[int]:
    """One tiny run per entry of `epochs` over the snapshots stored now; returns the run ids."""
    from app.artifacts import LocalStore
    from app.db.engine import session_scope
    from app.training_runs import service as runs
    from app.training_runs import stages
    from app.training_runs.schemas import RunParameters

    run_ids = []
    for count in epochs:
        with session_scope() as session:
            parameters = RunParameters(run_label=f"{label}-{count}", epochs=count, candidates=["tiny"])
            run_id = runs.create_run(parameters, db_session=session).id
        stages.run_all_stages(run_id, LocalStore(artifacts), worker)
        run_ids.append(run_id)
    return run_ids


def run_predictor(artifacts: Path, run_id: int):
    """The Keras model a run put before the gate, from the run's checkpoints."""
    from app.db.engine import session_scope
    from app.training_runs.models import TrainingRun
    from training.candidates import load_candidate
    from training.judgement import Judgement

    with session_scope() as session:
        name = Judgement.model_validate(session.get(TrainingRun, run_id).metrics).predictor.name
    return load_candidate(artifacts / "runs" / str(run_id), name)
