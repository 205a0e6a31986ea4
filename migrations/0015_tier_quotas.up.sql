-- Tier quotas (sf-api, issue 13 item 5): a submission counts the user's
-- unfinished jobs (pending, queued, running; sweep members included) inside
-- its transaction. This partial index makes that count an index-only range
-- scan of the user's unfinished jobs, bounded by the quota (the count stops
-- at limit + 1), and GET /v1/me reads the same range. Finished jobs, the
-- bulk of the table, are not in it.
CREATE INDEX jobs_user_active ON jobs (user_id, status) WHERE status IN ('pending', 'queued', 'running');
