/*
 * jbuf: a growing text buffer with JSON string escaping, for the HTTP API,
 * `sluice stats --json`, load reports and the demo's HTML. An allocation
 * failure is sticky (oom) and later appends do nothing.
 */
#ifndef SLUICE_JBUF_H
#define SLUICE_JBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct jbuf {
	char *p;     /* NUL-terminated when len > 0; owned */
	size_t len;
	size_t cap;
	bool oom;
} jbuf;

void jbuf_init(jbuf *b);
void jbuf_fini(jbuf *b); /* frees; the buffer may be reused after jbuf_init */
void jbuf_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jbuf_put(jbuf *b, const char *s, size_t len);
/* A JSON string literal, quotes included; bytes that are not valid UTF-8
 * are written as \u00XX so the output stays valid JSON. */
void jbuf_json_str(jbuf *b, const char *s, size_t len);
/* Text escaped for HTML (&, <, >, "). */
void jbuf_html(jbuf *b, const char *s);

#endif
