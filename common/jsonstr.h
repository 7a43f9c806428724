/* JSON strings from untrusted bytes (/proc, clients): valid UTF-8 as it is,
 * anything else escaped as common/utf8.h does (\xNN), never dropped and never
 * able to break the document. New references, or NULL when out of memory. */
#ifndef PD_JSONSTR_H
#define PD_JSONSTR_H

#include <jansson.h>
#include <stddef.h>

json_t *pd_json_bytes(const char *s, size_t len);
/* NULL s gives JSON null. */
json_t *pd_json_cstr(const char *s);

/* For answers written without building a json_t tree (the live table,
 * handlers/top.c): append to sb, as json_dumps() would write them. */
struct strbuf;
/* pd_json_bytes(s, len) as a quoted JSON string. 0 or -ENOMEM. */
int pd_json_add_bytes(struct strbuf *sb, const char *s, size_t len);
/* A JSON number of v as json_real(v) with JSON_REAL_PRECISION(6) dumps it
 * ("%.6g", with ".0" when that looks like an integer). 0 or -ENOMEM. */
int pd_json_add_real(struct strbuf *sb, double v);

#endif
