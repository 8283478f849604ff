from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class Dataset(Base):
    """One built dataset. The same members, feature version and split shares give the same
    `content_hash`, so building again finds the existing dataset instead of a copy."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    run_label: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    feature_version: Mapped[str] = mapped_column(String(16))
    train_ratio: Mapped[float] = mapped_column(Float)  # the training share; validation and test share the rest
    train_count: Mapped[int] = mapped_column(Integer)
    validation_count: Mapped[int] = mapped_column(Integer)
    test_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    artifact_key: Mapped[str] = mapped_column(String(1024))  # in the artifact store (app/artifacts.py)
    manifest: Mapped[dict] = mapped_column(JSON)
