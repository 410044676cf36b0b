/* libFuzzer target: the HTTP API's request parsing (broker/http_parse.c),
 * without a server. The input is read like a small request:
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[FIELD_MAX], clen[FIELD_MAX], auth[FIELD_MAX], key[FIELD_MAX],
		expect[FIELD_MAX], out[FIELD_MAX], why[256];
	const uint8_t *pos = data, *end = data + size;

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
