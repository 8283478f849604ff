"""Publishing a trained run: export TF.js weights (float32 and float16), decide whether it
becomes the latest model (training/judgement.py gate), and record either way.

The run's predictor is the candidate validation selected (training/candidates.py), or ridge
when the selected one does not beat ridge on test. The gate, on the run's test split (nothing
was selected on it): the predictor's level error
must beat the strongest baseline's (training/metrics.py: silence, a copy of the mix's level,
the training mean and median, the mix's level split by mean share, ridge regression) by a
margin whose bootstrap 95% interval over test snapshots lies below 0. A flat line is one of
those baselines, so it can never pass. When there is a champion of the same feature version,
the candidate must also do no worse than the champion on the champion's test data. Otherwise
it is kept, "rejected", with the figures that decided it; an operator can still promote it,
but only by forcing it with a reason, which the audit keeps.
"""

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.datasets.models import Dataset
from app.stem_models.models import ModelPromotion, StemModel
from app.stem_models.service import current_champion
from training.features import FEATURE_VERSION
from training.judgement import Judgement, gate
from training.metrics import evaluate
from training.shards import load_split


def publish_run(
    run_id: int, parameters: dict, dataset_id: int, model, store: ArtifactStore, judgement: Judgement, *, db_session: Session
) -> StemModel:
    """Exports a run's model (trained with `parameters` on dataset `dataset_id`), gates it, puts
    its files in the artifact store, records it (and its promotion). Commits."""
    from training.export import export_graph_model
    from training.model import predict
    from training.train import PUBLISHED_MODEL, load_model

    dataset = db_session.get(Dataset, dataset_id)
    version = f"r{run_id}-{dataset.content_hash[:8]}"
    existing = db_session.scalar(select(StemModel).where(StemModel.version == version))
    if existing is not None:  # published by an earlier delivery of this task
        return existing
    key = f"models/{version}"
    directory = store.local(key)
    spec = export_graph_model(model, directory / "float32")
    export_graph_model(model, directory / "float16", float16=True)
    model.save(directory / PUBLISHED_MODEL)

    test = load_split(store.pull(dataset.artifact_key), "test")
    float16_error = _float16_error(model, test.features[:64])

    champion = current_champion(db_session=db_session)
    on_champion_data = champion_on_its_data = None
    if champion is not None and champion.manifest["feature_version"] == FEATURE_VERSION:
        champion_dataset = db_session.get(Dataset, champion.dataset_id)
        champion_split = load_split(store.pull(champion_dataset.artifact_key), "test")
        champion_model = load_model(store.pull(champion.artifact_key))
        on_champion_data = evaluate(champion_split, predict(model, champion_split.features))
        champion_on_its_data = evaluate(champion_split, predict(champion_model, champion_split.features))
    publish, reason = gate(judgement, on_champion_data, champion_on_its_data)

    manifest = {
        "version": version,
        "format": "tfjs-graph-model",
        "tfjs": "4.22",
        "model_json": {"float32": "float32/model.json", "float16": "float16/model.json"},
        **spec,
        "float16_max_abs_error": float16_error,
        "feature_version": FEATURE_VERSION,
        "predictor": judgement.predictor.model_dump() if judgement.predictor else None,
        "dataset": {"id": dataset.id, "hash": dataset.content_hash, "counts": dataset.manifest["counts"]},
        "config": parameters,
        "metrics": judgement.stored_form(),
        "champion_comparison": {
            "champion": champion.version if champion else None,
            "candidate_error_db": on_champion_data.level_error_db if on_champion_data else None,
            "champion_error_db": champion_on_its_data.level_error_db if champion_on_its_data else None,
        },
    }
    manifest["files"] = _file_digests(directory)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    store.push(key)  # before the row: a row never names files the store lacks
    stem_model = StemModel(
        version=version,
        run_id=run_id,
        dataset_id=dataset.id,
        artifact_key=key,
        manifest=manifest,
        decision="published" if publish else "rejected",
        reason=reason,
    )
    db_session.add(stem_model)
    db_session.flush()
    if publish:
        db_session.add(ModelPromotion(model_id=stem_model.id, promoted_by="pipeline", reason=reason))
    db_session.commit()
    return stem_model


def _file_digests(directory: Path) -> list[dict]:
    """Size and SHA-256 of every file Studio may fetch (both weight precisions)."""
    files = []
    for path in sorted(directory.glob("float*/*")):
        digest = hashlib.sha256(path.read_bytes()).digest()
        files.append(
            {
                "path": path.relative_to(directory).as_posix(),
                "size": path.stat().st_size,
                "sha256": digest.hex(),
                "integrity": "sha256-" + base64.b64encode(digest).decode(),
            }
        )
    return files


def _float16_error(model, features: np.ndarray) -> float:
    """Max |prediction change| with every weight rounded to float16, as the float16 export does."""
    from training.model import predict

    original = model.get_weights()
    reference = predict(model, features)
    model.set_weights([w.astype(np.float16).astype(w.dtype) for w in original])
    try:
        return float(np.abs(predict(model, features) - reference).max())
    finally:
        model.set_weights(original)
