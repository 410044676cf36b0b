/*
 * http: the broker's HTTP API and Prometheus metrics, on httpd.c's server.
 * Enqueues go through the writer's group commit like NNG requests; stats
 * and metrics are read on the writer thread.
 */
#ifndef SLUICE_BRK_HTTP_H
#define SLUICE_BRK_HTTP_H

#include <stddef.h>

#include "config.h"
#include "writer.h"

typedef struct brk_http brk_http;

int brk_http_open(const cfg *c, brk_writer *w, brk_http **out, char *err, size_t errlen);
/* Stops handing requests to the writer (answers 503). Accepts NULL. */
void brk_http_drain(brk_http *h);
void brk_http_close(brk_http *h); /* accepts NULL */

#endif
