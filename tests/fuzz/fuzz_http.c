/* libFuzzer target: the HTTP API's request parsing (broker/http_parse.c),
 * without a server. The whole input is first parsed as a request head, at
 * once and in two pieces (as it may arrive), which must agree. Then it is
 * read like a small request:
 *
 *   PATH[?QUERY] \n CONTENT-LENGTH \n AUTHORIZATION \n IDEMPOTENCY-KEY \n
 *   EXPECT \n BODY...
 *
 * Each part goes to its parser; the invariants of each answer are checked
 * (abort on a violation, like a crash). */
#include "http_parse.h"

#include "codec.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of [*pos, end), copied NUL-terminated into out (cut at
 * FIELD_MAX - 1 and at an embedded NUL, as a header would be). */
static size_t
next_line(const uint8_t **pos, const uint8_t *end, char *out)
{
	const uint8_t *s = *pos;
	const uint8_t *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
	size_t len = (size_t)((nl ? nl : end) - s);
	size_t n = len < FIELD_MAX - 1 ? len : FIELD_MAX - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	*pos = nl ? nl + 1 : end;
	return len;
}

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* A head: at once, then its first half followed by the whole. */
static void
fuzz_head(const uint8_t *data, size_t size)
{
	char *a = malloc(size + 1), *b = malloc(size + 1);
	brk_http_head h1, h2;
	size_t s1 = 0, s2 = 0;
	if (a == NULL || b == NULL)
		abort();
	memcpy(a, data, size);
	memcpy(b, data, size);
	long r1 = brk_http_head_parse(a, size, &s1, &h1);
	long r2 = brk_http_head_parse(b, size / 2, &s2, &h2);
	check(r2 <= 0 || (size_t)r2 <= size / 2);
	if (r2 == 0)
		r2 = brk_http_head_parse(b, size, &s2, &h2);
	check(r1 == 0 || r1 == -400 || r1 == -431 || r1 == -505 || (r1 > 0 && (size_t)r1 <= size));
	check(r1 == r2);
	if (r1 > 0) {
		check(h1.method >= a && h1.method < a + r1 && h1.target > h1.method &&
		      h1.target < a + r1 && h1.target[0] == '/' && h1.nheaders <= BRK_HTTP_HEADERS_MAX);
		check(strlen(h1.method) > 0 && h1.minor >= 0 && h1.minor <= 9);
		for (size_t i = 0; i < h1.nheaders; i++) {
			check(h1.h[i].name >= a && h1.h[i].name < a + r1 && h1.h[i].name[0] != '\0');
			check(h1.h[i].value >= a && h1.h[i].value + strlen(h1.h[i].value) < a + r1);
			check(brk_http_head_get(&h1, h1.h[i].name, NULL) != NULL);
		}
		check(strlen(brk_http_reason(200)) > 0);
	}
	free(a);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[FIELD_MAX], clen[FIELD_MAX], auth[FIELD_MAX], key[FIELD_MAX],
		expect[FIELD_MAX], out[FIELD_MAX], why[256];
	const uint8_t *pos = data, *end = data + size;

	fuzz_head(data, size);

	/* the path and its query */
	size_t llen = next_line(&pos, end, line);
	size_t plen = strcspn(line, "?");
	const char *query = line[plen] == '?' ? line + plen + 1 : "";
	const char *qname;
	size_t qlen;
	int route = brk_http_route(line, plen, &qname, &qlen);
	check(route >= BRK_HTTP_NONE && route <= BRK_HTTP_BATCH);
	if (route == BRK_HTTP_QUEUE || route == BRK_HTTP_ENQUEUE || route == BRK_HTTP_BATCH) {
		check(qname != NULL && qname >= line && qname + qlen <= line + plen);
		char name[PROTO_MAX_QUEUE_LEN + 1];
		size_t nlen;
		int rc = brk_http_queue_name(qname, qlen, name, sizeof(name), &nlen);
		check(rc == BRK_HTTP_OK || rc == BRK_HTTP_E_ENCODING || rc == BRK_HTTP_E_NAME);
		if (rc == BRK_HTTP_OK)
			check(nlen >= 1 && nlen <= PROTO_MAX_QUEUE_LEN && cfg_queue_name_valid(name, nlen));
	} else {
		check(qname == NULL);
	}
	long dn = brk_http_url_decode(line, plen, true, out, sizeof(out));
	check(dn >= -1 && (dn < 0 || ((size_t)dn <= plen && out[dn] == '\0')));
	brk_http_params params = {0};
	brk_http_query(query, strlen(query), &params, why, sizeof(why));
	check(memchr(why, '\0', sizeof(why)) != NULL);
	(void)llen;

	/* the headers the API interprets */
	next_line(&pos, end, clen);
	next_line(&pos, end, auth);
	next_line(&pos, end, key);
	next_line(&pos, end, expect);
	size_t want;
	if (brk_http_content_length(clen, &want))
		check(want <= SIZE_MAX / 2 && clen[0] >= '0' && clen[0] <= '9');
	brk_http_bearer_ok("s3cret", 6, auth);
	brk_http_bearer_ok("", 0, auth);
	bool key_ok = brk_http_key_ok(key);
	check(key_ok == (key[0] != '\0' && strlen(key) <= PROTO_MAX_KEY_LEN));
	brk_http_expects_continue(expect);

	/* the rest is a batch body */
	size_t blen = (size_t)(end - pos);
	size_t count, items, index, mlen;
	int rc = brk_http_batch_scan(pos, blen, 64, key_ok ? strlen(key) : 0, &count, &items, &index,
	                             &mlen);
	const uint8_t *p = pos, *msg;
	size_t n = 0, total = 0, len;
	while (brk_http_batch_next(&p, end, &msg, &len)) {
		check(msg >= pos && msg + len <= end);
		total += len;
		n++;
	}
	check(p == end || blen == 0);
	check(total <= blen && (n == 0 || total + n >= blen));
	if (rc == BRK_HTTP_OK)
		check(count == n && count > 0 && items >= count);
	else if (rc == BRK_HTTP_E_EMPTY)
		check(n == 0 && blen == 0);
	else
		check((rc == BRK_HTTP_E_TOO_LARGE && mlen > 64) || rc == BRK_HTTP_E_KEY);
	return 0;
}
