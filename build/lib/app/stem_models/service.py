"""Publishing a trained run: export TF.js weights (float32 and float16), decide whether it
becomes the latest model, and record either way.

The gate: a candidate is published as "latest" only if, on its own validation split, it beats
both trivial baselines (median SDR and mean score), and, on the current champion's validation
split, it beats the champion (median SDR and mean score). Otherwise it is kept, "rejected",
with the figures that decided it.
"""

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.models import Dataset
from app.datasets.service import load_split
from app.stem_models.models import ModelPromotion, StemModel
from training.features import FEATURE_VERSION, STEMS, Split
from training.metrics import evaluate

KERAS_FILE = "model.keras"


def current_champion(session: Session) -> StemModel | None:
    promotion = session.scalar(select(ModelPromotion).order_by(ModelPromotion.id.desc()).limit(1))
    return session.get(StemModel, promotion.model_id) if promotion else None


def headline(report: dict) -> dict[str, float]:
    """A report's figures that decide and that Studio shows: median SDR, SIR, SAR (dB) and mean score."""
    overall = report["overall"]
    return {"sdr": overall["sdr"]["median"], "sir": overall["sir"]["median"],
            "sar": overall["sar"]["median"], "score": overall["score"]["mean"]}  # fmt: skip


def _sdr_and_score(report: dict) -> tuple[float, float]:
    """The two figures the gate decides on."""
    overall = report["overall"]
    return overall["sdr"]["median"], overall["score"]["mean"]


def gate(metrics: dict, candidate_on_champion_data: dict | None, champion_on_its_data: dict | None) -> tuple[bool, str]:
    """(publish?, why), from the candidate's metrics beside the baselines and, when there is a
    champion, both models' metrics on the champion's validation data."""
    sdr, score = _sdr_and_score(metrics["model"])
    for baseline in ("zeros", "train_mean"):
        base_sdr, base_score = _sdr_and_score(metrics[baseline])
        if not (sdr > base_sdr and score > base_score):
            return False, (f"does not beat the {baseline} baseline: median SDR {sdr:.2f} vs {base_sdr:.2f} dB, "
                           f"score {score:.3f} vs {base_score:.3f}")  # fmt: skip
    if candidate_on_champion_data is None:
        return True, f"beats both baselines (median SDR {sdr:.2f} dB, score {score:.3f}); no champion yet"
    cand_sdr, cand_score = _sdr_and_score(candidate_on_champion_data)
    champ_sdr, champ_score = _sdr_and_score(champion_on_its_data)
    if cand_sdr > champ_sdr and cand_score > champ_score:
        return True, (f"beats the champion on its validation data: median SDR {cand_sdr:.2f} vs {champ_sdr:.2f} dB, "
                      f"score {cand_score:.3f} vs {champ_score:.3f}")  # fmt: skip
    return False, (f"does not beat the champion on its validation data: median SDR {cand_sdr:.2f} vs "
                   f"{champ_sdr:.2f} dB, score {cand_score:.3f} vs {champ_score:.3f}")  # fmt: skip


def publish_run(session: Session, run, model, artifacts_dir: Path, metrics: dict) -> StemModel:
    """Exports the run's model, gates it, records it (and its promotion). Commits."""
    import keras

    from training.export import export_graph_model
    from training.model import predict

    dataset = session.get(Dataset, run.dataset_id)
    version = f"r{run.id}-{dataset.content_hash[:8]}"
    existing = session.scalar(select(StemModel).where(StemModel.version == version))
    if existing is not None:  # published by an earlier delivery of this task
        return existing
    directory = artifacts_dir / "models" / version
    spec = export_graph_model(model, directory / "float32")
    export_graph_model(model, directory / "float16", float16=True)
    model.save(directory / KERAS_FILE)

    validation = load_split(Path(dataset.path), "validation")
    float16_error = _float16_error(model, validation.features[:256])

    champion = current_champion(session)
    on_champion_data = champion_on_its_data = None
    if champion is not None and champion.manifest["feature_version"] == FEATURE_VERSION:
        champion_dataset = session.get(Dataset, champion.dataset_id)
        champion_split = load_split(Path(champion_dataset.path), "validation")
        champion_model = keras.models.load_model(Path(champion.path) / KERAS_FILE)
        on_champion_data = _report(predict(model, champion_split.features), champion_split)
        champion_on_its_data = _report(predict(champion_model, champion_split.features), champion_split)
    publish, reason = gate(metrics, on_champion_data, champion_on_its_data)

    manifest = {
        "version": version,
        "format": "tfjs-graph-model",
        "tfjs": "4.22",
        "model_json": {"float32": "float32/model.json", "float16": "float16/model.json"},
        **spec,
        "float16_max_abs_error": float16_error,
        "feature_version": FEATURE_VERSION,
        "dataset": {"id": dataset.id, "hash": dataset.content_hash, "counts": dataset.manifest["counts"]},
        "config": run.parameters,
        "metrics": metrics,
        "champion_comparison": {
            "champion": champion.version if champion else None,
            "candidate": on_champion_data["overall"] if on_champion_data else None,
            "champion_on_its_data": champion_on_its_data["overall"] if champion_on_its_data else None,
        },
    }
    manifest["files"] = _file_digests(directory)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    stem_model = StemModel(version=version, run_id=run.id, dataset_id=dataset.id, path=str(directory),
                           manifest=manifest, decision="published" if publish else "rejected", reason=reason)  # fmt: skip
    session.add(stem_model)
    session.flush()
    if publish:
        session.add(ModelPromotion(model_id=stem_model.id, promoted_by="pipeline", reason=reason))
    session.commit()
    return stem_model


def _file_digests(directory: Path) -> list[dict]:
    """Size and SHA-256 of every file Studio may fetch (both weight precisions)."""
    files = []
    for path in sorted(directory.glob("float*/*")):
        digest = hashlib.sha256(path.read_bytes()).digest()
        files.append({"path": path.relative_to(directory).as_posix(), "size": path.stat().st_size,
                      "sha256": digest.hex(), "integrity": "sha256-" + base64.b64encode(digest).decode()})  # fmt: skip
    return files


def promote(session: Session, model_id: int, promoted_by: str, reason: str) -> ModelPromotion:
    """Makes a model "latest". Commits."""
    if session.get(StemModel, model_id) is None:
        raise LookupError(f"no model {model_id}")
    promotion = ModelPromotion(model_id=model_id, promoted_by=promoted_by, reason=reason)
    session.add(promotion)
    session.commit()
    return promotion


def rollback(session: Session, promoted_by: str) -> ModelPromotion:
    """Makes "latest" the model that was latest before the current one. Commits."""
    history = session.scalars(select(ModelPromotion).order_by(ModelPromotion.id.desc())).all()
    if not history:
        raise LookupError("no model has been promoted yet")
    current = history[0].model_id
    previous = next((p.model_id for p in history[1:] if p.model_id != current), None)
    if previous is None:
        raise LookupError("there is no earlier model to roll back to")
    return promote(session, previous, promoted_by, f"rollback from model {current}")


def _report(predictions: np.ndarray, split: Split) -> dict:
    return evaluate(split.targets, predictions, split.masks, STEMS).as_dict()


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
