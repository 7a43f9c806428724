#include "config.h"

#include "handlers/jsonout.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/strbuf.h"
#include "common/utf8.h"
#include "fcgi/request.h"
#include "fcgi/response.h"

json_t *pd_json_size(int64_t v)
{
	return json_integer(v < 0 ? -1 : v);
}

json_t *pd_json_href(const struct pd_req *r, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	json_t *j = NULL;
	int rc;

	rc = strbuf_addstr(&sb, pd_req_origin(r));
	if (!rc)
		rc = strbuf_addstr(&sb, pd_req_base(r));
	if (!rc) {
		va_start(ap, fmt);
		rc = strbuf_vaddf(&sb, fmt, ap);
		va_end(ap);
	}
	if (!rc)
		j = pd_json_bytes(sb.buf, sb.len);
	strbuf_release(&sb);
	return j;
}

void pd_format_timespan(int64_t ns, char *buf, size_t len)
{
	/* .NET TimeSpan "c" format: [-][d.]hh:mm:ss[.fffffff]; Kudu always had
	 * the fraction, in 100 ns ticks. */
	uint64_t t = ns < 0 ? (uint64_t)(-(ns / 100)) : (uint64_t)ns / 100;
	uint64_t frac = t % 10000000, s = t / 10000000;
	uint64_t days = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
	const char *sign = ns < 0 ? "-" : "";

	if (days)
		snprintf(buf, len, "%s%" PRIu64 ".%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%07" PRIu64,
			 sign, days, h, m, sec, frac);
	else
		snprintf(buf, len, "%s%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%07" PRIu64, sign, h,
			 m, sec, frac);
}

void pd_format_iso8601(int64_t ns, char *buf, size_t len)
{
	time_t secs = (time_t)(ns / 1000000000);
	int64_t frac = ns % 1000000000;
	struct tm tm;
	char date[32];

	if (frac < 0) {
		frac += 1000000000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%07" PRId64 "Z", date, frac / 100);
}

json_t *pd_json_timespan(int64_t ns)
{
	char buf[48];

	pd_format_timespan(ns, buf, sizeof(buf));
	return json_string(buf);
}

json_t *pd_json_iso8601(int64_t ns)
{
	char buf[48];

	pd_format_iso8601(ns, buf, sizeof(buf));
	return json_string(buf);
}

json_t *pd_json_pct(double v)
{
	return v < 0 ? json_null() : json_real((double)(long long)(v * 10 + 0.5) / 10);
}

int pd_reply_json_compact(struct pd_req *r, json_t *doc)
{
	char *body = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER |
						     JSON_REAL_PRECISION(6))
			 : NULL;
	int rc;

	json_decref(doc);
	if (!body)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	rc = pd_resp_json_bytes(r, 200, body, strlen(body));
	free(body);
	return rc;
}
