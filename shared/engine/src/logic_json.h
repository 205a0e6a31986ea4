/*
 * logic_json: the engine-private entry point that compiles a logic from an
 * already parsed jansson tree (the grid cursor builds one tree per sweep and
 * edits it per member). Not installed: jansson's json_t does not leak through
 * the public sf/logic.h.
 *
 * Thread safety: as sf_logic_parse. Ownership: the tree is borrowed for the
 * call; the compiled program (freed by sf_logic_free) keeps no pointer into it.
 */
#ifndef SF_LOGIC_JSON_H
#define SF_LOGIC_JSON_H

#include <jansson.h>

#include "sf/logic.h"

/*
 * Validate and compile an already parsed logic tree: exactly what
 * sf_logic_parse does once the text is parsed (sf_logic_parse is json_loadb
 * plus this), with the same results, errors and messages. No SF_ERR_PARSE,
 * and no SF_LOGIC_MAX_INPUT check: there is no text (a caller that builds
 * trees from text checks the text).
 */
sf_status sf_logic_from_json(const json_t *root, sf_logic **out, sf_logic_errors *errs, sf_err *err);

#endif
