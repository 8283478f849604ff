from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, false, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class StemModel(Base):
    """A trained model, exported for Studio. `decision` is "published" when it passed the gate
    (beats the strongest baseline on its test split by a significant margin, and the
    champion on the champion's test data), else "rejected"
    with the reason; rejected models are kept."""

    __tablename__ = "stem_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    artifact_key: Mapped[str] = mapped_column(String(1024))  # in the artifact store (app/artifacts.py)
    manifest: Mapped[dict] = mapped_column(JSON)  # what Studio needs to run it, and its metrics
    decision: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text)


class ModelPromotion(Base):
    """Each time a model became "latest"; the newest row is the current champion."""

    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("stem_models.id"), index=True)
    promoted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    promoted_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # a gate-rejected model, promoted anyway
