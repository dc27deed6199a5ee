"""The Maestro host's own database, rebuilt from what its repository does, for adoption tests.

Three situations a deployer meets: the production schema before any V3 (`HOST_BASELINE`),
the same after the host's own Alembic revision v3_schema_001 (`HOST_V3`, not idempotent,
exactly like the host's), and the local-development schema with varchar(36) ids
(`HOST_BASELINE_VARCHAR`). Written from the facts, not copied from the host's code.
"""

from __future__ import annotations

import psycopg

_TABLES = """
CREATE EXTENSION IF NOT EXISTS vector;

CREATE OR REPLACE FUNCTION host_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END
$$;

CREATE TABLE projects (
    id {id} PRIMARY KEY{id_default},
    user_id text,
    name text,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE disciplines (
    id {id} PRIMARY KEY{id_default},
    project_id {id} REFERENCES projects (id) ON DELETE CASCADE,
    name text NOT NULL,
    display_name text NOT NULL,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE pages (
    id {id} PRIMARY KEY{id_default},
    discipline_id {id} REFERENCES disciplines (id) ON DELETE CASCADE,
    page_name text NOT NULL,
    file_path text,
    sheet_reflection text,
    page_type text,
    cross_references jsonb,
    page_embedding vector(1024),
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE pointers (
    id {id} PRIMARY KEY{id_default},
    page_id {id} REFERENCES pages (id) ON DELETE CASCADE,
    title text NOT NULL,
    description text NOT NULL,
    text_spans text[],
    bbox_x double precision,
    bbox_y double precision,
    bbox_width double precision,
    bbox_height double precision,
    png_path text,
    embedding vector(1024),
    ocr_data jsonb,
    needs_embedding boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE INDEX pointers_embedding_ivfflat ON pointers USING ivfflat (embedding vector_cosine_ops) WITH (lists = 10);

CREATE TRIGGER projects_updated_at BEFORE UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION host_touch_updated_at();
CREATE TRIGGER disciplines_updated_at BEFORE UPDATE ON disciplines FOR EACH ROW EXECUTE FUNCTION host_touch_updated_at();
CREATE TRIGGER pages_updated_at BEFORE UPDATE ON pages FOR EACH ROW EXECUTE FUNCTION host_touch_updated_at();
CREATE TRIGGER pointers_updated_at BEFORE UPDATE ON pointers FOR EACH ROW EXECUTE FUNCTION host_touch_updated_at();

-- The host's old sessions table, renamed: its constraint names stayed.
CREATE TABLE conversations (
    id {id}{id_default},
    project_id {id},
    title text,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE
);

CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('host_pre_v3');
"""

HOST_BASELINE = _TABLES.format(id="uuid", id_default=" DEFAULT gen_random_uuid()")
HOST_BASELINE_VARCHAR = _TABLES.format(id="varchar(36)", id_default="")

# The host's revision v3_schema_001: plain ADD COLUMN (fails when a column exists), its names.
HOST_V3 = """
ALTER TABLE pointers ADD COLUMN enrichment_status varchar(20) NOT NULL DEFAULT 'pending';
ALTER TABLE pointers ADD COLUMN cross_references jsonb;
ALTER TABLE pointers ADD COLUMN enrichment_metadata jsonb;
CREATE INDEX idx_pointers_enrichment_status ON pointers (enrichment_status);
UPDATE pointers SET enrichment_status = 'complete'
WHERE description IS NOT NULL AND description <> '' AND embedding IS NOT NULL;

CREATE TABLE experience_files (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path text NOT NULL,
    content text NOT NULL DEFAULT '',
    updated_by_session uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_experience_files_project_path UNIQUE (project_id, path)
);
CREATE INDEX idx_experience_files_project ON experience_files (project_id);

CREATE TABLE sessions (
    id uuid DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL,
    user_id text NOT NULL,
    session_type varchar(20) NOT NULL,
    workspace_id uuid,
    workspace_name text,
    maestro_messages jsonb NOT NULL DEFAULT '[]'::jsonb,
    learning_messages jsonb NOT NULL DEFAULT '[]'::jsonb,
    workspace_state jsonb,
    status varchar(20) NOT NULL DEFAULT 'active',
    last_active_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_sessions PRIMARY KEY (id),
    CONSTRAINT fk_sessions_project FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT ck_sessions_session_type CHECK (session_type IN ('workspace', 'telegram')),
    CONSTRAINT ck_sessions_status CHECK (status IN ('active', 'idle', 'closed'))
);
CREATE INDEX idx_sessions_project ON sessions (project_id);
CREATE INDEX idx_sessions_user ON sessions (user_id);
CREATE INDEX idx_sessions_active ON sessions (status) WHERE status = 'active';

CREATE TABLE benchmark_logs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), session_id uuid REFERENCES sessions (id));

UPDATE alembic_version SET version_num = 'v3_schema_001';
"""

# What the host's own objects are called: adoption must keep every one of them.
HOST_V3_INDEXES = {
    "idx_pointers_enrichment_status",
    "uq_experience_files_project_path",
    "idx_experience_files_project",
    "idx_sessions_project",
    "idx_sessions_user",
    "idx_sessions_active",
}


def build(url: str, *scripts: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for script in scripts:
            conn.execute(script.encode())


def duplicate_indexes(url: str) -> list[tuple[str, list[str]]]:
    """Tables with two or more indexes of the same definition (name aside)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT tablename, regexp_replace(indexdef, '^CREATE (UNIQUE )?INDEX \\S+ ON ', ''),
                   array_agg(indexname ORDER BY indexname)
            FROM pg_indexes WHERE schemaname = 'public'
            GROUP BY 1, 2 HAVING count(*) > 1
            """
        ).fetchall()
    return [(row[0], row[2]) for row in rows]
