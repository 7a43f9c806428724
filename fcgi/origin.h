/* The root of absolute links: "scheme://host[:port]", and a path prefix when
 * the operator configured public_url. Built per request from what the web
 * server passed (fcgi/origin.c says in which order), never from anything
 * that was not first checked to be a plain host[:port]. */
#ifndef PD_ORIGIN_H
#define PD_ORIGIN_H

#include <stddef.h>

/* A public_url is at most this long (scheme, host, port and path). */
#define PD_PUBLIC_URL_MAX 512

/* Checks a public_url ("https://diag.example.com:8443/procdiag") and writes
 * its normal form into out (outlen >= PD_PUBLIC_URL_MAX + 1): the scheme in
 * lower case, the port left out when it is the scheme's default, no
 * trailing '/'. 0, or -EINVAL with *why set to a sentence fragment saying
 * what is wrong ("must start with http:// or https://"). */
int pd_public_url_parse(const char *in, char *out, size_t outlen, const char **why);

#endif
