#include "jbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
jbuf_init(jbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void
jbuf_fini(jbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static bool
reserve(jbuf *b, size_t more)
{
	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void
jbuf_put(jbuf *b, const char *s, size_t len)
{
	if (!reserve(b, len))
		return;
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void
jbuf_printf(jbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t left)
{
	size_t n;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0 && s[0] >= 0xC2)
		n = 2;
	else if ((s[0] & 0xF0) == 0xE0)
		n = 3;
	else if ((s[0] & 0xF8) == 0xF0 && s[0] <= 0xF4)
		n = 4;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

void
jbuf_json_str(jbuf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	jbuf_put(b, "\"", 1);
	for (size_t i = 0; i < len;) {
		unsigned char c = u[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			jbuf_put(b, e, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			switch (c) {
			case '\n': jbuf_put(b, "\\n", 2); break;
			case '\r': jbuf_put(b, "\\r", 2); break;
			case '\t': jbuf_put(b, "\\t", 2); break;
			default: jbuf_printf(b, "\\u%04x", c);
			}
			i++;
		} else {
			size_t n = utf8_len(u + i, len - i);
			if (n == 0) {
				jbuf_printf(b, "\\u%04x", c); /* a stray byte, shown as its code */
				i++;
			} else {
				jbuf_put(b, s + i, n);
				i += n;
			}
		}
	}
	jbuf_put(b, "\"", 1);
}

void
jbuf_html(jbuf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': jbuf_put(b, "&amp;", 5); break;
		case '<': jbuf_put(b, "&lt;", 4); break;
		case '>': jbuf_put(b, "&gt;", 4); break;
		case '"': jbuf_put(b, "&quot;", 6); break;
		default: jbuf_put(b, s, 1);
		}
	}
}
