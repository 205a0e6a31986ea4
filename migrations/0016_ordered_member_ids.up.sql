-- Sweep members get ordered ids: one time-ordered base per batch (the UUIDv7
-- layout: 48 bits of Unix milliseconds, version 7, then random bits from
-- gen_random_uuid()) whose last four bytes are replaced by the member's
-- combo_index. A random id per row (gen_random_uuid(), the column's default)
-- put each of a sweep's 20,000 members at a random place in jobs_pkey and,
-- as the tiebreaker after (batch_id, status, created_at), in jobs_batch: the
-- insert compared and dirtied pages all over both indexes (memcmp and
-- _bt_compare were a fifth of the API backend's CPU in bench-farm's sweep,
-- and the insert, 16 us a row, holds back the whole sweep). Ordered, the
-- members go in at the right edge of jobs_pkey and in sequence in
-- jobs_batch, and the completions and results of neighbouring members touch
-- neighbouring index pages. Ids stay unique: the base's 42 random bits
-- differ between batches created in the same millisecond, and a member's
-- index makes it unique within its batch. Single jobs keep random ids.
CREATE FUNCTION sf_uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
            || '7' || substr(r, 14, 3) || substr(r, 17, 16))::uuid
    FROM (SELECT replace(gen_random_uuid()::text, '-', '') AS r) g
$$;

-- The id of member n of the batch whose base is base (inlined by the planner).
CREATE FUNCTION sf_member_id(base uuid, n integer) RETURNS uuid LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(overlay(uuid_send(base) PLACING int4send(n) FROM 13 FOR 4), 'hex')::uuid
$$;
