/*
 * batchfit: a sweep's overfitting report (sf/overfit.h: PBO, DSR, verdict)
 * from its members' stored block statistics (results.blocks, migration
 * 0013), for GET /v1/batches/{id}.
 *
 * A finished sweep's report is computed once, the first time it is asked
 * for, and kept in batches.overfit; later answers read it back. A sweep
 * still running gets a report over the members finished so far, computed
 * on demand and not kept. The members are read in combination order
 * (results.blocks as hex: about 700 bytes a member on the wire, 70 MB for
 * 100,000 members, freed once the set is built) and judged by
 * sf_overfit_compute with its default work bound (about 3 s for 100,000
 * members on one core: 1,000 sampled splits), so the same members give the
 * same report as the local sweep, bit for bit.
 *
 * Thread safety: as the sf_db it is given. Ownership: appends to out.
 */
#ifndef SF_BATCHFIT_H
#define SF_BATCHFIT_H

#include "sf/buf.h"
#include "sf/db.h"
#include "sf/err.h"

/*
 * Append the report of batch_id (an existing batch's uuid) to out as JSON
 * text (sf_overfit_to_json). finished: no member is pending, queued or
 * running: the report is stored (or read back when it already was). A sweep
 * whose members have no block statistics yet reports "not enough data".
 * Errors: those of the database, SF_ERR_NOMEM, SF_ERR_PARSE (a stored
 * record that does not unpack), SF_ERR_LIMIT (out's maximum).
 */
sf_status sf_batchfit_report(sf_db *db, const char *batch_id, int finished, sf_buf *out, sf_err *err);

#endif
