/* JSON helpers shared by the handlers: strings from untrusted bytes, links,
 * and Kudu's time formats. Functions returning json_t* return a new
 * reference, or NULL on allocation failure. */
#ifndef PD_JSONOUT_H
#define PD_JSONOUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct pd_req;

/* pd_json_bytes(), pd_json_cstr(): strings from untrusted bytes. */
#include "common/jsonstr.h"
/* A size in bytes; -1, Kudu's value for what cannot be read, when v < 0
 * (the "unreadable" convention of lib/). */
json_t *pd_json_size(int64_t v);
/* "origin + base + fmt..." as a JSON string: an absolute link under the
 * prefix the client used. */
json_t *pd_json_href(const struct pd_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Kudu TimeSpan: "[d.]hh:mm:ss.fffffff" from nanoseconds. buf >= 32. */
void pd_format_timespan(int64_t ns, char *buf, size_t len);
/* UTC ISO-8601 with 7 fractional digits: "2026-11-24T09:36:47.1200000Z". */
void pd_format_iso8601(int64_t ns_since_epoch, char *buf, size_t len);
json_t *pd_json_timespan(int64_t ns);
/* A percentage rounded to one decimal; JSON null when v < 0 (unknown). */
json_t *pd_json_pct(double v);
/* Answers doc (stolen) as compact JSON (no indentation): the light answers
 * a page polls (GET /api/processes?view=table). */
int pd_reply_json_compact(struct pd_req *r, json_t *doc);
json_t *pd_json_iso8601(int64_t ns_since_epoch);

#endif
