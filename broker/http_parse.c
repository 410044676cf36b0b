/* http_parse: routes, names, parameters, headers and batch bodies of the
 * HTTP API, parsed without I/O; see http_parse.h. */
#include "http_parse.h"

#include "codec.h"
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PARAM_MAX 64

static bool
path_is(const char *path, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(path, lit, len) == 0;
}

int
brk_http_route(const char *path, size_t len, const char **qname, size_t *qlen)
{
	static const char prefix[] = "/v1/queues/";
	*qname = NULL;
	*qlen = 0;
	if (path_is(path, len, "/healthz"))
		return BRK_HTTP_HEALTH;
	if (path_is(path, len, "/readyz"))
		return BRK_HTTP_READY;
	if (path_is(path, len, "/metrics"))
		return BRK_HTTP_METRICS;
	if (path_is(path, len, "/v1/queues") || path_is(path, len, "/v1/queues/"))
		return BRK_HTTP_QUEUES;
	if (len <= sizeof(prefix) - 1 || memcmp(path, prefix, sizeof(prefix) - 1) != 0)
		return BRK_HTTP_NONE;
	const char *name = path + sizeof(prefix) - 1;
	size_t rest = len - (sizeof(prefix) - 1);
	const char *slash = memchr(name, '/', rest);
	*qname = name;
	*qlen = slash ? (size_t)(slash - name) : rest;
	if (slash == NULL)
		return BRK_HTTP_QUEUE;
	const char *sub = slash + 1;
	size_t sublen = rest - (size_t)(sub - name);
	if (path_is(sub, sublen, "messages"))
		return BRK_HTTP_ENQUEUE;
	if (path_is(sub, sublen, "messages:batch"))
		return BRK_HTTP_BATCH;
	*qname = NULL;
	*qlen = 0;
	return BRK_HTTP_NONE;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long
brk_http_url_decode(const char *s, size_t len, bool query, char *out, size_t cap)
{
	size_t n = 0;
	if (cap == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return -1;
			c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			i += 2;
		} else if (c == '+' && query) {
			c = ' ';
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return (long)n;
}

int
brk_http_queue_name(const char *raw, size_t len, char *out, size_t cap, size_t *outlen)
{
	long n = brk_http_url_decode(raw, len, false, out, cap);
	*outlen = 0;
	if (n < 0)
		return BRK_HTTP_E_ENCODING;
	if (!cfg_queue_name_valid(out, (size_t)n))
		return BRK_HTTP_E_NAME;
	*outlen = (size_t)n;
	return BRK_HTTP_OK;
}

bool
brk_http_content_length(const char *s, size_t *out)
{
	uint64_t v = 0;
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > SIZE_MAX / 2)
		return false;
	*out = (size_t)v;
	return true;
}

int
brk_http_query(const char *q, size_t len, brk_http_params *p, char *why, size_t whylen)
{
	const char *end = q + len;
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(q, '=', (size_t)(stop - q));
		char name[PARAM_MAX], value[PARAM_MAX];
		if (stop == q) {
			q = stop + 1;
			continue;
		}
		if (brk_http_url_decode(q, (size_t)((eq ? eq : stop) - q), true, name, sizeof(name)) < 0 ||
		    brk_http_url_decode(eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0, true, value,
		                        sizeof(value)) < 0) {
			snprintf(why, whylen, "malformed query parameter");
			return -1;
		}
		if (strcmp(name, "delay") == 0) {
			int64_t ms;
			if (cfg_duration_parse(value, &ms) != 0 || ms < 0 || ms > UINT32_MAX) {
				snprintf(why, whylen,
				         "bad delay '%s': use a duration like 500ms, 10s or 5m, or seconds",
				         value);
				return -1;
			}
			p->delay_ms = (uint32_t)ms;
		} else if (strcmp(name, "priority") == 0) {
			char *e;
			errno = 0;
			long long v = strtoll(value, &e, 10);
			if (value[0] == '\0' || *e != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX) {
				snprintf(why, whylen, "bad priority '%s': use an integer (higher first)", value);
				return -1;
			}
			p->priority = (int32_t)v;
		} else {
			snprintf(why, whylen, "unknown parameter '%s' (known: delay, priority)", name);
			return -1;
		}
		q = stop + (amp ? 1 : 0);
	}
	return 0;
}

bool
brk_http_bearer_ok(const char *token, size_t token_len, const char *auth)
{
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return false;
	const char *t = auth + 7;
	while (*t == ' ')
		t++;
	size_t n = strlen(t);
	while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	volatile unsigned char d = n != token_len;
	for (size_t i = 0; i < token_len; i++)
		d |= (unsigned char)(token[i] ^ (i < n ? t[i] : 0));
	return d == 0;
}

bool
brk_http_key_ok(const char *key)
{
	size_t n = strlen(key);
	return n > 0 && n <= PROTO_MAX_KEY_LEN;
}

bool
brk_http_expects_continue(const char *expect)
{
	return expect != NULL && strcasecmp(expect, "100-continue") == 0;
}

bool
brk_http_batch_next(const uint8_t **pos, const uint8_t *end, const uint8_t **msg, size_t *len)
{
	const uint8_t *s = *pos;
	if (s >= end)
		return false;
	const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
	*msg = s;
	*len = (size_t)((nl ? nl : end) - s);
	*pos = nl ? nl + 1 : end;
	return true;
}

static size_t
digits(size_t n)
{
	size_t d = 1;
	while (n >= 10) {
		n /= 10;
		d++;
	}
	return d;
}

