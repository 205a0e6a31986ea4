/*
 * sf-api: files of the repository compiled into the program (CMake writes
 * the definitions from api/openapi.json and api/status.html with
 * cmake/embed.cmake at build time). Each array is the file's bytes plus a
 * terminating NUL; the length leaves the NUL out.
 */
#ifndef API_ASSETS_H
#define API_ASSETS_H

#include <stddef.h>

extern const char api_openapi_json[]; /* api/openapi.json: the OpenAPI 3.1 document */
extern const size_t api_openapi_json_len;
extern const char api_status_html[]; /* api/status.html: the status page */
extern const size_t api_status_html_len;

#endif
