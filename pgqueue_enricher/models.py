"""SQLAlchemy 2 models of the tables this project reads and adds, importable by the host app.

They describe the schema the migrations create (a test runs Alembic's autogenerate
comparison to prove it); the migrations themselves run the SQL in sql/, not these classes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS


class Base(DeclarativeBase):
    pass


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _timestamp() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()


class Discipline(Base):
    __tablename__ = "disciplines"
    __table_args__ = (Index("idx_disciplines_project_id", "project_id"),)

    id: Mapped[uuid.UUID] = _id()
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    display_name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()


class Page(Base):
    __tablename__ = "pages"
    __table_args__ = (
        Index("idx_pages_discipline_id", "discipline_id"),
        # Cross-references (revision 0013): pages by project discipline and normalised sheet id,
        # the expression of normalise_sheet_id() spelled out (sql/definitions/cross_references.sql says why).
        Index(
            "idx_pages_discipline_sheet",
            "discipline_id",
            text(
                "regexp_replace(regexp_replace(upper(page_name), '[[:space:]_-]+', '', 'g'), "
                "'(?<![0-9])\\.|\\.(?![0-9])', '', 'g')"
            ),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    discipline_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("disciplines.id", ondelete="CASCADE")
    )
    page_name: Mapped[str] = mapped_column(Text, nullable=False)
    file_path: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    sheet_reflection: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()


class Pointer(Base):
    __tablename__ = "pointers"
    __table_args__ = (
        CheckConstraint(
            "enrichment_status IN ('pending', 'processing', 'complete', 'failed')",
            name="pointers_enrichment_status_check",
        ),
        Index("idx_pointers_page_id", "page_id"),
        Index("idx_pointers_enrichment_status", "enrichment_status"),
        Index(
            "idx_pointers_enrichment_claim",
            "created_at",
            "id",
            postgresql_where=text("enrichment_status = 'pending'"),
        ),
        Index(
            "idx_pointers_enrichment_lease",
            "enrichment_locked_until",
            postgresql_where=text("enrichment_status = 'processing'"),
        ),
        # Scheduling (revision 0008)
        CheckConstraint(
            "enrichment_lane IN ('interactive', 'backfill')", name="pointers_enrichment_lane_check"
        ),
        Index(
            "idx_pointers_enrichment_turn",
            "enrichment_lane",
            "enrichment_turn",
            "created_at",
            "id",
            postgresql_where=text("enrichment_status = 'pending'"),
        ),
        Index(
            "idx_pointers_enrichment_project_turn",
            "enrichment_project_id",
            "enrichment_lane",
            "enrichment_turn",
            postgresql_where=text("enrichment_status = 'pending'"),
        ),
        # The dashboard's recent completions (revision 0016)
        Index(
            "idx_pointers_enrichment_completed",
            "updated_at",
            postgresql_where=text("enrichment_status = 'complete'"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    page_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("pages.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    bbox_x: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0"))
    bbox_y: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0"))
    bbox_width: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0"))
    bbox_height: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0"))
    png_path: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIMENSIONS), nullable=True)
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()

    # V3 foundation
    enrichment_status: Mapped[str] = mapped_column(
        String(20),
        nullable=False,
        server_default=text("'pending'"),
        comment="pgqueue-enricher: pending | processing | complete | failed",
    )
    cross_references: Mapped[Any] = mapped_column(
        JSONB, nullable=True, comment="pgqueue-enricher: distinct sheet, detail and spec references"
    )
    enrichment_metadata: Mapped[Any] = mapped_column(
        JSONB, nullable=True, comment="pgqueue-enricher: model, usage, latency, stage"
    )

    # Queue bookkeeping
    enrichment_attempts: Mapped[int] = mapped_column(
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="pgqueue-enricher: attempts spent, given back on a graceful stop",
    )
    enrichment_error: Mapped[str | None] = mapped_column(
        Text, comment="pgqueue-enricher: last failure, a sentence a person can act on"
    )
    enrichment_locked_by: Mapped[str | None] = mapped_column(
        Text, comment="pgqueue-enricher: worker holding the lease"
    )
    enrichment_locked_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="pgqueue-enricher: end of the lease"
    )
    enrichment_run_after: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="pgqueue-enricher: earliest retry time"
    )

    # Scheduling (revision 0008): kept by the pointers_schedule trigger
    enrichment_project_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), comment="pgqueue-enricher: project of the page, kept by trigger"
    )
    enrichment_lane: Mapped[str] = mapped_column(
        String(20),
        nullable=False,
        server_default=text("'interactive'"),
        comment="pgqueue-enricher: interactive | backfill",
    )
    enrichment_turn: Mapped[int | None] = mapped_column(
        BigInteger, comment="pgqueue-enricher: place in the lane's fair rotation"
    )


class ExperienceFile(Base):
    __tablename__ = "experience_files"
    __table_args__ = (
        UniqueConstraint("project_id", "path", name="experience_files_project_id_path_key"),
        Index("idx_experience_files_project_id", "project_id"),
        {"comment": "pgqueue-enricher: per-project Experience files"},
    )

    id: Mapped[uuid.UUID] = _id()
    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    path: Mapped[str] = mapped_column(Text, nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    updated_by_session: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("session_type IN ('workspace', 'telegram')", name="ck_sessions_session_type"),
        CheckConstraint("status IN ('active', 'idle', 'closed')", name="ck_sessions_status"),
        Index("idx_sessions_project_id", "project_id"),
        Index("idx_sessions_user_id", "user_id"),
        Index("idx_sessions_active", "status", postgresql_where=text("status = 'active'")),
        {"comment": "pgqueue-enricher: Maestro V3 sessions"},
    )

    id: Mapped[uuid.UUID] = _id()
    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[str] = mapped_column(Text, nullable=False)
    session_type: Mapped[str] = mapped_column(Text, nullable=False)
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    workspace_name: Mapped[str | None] = mapped_column(Text)
    maestro_messages: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    learning_messages: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    workspace_state: Mapped[Any] = mapped_column(
        JSONB,
        nullable=True,
        server_default=text(
            """'{"displayed_pages": [], "highlighted_pointers": [], "pinned_pages": []}'::jsonb"""
        ),
    )
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'active'"))
    last_active_at: Mapped[datetime] = _timestamp()
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()