int
brk_http_batch_scan(const uint8_t *body, size_t len, size_t max_message, size_t keylen,
                    size_t *count, size_t *item_bytes, size_t *index, size_t *msg_len)
{
	const uint8_t *pos = body, *end = body + len, *msg;
	size_t n = 0, bytes = 0, mlen;
	*count = *item_bytes = *index = *msg_len = 0;
	for (; brk_http_batch_next(&pos, end, &msg, &mlen); n++) {
		size_t kl = keylen ? keylen + 1 + digits(n) : 0;
		if (mlen > max_message) {
			*index = n;
			*msg_len = mlen;
			return BRK_HTTP_E_TOO_LARGE;
		}
		if (kl > PROTO_MAX_KEY_LEN) {
			*index = n;
			return BRK_HTTP_E_KEY;
		}
		bytes += proto_enq_item_size(kl, mlen);
	}
	if (n == 0)
		return BRK_HTTP_E_EMPTY;
	*count = n;
	*item_bytes = bytes;
	return BRK_HTTP_OK;
}

/* ---- the head of a request ---- */

/* RFC 9110 tchar: the characters of methods and field names */
static bool
tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The end of the line that starts at s (its '\n'; the head ends with one). */
static char *
line_end(char *s)
{
	return strchr(s, '\n');
}

/* Cuts the line from s to its '\n' at nl: a NUL at its end (before a CR).
 * Returns the next line, or NULL if the line holds a stray CR. */
static char *
cut_line(char *s, char *nl)
{
	char *end = nl > s && nl[-1] == '\r' ? nl - 1 : nl;
	for (char *p = s; p < end; p++)
		if (*p == '\r')
			return NULL;
	*end = '\0';
	return nl + 1;
}

long
brk_http_head_parse(char *buf, size_t len, size_t *scanned, brk_http_head *h)
{
	size_t start = 0, end = 0;

	/* blank lines before the request line */
	while (start < len && (buf[start] == '\n' || (buf[start] == '\r' && start + 1 < len &&
	                                              buf[start + 1] == '\n')))
		start += buf[start] == '\r' ? 2 : 1;
	/* the head ends at an empty line: "\n\n" or "\n\r\n" */
	size_t i = *scanned > start ? *scanned : start;
	for (; i < len; i++) {
		if (buf[i] != '\n' || i == start)
			continue;
		if (i + 1 < len && buf[i + 1] == '\n') {
			end = i + 2;
			break;
		}
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
			end = i + 3;
			break;
		}
	}
	if (end == 0) {
		/* look again at the last two bytes, which may start the end */
		*scanned = len > start + 2 ? len - 2 : start;
		return len >= BRK_HTTP_HEAD_MAX ? -431 : 0;
	}
	if (end > BRK_HTTP_HEAD_MAX)
		return -431;

	/* from here the head is whole: cut it up in place; the byte before
	 * end is its last '\n' */
	memset(h, 0, sizeof(*h));
	if (memchr(buf + start, '\0', end - start) != NULL)
		return -400;
	char saved = buf[end - 1];
	buf[end - 1] = '\0'; /* so that strchr stops at the head's end */
	char *s = buf + start, *nl, *next;
	long rv = -400;

	/* request line: METHOD SP TARGET SP HTTP/1.x */
	if ((nl = line_end(s)) == NULL || (next = cut_line(s, nl)) == NULL)
		goto out;
	char *sp1 = strchr(s, ' ');
	if (sp1 == NULL || sp1 == s)
		goto out;
	*sp1 = '\0';
	for (char *p = s; *p; p++)
		if (!tchar((unsigned char)*p))
			goto out;
	char *target = sp1 + 1, *sp2 = strchr(target, ' ');
	if (sp2 == NULL || sp2 == target || *target != '/')
		goto out;
	*sp2 = '\0';
	for (char *p = target; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			goto out;
	const char *version = sp2 + 1;
	if (strncmp(version, "HTTP/", 5) != 0)
		goto out;
	if (version[5] != '1' || version[6] != '.' || version[7] < '0' || version[7] > '9' ||
	    version[8] != '\0') {
		rv = -505;
		goto out;
	}
	h->method = s;
	h->target = target;
	h->minor = version[7] - '0';

	/* header fields: NAME ":" OWS VALUE OWS */
	for (s = next; *s != '\0' && !(s[0] == '\r' && s[1] == '\0'); s = next) {
		if ((nl = line_end(s)) == NULL || (next = cut_line(s, nl)) == NULL)
			goto out;
		char *colon = strchr(s, ':');
		if (colon == NULL || colon == s)
			goto out; /* also a folded line, which starts with a blank */
		*colon = '\0';
		for (char *p = s; *p; p++)
			if (!tchar((unsigned char)*p))
				goto out;
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t vl = strlen(v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			v[--vl] = '\0';
		for (size_t k = 0; k < vl; k++)
			if (((unsigned char)v[k] < ' ' && v[k] != '\t') || v[k] == 0x7f)
				goto out;
		if (h->nheaders == BRK_HTTP_HEADERS_MAX) {
			rv = -431;
			goto out;
		}
		h->h[h->nheaders].name = s;
		h->h[h->nheaders].value = v;
		h->nheaders++;
	}
	rv = (long)end;
out:
	if (rv < 0)
		buf[end - 1] = saved;
	return rv;
}

const char *
brk_http_head_get(const brk_http_head *h, const char *name, size_t *count)
{
	const char *v = NULL;
	size_t n = 0;
	for (size_t i = 0; i < h->nheaders; i++) {
		if (strcasecmp(h->h[i].name, name) != 0)
			continue;
		if (n++ == 0)
			v = h->h[i].value;
	}
	if (count != NULL)
		*count = n;
	return v;
}

const char *
brk_http_reason(unsigned status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
