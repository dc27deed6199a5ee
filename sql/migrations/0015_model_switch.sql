-- Revision 0015 (frozen): switching the embedding model without mixing two vector spaces.
-- The new model's vectors are written beside pointers.embedding (a shadow table of this
-- project's own) until `embeddings cutover` swaps them in within one transaction; after
-- the cutover the shadow holds the previous vectors until `embeddings finalize`, so that
-- `embeddings rollback` can swap back. One row says which model each side holds: the
-- worker's write-back checks it in the same statement, so pointers.embedding never
-- receives a vector of any other model.

-- name: upgrade
CREATE TABLE IF NOT EXISTS pgqueue_enricher_embedding_switch (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- idle: no shadow; filling: the shadow fills with the new model; cut_over: pointers
    -- hold the new model and the shadow the previous one (rollback possible).
    phase text NOT NULL CHECK (phase IN ('idle', 'filling', 'cut_over')),
    current_model text NOT NULL,
    current_dimensions integer NOT NULL CHECK (current_dimensions > 0),
    shadow_model text,
    shadow_dimensions integer CHECK (shadow_dimensions > 0),
    started_at timestamptz NOT NULL DEFAULT now(),
    changed_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((phase = 'idle') = (shadow_model IS NULL) AND (shadow_model IS NULL) = (shadow_dimensions IS NULL))
);

-- No typmod: the shadow holds vectors of the new dimensions, and after a cutover the old ones.
CREATE TABLE IF NOT EXISTS pgqueue_enricher_embedding_shadow (
    pointer_id uuid PRIMARY KEY REFERENCES pointers (id) ON DELETE CASCADE,
    model text NOT NULL,
    dimensions integer NOT NULL,
    embedding vector NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Supabase exposes schema public to the anon key: nothing here is for the Data API.
ALTER TABLE pgqueue_enricher_embedding_switch ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgqueue_enricher_embedding_shadow ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON TABLE pgqueue_enricher_embedding_switch, pgqueue_enricher_embedding_shadow FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON TABLE pgqueue_enricher_embedding_switch, pgqueue_enricher_embedding_shadow
            FROM authenticated;
    END IF;
END
$$;

-- name: downgrade
DROP TABLE IF EXISTS pgqueue_enricher_embedding_shadow;
DROP TABLE IF EXISTS pgqueue_enricher_embedding_switch;
