/* JSON strings from untrusted bytes: see common/jsonstr.h. */
#include "config.h"

#include "common/jsonstr.h"

#include <string.h>

#include "common/strbuf.h"
#include "common/utf8.h"

json_t *pd_json_bytes(const char *s, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *j;

	if (utf8_valid(s, len))
		return json_stringn(s, len);
	if (utf8_escape(&sb, s, len) < 0)
		return NULL;
	j = json_stringn(sb.buf ? sb.buf : "", sb.len);
	strbuf_release(&sb);
	return j;
}

json_t *pd_json_cstr(const char *s)
{
	return s ? pd_json_bytes(s, strlen(s)) : json_null();
}
