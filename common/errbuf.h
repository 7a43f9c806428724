/* Error messages into a caller's buffer (char *err, size_t errlen), the
 * convention of lib/ functions that explain a failure in words. */
#ifndef PD_ERRBUF_H
#define PD_ERRBUF_H

#include <stddef.h>

/* printf into err; nothing when err is NULL or errlen 0. */
void pd_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
