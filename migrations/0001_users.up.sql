-- Platform users: the accounts that own logics, jobs and API keys.
CREATE TYPE user_tier AS ENUM ('free', 'premium', 'enterprise');

CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL UNIQUE,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    tier          user_tier   NOT NULL DEFAULT 'free',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
