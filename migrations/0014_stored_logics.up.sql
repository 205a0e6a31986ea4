-- Stored logics and schedules through the API (issue 13, items 3 and 4).
--
-- A stored logic is versioned: logics keeps the current version's name and
-- body (so the columns read by reruns and the "logic" list filter keep their
-- meaning) and its number; logic_versions keeps every version, immutable,
-- with its hash. PUT /v1/logics/{id} adds version n + 1 and moves logics to
-- it in one statement. DELETE is soft (deleted_at): jobs keep referring to
-- the version they ran, a deleted logic takes no new submission.
--
-- A job submitted by a stored logic records its version (jobs.logic_version
-- next to logic_id, migration 0012); a sweep records both on its batch; a
-- schedule created from a stored logic pins one version (its body is copied
-- into schedules.logic, as before) and its firings' jobs carry both.
--
-- Lists: logics and schedules of a user newest first by (created_at, id),
-- a schedule's signals newest first by (created_at, job_id), each a keyset
-- range of one index led by the owner (or the schedule).
ALTER TABLE logics
    ADD COLUMN version    integer NOT NULL DEFAULT 1,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deleted_at timestamptz;

CREATE TABLE logic_versions (
    logic_id    uuid NOT NULL REFERENCES logics (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version >= 1),
    name        text NOT NULL,
    body        jsonb NOT NULL,
    logic_hash  text NOT NULL,                  -- as jobs.logic_hash: SHA-256 of body::text
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (logic_id, version)
);
INSERT INTO logic_versions (logic_id, version, name, body, logic_hash, created_at)
    SELECT id, 1, name, body, encode(sha256(convert_to(body::text, 'UTF8')), 'hex'), created_at FROM logics;

ALTER TABLE jobs ADD COLUMN logic_version integer;
ALTER TABLE batches
    ADD COLUMN logic_id uuid,
    ADD COLUMN logic_version integer;
ALTER TABLE schedules
    ADD COLUMN logic_id uuid,
    ADD COLUMN logic_version integer;

CREATE INDEX logics_user_list ON logics (user_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX schedules_user_list ON schedules (user_id, created_at, id);
CREATE INDEX signals_schedule_list ON signals (schedule_id, created_at, job_id);
