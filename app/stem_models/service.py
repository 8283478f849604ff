"""Publishing a trained run: export TF.js weights (float32 and float16), decide whether it
becomes the latest model, and record either way.

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
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.datasets.models import Dataset
from app.datasets.service import load_split
from app.stem_models.models import ModelPromotion, StemModel
from app.stem_models.schemas import Headline, LatestManifest, StudioKitRef
from app.studio.service import KIT_PATH, kit_file
from app.wire import json_safe
from training.features import FEATURE_VERSION, Split
from training.metrics import PRIMARY, Margin, Report, evaluate, paired_margin, strongest_baseline

if TYPE_CHECKING:  # training.candidates imports Keras, which the API image does without
    from training.candidates import Choice

KERAS_FILE = "model.keras"


class GateRejected(Exception):
    """Promoting a model the gate rejected needs `force` and a reason."""


def current_champion(*, db_session: Session) -> StemModel | None:
    promotion = db_session.scalar(select(ModelPromotion).order_by(ModelPromotion.id.desc()).limit(1))
    return db_session.get(StemModel, promotion.model_id) if promotion else None


def latest_manifest(base_url: str, channel: str, *, db_session: Session) -> LatestManifest:
    """What Studio reads at /models/latest: the latest model's version, file URLs under
    `base_url`, stems, input and output, and its headline figures."""
    champion = current_champion(db_session=db_session)
    manifest, version = champion.manifest, champion.version
    base = f"{base_url}/models/{version}/files/"
    return LatestManifest(
        channel=channel,
        version=version,
        created_at=champion.created_at,
        model_json_url=base + manifest["model_json"]["float32"],
        float16_model_json_url=base + manifest["model_json"]["float16"],
        files=[{**f, "url": base + f["path"]} for f in manifest["files"]],
        stems=manifest["stems"],
        applied_stems=((manifest["metrics"] or {}).get("audio") or {}).get("applied_stems", manifest["stems"]),
        input=manifest["input"],
        output=manifest["output"],
        feature_version=manifest["feature_version"],
        studio_kit=StudioKitRef(url=base_url + KIT_PATH, integrity=kit_file("prime-fabric.js").integrity),
        metrics=headline(manifest["metrics"]),
    )


def latest_promotion_id(*, db_session: Session) -> int | None:
    """The newest promotion's id: when it has not changed, neither has the latest model."""
    return db_session.scalar(select(ModelPromotion.id).order_by(ModelPromotion.id.desc()).limit(1))


def get_by_version(version: str, *, db_session: Session) -> StemModel | None:
    return db_session.scalar(select(StemModel).where(StemModel.version == version))


def get_all(*, db_session: Session, run_id: int | None = None, limit: int | None = None) -> list[StemModel]:
    """Models, newest first; those a run produced, if given."""
    query = select(StemModel).order_by(StemModel.id.desc()).limit(limit)
    if run_id is not None:
        query = query.where(StemModel.run_id == run_id)
    return list(db_session.scalars(query))


def get_promotions(*, db_session: Session, limit: int | None = None) -> list[ModelPromotion]:
    """Who made which model latest, newest first."""
    return list(db_session.scalars(select(ModelPromotion).order_by(ModelPromotion.id.desc()).limit(limit)))


def headline(metrics: dict) -> Headline:
    """The figures that decide and that Studio and the dashboard show: the model's test level
    error and presence AUC, the strongest baseline's error, and the margin's interval."""
    if "margin" not in metrics:  # judged by an earlier feature version's metrics: nothing comparable
        return Headline()
    model, margin = metrics["model"], metrics["margin"]
    reference = margin.get("reference")
    predictor = (metrics.get("choice") or {}).get("predictor") or {}
    return Headline(
        predictor=predictor.get("name"),
        kind=predictor.get("kind"),
        level_error_db=model[PRIMARY],
        presence_auc=model["presence_auc"],
        false_activity=model["false_activity"],
        baseline=reference,
        baseline_error_db=metrics[reference][PRIMARY] if reference in metrics else None,
        margin_db=margin.get("difference_db"),
        margin_low_db=margin.get("low_db"),
        margin_high_db=margin.get("high_db"),
        test_snapshots=model["snapshots"],
        corrections_met=model.get("corrections_met"),
        corrections_only_snapshots=(metrics.get("corrections") or {}).get("corrections_only_snapshots"),
        sir_oracle_share=(metrics.get("audio") or {}).get("headline", {}).get("sir_oracle_share"),
        sdr_ceiling_share=(metrics.get("audio") or {}).get("headline", {}).get("sdr_ceiling_share"),
    )


