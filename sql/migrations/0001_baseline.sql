-- Baseline Maestro tables. A live Maestro database already has them, so every object is
-- created only when absent. Downgrade never drops them: they belong to the host app.

-- name: upgrade
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS projects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id text NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS disciplines (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid REFERENCES projects (id) ON DELETE CASCADE,
    name text NOT NULL,
    display_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    discipline_id uuid REFERENCES disciplines (id) ON DELETE CASCADE,
    page_name text NOT NULL,
    file_path text NOT NULL DEFAULT '',
    sheet_reflection text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pointers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    page_id uuid REFERENCES pages (id) ON DELETE CASCADE,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    bbox_x double precision NOT NULL DEFAULT 0,
    bbox_y double precision NOT NULL DEFAULT 0,
    bbox_width double precision NOT NULL DEFAULT 0,
    bbox_height double precision NOT NULL DEFAULT 0,
    png_path text,
    embedding vector(1024),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- name: downgrade
SELECT 1;
