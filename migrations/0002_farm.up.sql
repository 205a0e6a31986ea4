-- The farm: API keys, market data, jobs and their results, batches (sweeps),
-- the scheduler's leader row, cron schedules and their firings, signals.
-- PostgreSQL is the system of record; Redis holds only job ids for dispatch.

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash    bytea NOT NULL UNIQUE,          -- SHA-256 of the key; the key itself is shown once
    prefix      text NOT NULL,                  -- first characters, to recognise a key in lists
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- One row per (symbol, timeframe); every import bumps version, so workers
-- cache data sets keyed by symbol, timeframe and version.
CREATE TABLE datasets (
    symbol      text NOT NULL,
    timeframe   text NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    bars        integer NOT NULL DEFAULT 0,
    first_ts    timestamptz,
    last_ts     timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, timeframe)
);

CREATE TABLE bars (
    symbol      text NOT NULL,
    timeframe   text NOT NULL,
    ts          timestamptz NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL,
    PRIMARY KEY (symbol, timeframe, ts),
    FOREIGN KEY (symbol, timeframe) REFERENCES datasets (symbol, timeframe) ON DELETE CASCADE
);

CREATE TABLE logics (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    body        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX logics_user ON logics (user_id);

CREATE TYPE job_status AS ENUM
    ('pending', 'queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled');
CREATE TYPE job_kind AS ENUM ('backtest', 'logic_execution');

-- Fencing tokens: every claim takes a fresh one; a completion commits only
-- while its token is still the job's token.
CREATE SEQUENCE job_fence_seq;

-- A sweep: the logic and the grid live here once; each child job carries
-- only its combination index.
CREATE TABLE batches (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    logic       jsonb NOT NULL,
    grid        json NOT NULL,                  -- json, not jsonb: combination indices follow the key order as submitted
    symbol      text NOT NULL,
    timeframe   text NOT NULL,
    total       integer NOT NULL,
    rank_by     text NOT NULL DEFAULT 'sharpe',
    idempotency_key text,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);

CREATE TABLE jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            job_kind NOT NULL DEFAULT 'backtest',
    status          job_status NOT NULL DEFAULT 'pending',
    priority        smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 2), -- 0 high, 1 normal, 2 low
    batch_id        uuid REFERENCES batches (id) ON DELETE CASCADE,
    combo_index     integer,                    -- sweep member: index into the batch's grid
    logic           jsonb,                      -- NULL for sweep members (the batch holds it)
    symbol          text NOT NULL,
    timeframe       text NOT NULL,
    from_ts         timestamptz,
    to_ts           timestamptz,
    schedule_id     bigint,
    attempt         integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    fence           bigint,
    lease_until     timestamptz,
    worker          text,
    run_at          timestamptz NOT NULL DEFAULT now(), -- earliest (re)dispatch time
    cancel_requested boolean NOT NULL DEFAULT false,
    idempotency_key text,
    error           text,
    error_class     text,                       -- permanent | transient | cancelled | lease
    created_at      timestamptz NOT NULL DEFAULT now(),
    queued_at       timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((logic IS NULL) = (batch_id IS NOT NULL)),
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX jobs_pending ON jobs (user_id, priority, created_at) WHERE status = 'pending';
CREATE INDEX jobs_queued ON jobs (created_at) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_batch ON jobs (batch_id, status) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_user_created ON jobs (user_id, created_at);

CREATE TABLE results (
    job_id      uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    metrics     jsonb NOT NULL,
    trades      jsonb NOT NULL,
    equity      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Ranking sweep members without reading every result's trades.
CREATE INDEX results_created ON results (created_at);

-- The scheduler's leader: a lease row judged by PostgreSQL's now() (advisory
-- locks do not survive PgBouncer transaction pooling).
CREATE TABLE scheduler_leader (
    id          integer PRIMARY KEY CHECK (id = 1),
    holder      text NOT NULL,
    term        bigint NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE schedules (
    id          bigserial PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    cron        text NOT NULL,                  -- 5 fields, UTC
    logic       jsonb NOT NULL,
    symbol      text NOT NULL,
    timeframe   text NOT NULL,
    catch_up    text NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('none', 'latest', 'all')),
    enabled     boolean NOT NULL DEFAULT true,
    next_fire   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each firing is inserted with its job in one transaction; the primary key
-- makes a second firing of the same minute impossible, even by two leaders.
CREATE TABLE schedule_firings (
    schedule_id bigint NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_time   timestamptz NOT NULL,
    job_id      uuid REFERENCES jobs (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, fire_time)
);

CREATE TABLE signals (
    job_id      uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    schedule_id bigint REFERENCES schedules (id) ON DELETE SET NULL,
    symbol      text NOT NULL,
    bar_time    timestamptz NOT NULL,
    signal      text NOT NULL CHECK (signal IN ('enter', 'exit', 'hold', 'flat')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