def judge(reports: dict[str, Report], train: Split, choice: "Choice | None" = None) -> dict:
    """The metrics stored with a run: every report ("model" is the predictor that faces the
    gate), the margin over the strongest baseline (other than the predictor itself: ridge is
    not its own baseline), which candidate was chosen and why, and what users' corrections
    taught: how many training snapshots had corrections as their only label, and how often the
    model obeys the corrections of the test snapshots. JSON has no NaN (Postgres refuses it): a
    figure that cannot be computed is null."""
    itself = (choice.predictor.name,) if choice is not None and choice.predictor.name in reports else ()
    reference = strongest_baseline(reports, exclude=itself)
    margin = paired_margin(reports["model"].per_snapshot, reports[reference].per_snapshot, reference)
    corrections = {
        "corrections_only_snapshots": int(train.corrections_only.sum()),
        "held_out_cells": reports["model"].corrected_cells,
        "held_out_met": reports["model"].corrections_met,
        "baseline_held_out_met": reports[reference].corrections_met,
    }
    judged = {name: report.as_dict() for name, report in reports.items()} | {"margin": asdict(margin), "corrections": corrections}
    if choice is not None:
        judged["choice"] = choice.as_dict()
    return json_safe(judged)


def corrections_summary(metrics: dict) -> str:
    """One line on what users' corrections taught a run (empty for a run judged before they were counted)."""
    c = metrics.get("corrections")
    if not c:
        return ""
    met = (
        "no test snapshot was corrected"
        if not c["held_out_cells"]
        else (
            f"on the test split the model obeys {c['held_out_met']:.3f} of the {c['held_out_cells']} cells users' corrections "
            f"bound ({metrics['margin']['reference']}: {c['baseline_held_out_met']:.3f})"
        )
    )
    return f"trained with {c['corrections_only_snapshots']} snapshots whose only label is users' corrections; {met}"


def gate(
    metrics: dict, candidate_on_champion_data: Report | None = None, champion_on_its_data: Report | None = None
) -> tuple[bool, str]:
    """(publish?, why), from a run's judged metrics and, when there is a champion, both models'
    reports on the champion's test data."""
    choice = metrics.get("choice")
    margin = Margin(**{key: float("nan") if value is None else value for key, value in metrics["margin"].items()})
    model_error = metrics["model"][PRIMARY]
    if not np.isfinite(margin.difference_db):
        return False, "no test snapshot had a known stem level: nothing to judge on"
    figures = (
        f"level error {model_error:.2f} dB vs {metrics[margin.reference][PRIMARY]:.2f} dB for {margin.reference}, "
        f"difference {margin.difference_db:+.2f} dB, 95% interval [{margin.low_db:+.2f}, {margin.high_db:+.2f}] "
        f"over {margin.snapshots} test snapshots"
    )
    if metrics.get("corrections"):
        figures += f"; {corrections_summary(metrics)}"
    if choice:
        figures = f"{choice['predictor']['name']} ({choice['reason']}): {figures}"
    if not margin.significant_win:
        return False, f"does not beat the strongest baseline ({margin.reference}) with a margin above 0: {figures}"
    if candidate_on_champion_data is None:
        return True, f"beats the strongest baseline ({margin.reference}): {figures}; no champion yet"
    candidate, champion = candidate_on_champion_data.level_error_db, champion_on_its_data.level_error_db
    if candidate <= champion:
        return (
            True,
            f"beats the strongest baseline: {figures}; and the champion on its test data ({candidate:.2f} vs {champion:.2f} dB)",
        )
    return False, f"beats the baselines ({figures}) but not the champion on its test data: {candidate:.2f} vs {champion:.2f} dB"


