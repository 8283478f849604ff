"""The model registry: which models exist, which is latest, who made it so, and the manifest
Studio reads. Publishing a run's model is app/stem_models/publishing.py."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.stem_models.models import ModelPromotion, StemModel
from app.stem_models.schemas import Headline, LatestManifest, ModelSummary, StudioKitRef
from app.studio.service import KIT_PATH, kit_file
from training.judgement import Judgement


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
    judgement = Judgement.stored(manifest["metrics"])
    base = f"{base_url}/models/{version}/files/"
    return LatestManifest(
        channel=channel,
        version=version,
        created_at=champion.created_at,
        model_json_url=base + manifest["model_json"]["float32"],
        float16_model_json_url=base + manifest["model_json"]["float16"],
        files=[{**f, "url": base + f["path"]} for f in manifest["files"]],
        stems=manifest["stems"],
        applied_stems=(judgement.applied_stems if judgement and judgement.applied_stems is not None else manifest["stems"]),
        input=manifest["input"],
        output=manifest["output"],
        feature_version=manifest["feature_version"],
        studio_kit=StudioKitRef(url=base_url + KIT_PATH, integrity=kit_file("prime-fabric.js").integrity),
        metrics=Headline.of(judgement),
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


def summaries(models: list[StemModel], *, db_session: Session) -> list[ModelSummary]:
    """What operators and the dashboard read of each model: its decision and headline figures."""
    champion = current_champion(db_session=db_session)
    return [
        ModelSummary(
            id=model.id,
            version=model.version,
            created_at=model.created_at,
            run_id=model.run_id,
            decision=model.decision,
            reason=model.reason,
            is_latest=champion is not None and model.id == champion.id,
            metrics=Headline.of(Judgement.stored(model.manifest["metrics"])),
        )
        for model in models
    ]
