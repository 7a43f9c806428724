/* Wiping a request's credentials from libfcgi's memory, which is ours: a
 * core of the responder must not hand one client's key to another. Private
 * to fcgi/ (request.c calls it once the key is checked). */
#ifndef PD_WIPE_H
#define PD_WIPE_H

#include <fcgiapp.h>

/* Zeroes the value of the parameter name in req's parameters, and every
 * byte of req's input buffer that has been read already (the raw FastCGI
 * records the parameters were parsed from) or is left over from an earlier
 * fill of it; the unread request body is kept. After the call the
 * parameter reads as "". */
void pd_fcgx_wipe_param(FCGX_Request *req, const char *name);

#endif
