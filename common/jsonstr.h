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

#endif