def publish_run(run, model, store: ArtifactStore, metrics: dict, *, db_session: Session) -> StemModel:
    """Exports the run's model, gates it, puts its files in the artifact store, records it (and
    its promotion). Commits."""
    import keras

    from training.export import export_graph_model
    from training.model import predict

    dataset = db_session.get(Dataset, run.dataset_id)
    version = f"r{run.id}-{dataset.content_hash[:8]}"
    existing = db_session.scalar(select(StemModel).where(StemModel.version == version))
    if existing is not None:  # published by an earlier delivery of this task
        return existing
    key = f"models/{version}"
    directory = store.local(key)
    spec = export_graph_model(model, directory / "float32")
    export_graph_model(model, directory / "float16", float16=True)
    model.save(directory / KERAS_FILE)

    test = load_split(store.pull(dataset.artifact_key), "test")
    float16_error = _float16_error(model, test.features[:64])

    champion = current_champion(db_session=db_session)
    on_champion_data = champion_on_its_data = None
    if champion is not None and champion.manifest["feature_version"] == FEATURE_VERSION:
        champion_dataset = db_session.get(Dataset, champion.dataset_id)
        champion_split = load_split(store.pull(champion_dataset.artifact_key), "test")
        champion_model = keras.models.load_model(store.pull(champion.artifact_key) / KERAS_FILE)
        on_champion_data = evaluate(champion_split, predict(model, champion_split.features))
        champion_on_its_data = evaluate(champion_split, predict(champion_model, champion_split.features))
    publish, reason = gate(metrics, on_champion_data, champion_on_its_data)

    manifest = {
        "version": version,
        "format": "tfjs-graph-model",
        "tfjs": "4.22",
        "model_json": {"float32": "float32/model.json", "float16": "float16/model.json"},
        **spec,
        "float16_max_abs_error": float16_error,
        "feature_version": FEATURE_VERSION,
        "predictor": (metrics.get("choice") or {}).get("predictor"),
        "dataset": {"id": dataset.id, "hash": dataset.content_hash, "counts": dataset.manifest["counts"]},
        "config": run.parameters,
        "metrics": metrics,
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
        run_id=run.id,
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


def promote(model_id: int, promoted_by: str, reason: str, force: bool = False, *, db_session: Session) -> ModelPromotion:
    """Makes a model "latest". A model the gate rejected needs force=True and a reason of its
    own; the promotion records that it was forced. Commits."""
    model = db_session.get(StemModel, model_id)
    if model is None:
        raise LookupError(f"no model {model_id}")
    forced = model.decision != "published"
    if forced and not (force and reason.strip()):
        raise GateRejected(f"model {model_id} was rejected by the gate ({model.reason}); promoting it needs force and a reason")
    promotion = ModelPromotion(model_id=model_id, promoted_by=promoted_by, reason=reason, forced=forced)
    db_session.add(promotion)
    db_session.commit()
    return promotion


def rollback(promoted_by: str, *, db_session: Session) -> ModelPromotion:
    """Makes "latest" the model that was latest before the current one. Commits."""
    history = db_session.scalars(select(ModelPromotion).order_by(ModelPromotion.id.desc())).all()
    if not history:
        raise LookupError("no model has been promoted yet")
    current = history[0].model_id
    previous = next((p.model_id for p in history[1:] if p.model_id != current), None)
    if previous is None:
        raise LookupError("there is no earlier model to roll back to")
    return promote(previous, promoted_by, f"rollback from model {current}", force=True, db_session=db_session)


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
