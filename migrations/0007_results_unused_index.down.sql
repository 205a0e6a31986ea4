CREATE INDEX results_created ON results (created_at);
