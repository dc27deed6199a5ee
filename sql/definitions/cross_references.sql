-- Cross-references that lead somewhere: each string of pointers.cross_references parsed into
-- kind, detail and sheet, and resolved at read time to a page (and a detail) of the SAME
-- project. Nothing is stored: a page uploaded after the pointer was enriched resolves its
-- references the next time the view is read. docs/cross-references.md explains the rules.
--
-- - parse_cross_reference(text): one row (kind, detail, sheet, spec_section) per string;
-- - normalise_sheet_id(text): the key two spellings of one sheet share;
-- - pointer_title_detail(text): the detail id a pointer's title names ("Detail 4 - ...");
-- - view pointer_cross_reference_links: one row per reference of every complete pointer;
-- - idx_pages_discipline_sheet: pages by (discipline, normalised name), so that resolving a
--   reference reads the project's disciplines and one index entry each.
--
-- The index spells the normalisation out in built-in functions instead of calling
-- normalise_sheet_id(): an index expression runs with the privileges of whoever writes the
-- row, and the host's own roles insert pages without EXECUTE on this project's functions.
-- The view repeats that expression verbatim so the planner matches it to the index; the
-- three spellings (function, index, view) must stay identical.

-- name: upgrade
CREATE OR REPLACE FUNCTION public.normalise_sheet_id(sheet text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = ''
AS $$
    -- Upper case; spaces, dashes and underscores dropped; a dot kept only between two digits
    -- (A-501 = A501 = A 501, A3.01 = A-3.01, A3.01 <> A301, A.501 = A501).
    SELECT pg_catalog.regexp_replace(
        pg_catalog.regexp_replace(pg_catalog.upper(sheet), '[[:space:]_-]+', '', 'g'),
        '(?<![0-9])\.|\.(?![0-9])', '', 'g')
$$;

CREATE OR REPLACE FUNCTION public.pointer_title_detail(title text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = ''
AS $$
    SELECT coalesce(
        -- A keyword names the id: "Detail 4", "DETAIL 4 - WALL SECTION", "Wall section B".
        (pg_catalog.regexp_match(
            pg_catalog.upper(title),
            '(?:^|[^A-Z])(?:DETAIL|DET|DTL|SECTION|SECT|ELEVATION|ELEV)\.?[[:space:]]*#?[[:space:]]*'
            '([A-Z]?[0-9]{1,3}[A-Z]?|[A-Z])(?:$|[^A-Z0-9.]|\.(?![0-9]))(?![[:space:]]*[0-9])'))[1],
        -- The bubble's number leads the title: "4 - WALL SECTION", "4/A3.01", "4: HEAD".
        (pg_catalog.regexp_match(
            pg_catalog.upper(title), '^[[:space:]]*([A-Z]?[0-9]{1,3}[A-Z]?)[[:space:]]*(?:[-:/)]|$)'))[1]
    )
$$;

CREATE OR REPLACE FUNCTION public.parse_cross_reference(reference text)
RETURNS TABLE (kind text, detail text, sheet text, spec_section text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE ROWS 1
SET search_path = ''
AS $$
DECLARE
    -- A sheet id: one to two letters, its own separator, a number of three or four digits or
    -- a dotted one (A-501, S101, A3.01, M-2.1), an optional revision letter (E-601A). An O in
    -- the number is an OCR slip for 0 (A5O1, S-1O1) and is read as 0.
    sheet_re constant text :=
        '([A-Z]{1,2})([-. ]?)((?:[0-9][0-9O]{2,3}|[0-9O]{1,2}\.[0-9O]{1,3}))([A-Z]?)';
    -- After SHEET, SHT or DWG, or inside a callout, a short number is a sheet too (SHEET A2).
    short_sheet_re constant text :=
        '([A-Z]{1,2})([-. ]?)((?:[0-9][0-9O]{0,3}|[0-9O]{1,2})(?:\.[0-9O]{1,3})?)([A-Z]?)';
    not_before constant text := '(?:^|[^A-Z0-9./-])';
    not_after constant text := '(?=$|[^A-Z0-9./-]|[./-](?![0-9A-Z]))';
    callout_kw constant text := '(DETAILS?|DET|DTL|SECTION|SECT|SEC|ELEVATION|ELEV|EL)\.?';
    t text;
    m text[];
BEGIN
    -- One spelling to read: upper case, single spaces.
    t := pg_catalog.upper(pg_catalog.btrim(pg_catalog.regexp_replace(coalesce(reference, ''), '[[:space:]]+', ' ', 'g')));

    -- The canonical forms this project writes (providers/references.py) first, through
    -- boolean matches: most strings are one of them, and a match with capture groups costs
    -- five to ten times as much.
    IF t ~ '^[A-Z]{1,2}-?(?:[0-9]{3,4}|[0-9]{1,2}\.[0-9]{1,3})[A-Z]?$' AND NOT (t LIKE 'R%' AND t LIKE '%.%') THEN
        kind := 'sheet';
        sheet := t;
        RETURN NEXT;
        RETURN;
    END IF;
    IF t ~ '^(?:DETAIL|SECTION|ELEVATION) (?:[A-Z]?[0-9]{1,3}[A-Z]?|[A-Z])/[A-Z]{1,2}-?[0-9]{1,4}(?:\.[0-9]{1,3})?[A-Z]?$' THEN
        kind := pg_catalog.lower(pg_catalog.split_part(t, ' ', 1));
        detail := pg_catalog.split_part(pg_catalog.split_part(t, ' ', 2), '/', 1);
        sheet := pg_catalog.split_part(t, '/', 2);
        RETURN NEXT;
        RETURN;
    END IF;
    IF t ~ '^[0-4][0-9] [0-9]{2} [0-9]{2}(?:\.[0-9]{2,3})?$' THEN
        kind := 'spec_section';
        spec_section := t;
        RETURN NEXT;
        RETURN;
    END IF;

    -- Standards designations (ASTM A615, UL U419) have the shape of a sheet id and are
    -- never one.
    t := pg_catalog.regexp_replace(
        t, '(?:^|[^A-Z])(?:ASTM|ANSI|AASHTO|ACI|AISC|AWS|CSA|ISO|EN|DIN|BS|UL|FM|NFPA|IBC|IEEE)[ -]*[A-Z]{0,2}[0-9][0-9A-Z.-]*',
        ' ', 'g');

    -- Door and window tags, only when the text says door or window: "DOOR D-101", "WINDOW TYPE W3".
    m := pg_catalog.regexp_match(t,
        '(?:^|[^A-Z])(?:DOOR|DR|WINDOW|WDW|WNDW|WIN)\.?[ ]?(?:TAG|TYPE|MARK|NO\.?|NUMBER)?[ ]?#?[ ]?'
        '([A-Z]{0,2}-?[0-9]{1,4}[A-Z]?)(?=$|[^A-Z0-9])');
    IF m IS NOT NULL THEN
        kind := 'tag';
        detail := m[1];
        RETURN NEXT;
        RETURN;
    END IF;

    -- A callout with its keyword: "DETAIL 4 / A3.01", "SECTION B/S-301", "ELEV 1/A-201",
    -- "DETAIL 4 ON SHEET A3.01". The keyword may stand alone or follow SEE, REF, PER.
    -- The pattern is the costliest here: only text with a keyword is matched against it.
    IF t ~ '(DET|DTL|SEC|EL)' THEN
        m := pg_catalog.regexp_match(t,
            not_before || callout_kw || '[ ]?#?[ ]?([A-Z]?[0-9]{1,3}[A-Z]?|[A-Z])'
            || '(?:[ ]?/[ ]?|,? (?:ON )?(?:SHEET |SHT\.? ?|DWG\.? ?)?)' || short_sheet_re || not_after);
    END IF;
    IF m IS NULL AND pg_catalog.strpos(t, '/') > 0 THEN
        -- The bubble alone: "3/A-501", "SEE 3/A501", "4/A3.01 SIM."; a letter alone before
        -- the slash needs a keyword ("W/ A-501" is "with"); OCR may glue SEE or REF to the
        -- number ("SEE3/A501").
        m := pg_catalog.regexp_match(t,
            '(?:^|[^A-Z0-9./-]|(?<=SEE)|(?<=REF))()([A-Z]?[0-9]{1,3}[A-Z]?)[ ]?/[ ]?' || short_sheet_re
            || not_after);
    END IF;
    IF m IS NOT NULL THEN
        kind := CASE WHEN m[1] LIKE 'SEC%' THEN 'section' WHEN m[1] LIKE 'EL%' THEN 'elevation' ELSE 'detail' END;
        detail := m[2];
        sheet := m[3] || m[4] || pg_catalog.translate(m[5], 'O', '0') || m[6];
        RETURN NEXT;
        RETURN;
    END IF;

    -- A specification section: "09 21 16", "SPEC SECTION 09 21 16", "092116", "09 21 16.13".
    -- MasterFormat divisions run 00 to 49; a longer run of numbers is a table, not a section.
    m := pg_catalog.regexp_match(t,
        '(?:^|[^0-9.''"/-])([0-4][0-9]) ?([0-9]{2}) ?([0-9]{2})(?:\.([0-9]{2,3}))?(?=$|[^0-9''"/]|\.(?![0-9]))'
        '(?! [0-9])');
    IF m IS NOT NULL THEN
        kind := 'spec_section';
        spec_section := m[1] || ' ' || m[2] || ' ' || m[3] || coalesce('.' || m[4], '');
        RETURN NEXT;
        RETURN;
    END IF;

    -- A sheet after SHEET/SHT/DWG may have a short number: "SEE SHEET E-201", "SHT A2".
    m := pg_catalog.regexp_match(t,
        '(?:^|[^A-Z])(?:SHEETS?|SHT|DWG|DRAWING)\.? ?(?:NO\.? ?|#)?' || short_sheet_re || not_after);
    IF m IS NULL THEN
        m := pg_catalog.regexp_match(t, not_before || sheet_re || not_after);
        -- R-13.5 is an insulation value with the shape of a dotted sheet number.
        IF m IS NOT NULL AND m[1] = 'R' AND m[3] LIKE '%.%' THEN
            m := NULL;
        END IF;
    END IF;
    IF m IS NOT NULL THEN
        kind := 'sheet';
        sheet := m[1] || m[2] || pg_catalog.translate(m[3], 'O', '0') || m[4];
        RETURN NEXT;
        RETURN;
    END IF;

    -- "TYP. SEE STRUCT.", "SEE ARCH.", free text: a reference that names nothing to follow.
    kind := 'unknown';
    RETURN NEXT;
END
$$;

CREATE INDEX IF NOT EXISTS idx_pages_discipline_sheet ON public.pages (
    discipline_id,
    (pg_catalog.regexp_replace(
        pg_catalog.regexp_replace(pg_catalog.upper(page_name), '[[:space:]_-]+', '', 'g'),
        '(?<![0-9])\.|\.(?![0-9])', '', 'g'))
);
COMMENT ON INDEX public.idx_pages_discipline_sheet IS
    'pgqueue-enricher: pages by normalise_sheet_id(page_name), for pointer_cross_reference_links';

-- Runs with the reader's privileges (security_invoker): it shows nothing the reader could
-- not read from pointers, pages and disciplines directly.
CREATE OR REPLACE VIEW public.pointer_cross_reference_links WITH (security_invoker = true) AS
SELECT p.id AS pointer_id,
       d.project_id,
       r.reference,
       x.kind,
       x.detail,
       x.sheet,
       tp.id AS target_page_id,
       tq.id AS target_pointer_id
FROM public.pointers AS p
JOIN public.pages AS pg ON pg.id = p.page_id
JOIN public.disciplines AS d ON d.id = pg.discipline_id
CROSS JOIN LATERAL pg_catalog.jsonb_array_elements_text(
    CASE WHEN pg_catalog.jsonb_typeof(p.cross_references) = 'array' THEN p.cross_references
         ELSE '[]'::jsonb END
) AS r(reference)
CROSS JOIN LATERAL public.parse_cross_reference(r.reference) AS x
LEFT JOIN LATERAL (
    -- A page of the same project only; of two pages with one sheet id, the one spelled like
    -- the reference, then the newest upload.
    SELECT tpg.id
    FROM public.disciplines AS td
    JOIN public.pages AS tpg ON tpg.discipline_id = td.id
    WHERE td.project_id = d.project_id
      AND x.sheet IS NOT NULL
      AND pg_catalog.regexp_replace(
              pg_catalog.regexp_replace(pg_catalog.upper(tpg.page_name), '[[:space:]_-]+', '', 'g'),
              '(?<![0-9])\.|\.(?![0-9])', '', 'g')
          = public.normalise_sheet_id(x.sheet)
    ORDER BY pg_catalog.upper(tpg.page_name) = x.sheet DESC, tpg.created_at DESC, tpg.id
    LIMIT 1
) AS tp ON true
LEFT JOIN LATERAL (
    -- A pointer of that page whose title names the detail ("Detail 4 - Wall section").
    SELECT q.id
    FROM public.pointers AS q
    WHERE q.page_id = tp.id
      AND x.kind IN ('detail', 'section', 'elevation')
      AND public.pointer_title_detail(q.title) = x.detail
    ORDER BY q.created_at, q.id
    LIMIT 1
) AS tq ON true
WHERE p.enrichment_status = 'complete';
COMMENT ON VIEW public.pointer_cross_reference_links IS
    'pgqueue-enricher: each cross-reference of a complete pointer, resolved to a page and pointer of its own project';

-- Nothing here for the Data API roles (Supabase); service_role reads and calls. Where those
-- roles do not exist (plain Postgres) PUBLIC keeps its default EXECUTE, like every function
-- of this project.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.normalise_sheet_id(text), public.pointer_title_detail(text),
            public.parse_cross_reference(text) FROM PUBLIC;
        REVOKE ALL ON public.pointer_cross_reference_links FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.normalise_sheet_id(text), public.pointer_title_detail(text),
            public.parse_cross_reference(text) FROM anon;
        REVOKE ALL ON public.pointer_cross_reference_links FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.normalise_sheet_id(text), public.pointer_title_detail(text),
            public.parse_cross_reference(text) FROM authenticated;
        REVOKE ALL ON public.pointer_cross_reference_links FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION public.normalise_sheet_id(text), public.pointer_title_detail(text),
            public.parse_cross_reference(text) TO service_role;
        GRANT SELECT ON public.pointer_cross_reference_links TO service_role;
    END IF;
END
$$;

-- name: downgrade
DROP VIEW IF EXISTS public.pointer_cross_reference_links;
DROP INDEX IF EXISTS public.idx_pages_discipline_sheet;
DROP FUNCTION IF EXISTS public.parse_cross_reference(text);
DROP FUNCTION IF EXISTS public.pointer_title_detail(text);
DROP FUNCTION IF EXISTS public.normalise_sheet_id(text);
