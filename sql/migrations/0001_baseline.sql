-- Baseline Maestro tables. A live Maestro database already has them, so every object is
-- created only when absent. Downgrade never drops them: they belong to the host app.

-- name: upgrade
-- An installed vector stays where it is. A fresh install puts it into schema `extensions`
-- when that schema exists and is on the search_path (Supabase: its linter flags extensions
-- in the exposed schema public, and its postgres role has `extensions` on its search_path,
-- which resolves `vector(1024)` below and in the worker's statements); elsewhere it goes
-- where it always went, the first schema of the search_path.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        IF 'extensions' = ANY (current_schemas(false)) THEN
            CREATE EXTENSION vector WITH SCHEMA extensions;
        ELSE
            CREATE EXTENSION vector;
        END IF;
    END IF;
END
$$;

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
