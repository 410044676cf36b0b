/*
 * httpd: the HTTP/1.1 server under the broker's API, on a reactor; see
 * httpd.h.
 *
 * A connection carries one request at a time: its bytes stay in the
 * connection's input from the head's arrival to the answer, so the
 * request's strings and body point into it (and follow it when the
 * reactor grows the buffer: moved). Each answer is a block of its own,
 * written and freed by the reactor; the connection moves to the next
 * request when the answer is queued (answered).
 *
 * Why not NNG's HTTP server: it passes each request between its own
 * threads several times (read, handler, body read, write), and on two
 * cores those hand-offs, not the disk, bound the broker's HTTP enqueues.
 */
#include "httpd.h"

#include "http_parse.h"
#include "log.h"
#include "reactor.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IDLE_MS        120000 /* a kept-alive connection with no request this long is closed */
#define WRITE_STALL_MS 30000  /* an answer the client does not read for this long */

enum hstate {
	H_HEAD,    /* reading a head */
	H_HANDLER, /* the handler has the request */
	H_BODY,    /* reading the body the handler asked for */
	H_SKIP,    /* dropping the body of a request answered without it */
};

typedef struct hconn hconn;

struct brk_hreq {
	brk_http_head head;
	size_t clen; /* Content-Length (0 when not framed) */
	bool framed;
	bool expect; /* Expect: 100-continue */
	bool close;  /* the client asked for the connection to close */
	void *data;
	hconn *h;
};

/* An answer: the reactor writes its bytes, then frees it. */
typedef struct answer {
	brk_rx_out o;
	hconn *h; /* NULL: not a request's answer */
	uint8_t bytes[];
} answer;

struct hconn {
	brk_httpd *s;
	brk_rx_conn *c;
	enum hstate state;
	size_t head_len; /* of the request in hand */
	size_t scanned;  /* brk_http_head_parse's */
	size_t skip;     /* H_SKIP: body bytes still to drop */
	bool body_read;
	int refs;          /* the connection, and a request's answer until released */
	bool gone;         /* abandoned: brk_hreq_body gives NULL */
	brk_rx_out spare;  /* posted empty, closing, when an answer cannot be allocated */
	brk_hreq r;
};

struct brk_httpd {
	brk_httpd_handler hd;
	brk_rx *rx;
};

static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ---- the request, as the handler sees it ---- */

const char *
brk_hreq_method(const brk_hreq *r)
{
	return r->head.method;
}

const char *
brk_hreq_target(const brk_hreq *r)
{
	return r->head.target;
}

const char *
brk_hreq_header(const brk_hreq *r, const char *name)
{
	return brk_http_head_get(&r->head, name, NULL);
}

bool
brk_hreq_framed(const brk_hreq *r)
{
	return r->framed;
}

size_t
brk_hreq_content_length(const brk_hreq *r)
{
	return r->clen;
}

void
brk_hreq_set_data(brk_hreq *r, void *data)
{
	r->data = data;
}

void *
brk_hreq_data(const brk_hreq *r)
{
	return r->data;
}

const uint8_t *
brk_hreq_body(const brk_hreq *r)
{
	hconn *h = r->h;
	if (!h->body_read || h->gone)
		return NULL;
	size_t len;
	return brk_rx_input(h->c, &len) + h->head_len;
}

/* ---- answers ---- */

static void
hconn_unref(hconn *h)
{
	if (--h->refs == 0)
		free(h);
}

/* The reactor is done with an answer (written, or dropped with its
 * connection). */
static void
answer_release(brk_rx_out *o)
{
	answer *a = (answer *)(void *)o;
	hconn *h = a->h;
	free(a);
	if (h != NULL)
		hconn_unref(h);
}

static void
spare_release(brk_rx_out *o)
{
	hconn_unref((hconn *)(void *)((char *)o - offsetof(hconn, spare)));
}

static answer *
answer_alloc(hconn *h, size_t n, bool request)
{
	answer *a = malloc(sizeof(*a) + n);
	if (a == NULL)
		return NULL;
	memset(&a->o, 0, sizeof(a->o));
	a->o.data = a->bytes;
	a->o.len = n;
	a->o.release = answer_release;
	a->h = request ? h : NULL;
	return a;
}

/* An answer: status line, Content-Type and Content-Length (len), the extra
 * header lines, then blen bytes of body (a HEAD answer has none). NULL when
 * out of memory. */
static answer *
answer_format(hconn *h, bool request, unsigned status, const char *type, const char *headers,
              const void *body, size_t len, size_t blen, bool close)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
	                 status, brk_http_reason(status), type, len, headers ? headers : "",
	                 close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		return NULL;
	answer *a = answer_alloc(h, (size_t)n + blen, request);
	if (a == NULL)
		return NULL;
	memcpy(a->bytes, head, (size_t)n);
	if (blen > 0)
		memcpy(a->bytes + n, body, blen);
	a->o.close = close;
	return a;
}

void
brk_hreq_read_body(brk_hreq *r)
{
	hconn *h = r->h;
	size_t len;
	h->state = H_BODY;
	brk_rx_busy(h->c, false);
	brk_rx_input(h->c, &len);
	/* a client that asked waits for the go-ahead before it sends */
	if (r->expect && r->clen > 0 && len == h->head_len) {
		answer *a = answer_alloc(h, sizeof(CONTINUE) - 1, false);
		if (a == NULL) {
			brk_rx_close_after(h->c);
			return;
		}
		memcpy(a->bytes, CONTINUE, sizeof(CONTINUE) - 1);
		brk_rx_send(h->c, &a->o);
	}
}

void
brk_hreq_respond(brk_hreq *r, unsigned status, const char *type, const char *headers,
                 const void *body, size_t len, bool close)
{
	hconn *h = r->h;

	close = close || r->close || !r->framed;
	size_t blen = strcmp(r->head.method, "HEAD") == 0 ? 0 : len; /* HEAD: the length, no body */
	answer *a = answer_format(h, true, status, type, headers, body, len, blen, close);
	if (a != NULL) {
		brk_rx_post(h->c, &a->o);
		return;
	}
	/* cannot answer: give up on the connection */
	h->spare = (brk_rx_out){.release = spare_release, .close = true};
	brk_rx_post(h->c, &h->spare);
}

/* ---- the protocol ---- */

/* An answer of the server's own, for a request it could not parse. */
static void
refuse(hconn *h, unsigned status, const char *why)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
	answer *a = answer_format(h, false, status, "application/json", NULL, body, (size_t)n,
	                          (size_t)n, true);
	if (a != NULL)
		brk_rx_send(h->c, &a->o);
	brk_rx_close_after(h->c);
}

/* A head is in: frame the request and hand it over. */
static void
dispatch(hconn *h, long head_len)
{
	brk_hreq *r = &h->r;
	brk_httpd *s = h->s;
	size_t ncl = 0;
	const char *cl = brk_http_head_get(&r->head, "Content-Length", &ncl);
	const char *conn_hdr = brk_http_head_get(&r->head, "Connection", NULL);
	const char *expect = brk_http_head_get(&r->head, "Expect", NULL);

	h->head_len = (size_t)head_len;
	h->body_read = false;
	r->data = NULL;
	r->clen = 0;
	r->framed = brk_http_head_get(&r->head, "Transfer-Encoding", NULL) == NULL && ncl <= 1 &&
	            (cl == NULL || brk_http_content_length(cl, &r->clen));
	if (!r->framed)
		r->clen = 0;
	r->expect = brk_http_expects_continue(expect) && r->head.minor >= 1;
	r->close = r->head.minor == 0 || (conn_hdr != NULL && strcasecmp(conn_hdr, "close") == 0);
	h->state = H_HANDLER;
	h->refs++;
	brk_rx_busy(h->c, true);
	brk_rx_hold(h->c);
	s->hd.head(s->hd.arg, r);
}

/* The handler waits for a body that will not come: tell it (brk_hreq_body
 * gives NULL); its answer goes nowhere. */
static void
abandon_body(hconn *h)
{
	h->state = H_HANDLER;
	h->body_read = false;
	h->gone = true;
	h->s->hd.body(h->s->hd.arg, &h->r);
}

static void
on_input(void *arg, brk_rx_conn *c)
{
	hconn *h = brk_rx_data(c);
	size_t len;
	uint8_t *in;
	(void)arg;

	for (;;) {
		in = brk_rx_input(c, &len);
		switch (h->state) {
		case H_HANDLER: return;
		case H_SKIP: {
			size_t d = len < h->skip ? len : h->skip;
			brk_rx_consume(c, d);
			h->skip -= d;
			if (h->skip > 0)
				return;
			h->state = H_HEAD;
			continue;
		}
		case H_BODY:
			if (len - h->head_len >= h->r.clen) {
				h->body_read = true;
				h->state = H_HANDLER;
				brk_rx_busy(c, true);
				h->s->hd.body(h->s->hd.arg, &h->r);
				return;
			}
			if (brk_rx_eof(c)) {
				brk_rx_drop(c); /* closed() tells the handler */
				return;
			}
			brk_rx_want(c, h->head_len + h->r.clen);
			return;
		case H_HEAD:
			if (len == 0)
				return;
			long n = brk_http_head_parse((char *)in, len, &h->scanned, &h->r.head);
			if (n > 0) {
				dispatch(h, n);
				continue;
			}
			if (n < 0) {
				refuse(h, (unsigned)-n,
				       n == -431   ? "request head too large"
				       : n == -505 ? "HTTP/1.x only"
				                   : "bad request");
				return;
			}
			brk_rx_want(c, len + 2048);
			return;
		}
	}
}

/* The answer to h's request is queued: the request leaves the input (a
 * body not read is skipped) and the next one may start. */
static void
on_answered(void *arg, brk_rx_conn *c, brk_rx_out *o)
{
	hconn *h = brk_rx_data(c);
	size_t len;
	(void)arg;
	(void)o;
	brk_rx_input(c, &len);
	size_t consumed = h->head_len, after = len - h->head_len;
	h->skip = 0;
	if (h->body_read) {
		consumed += h->r.clen;
	} else {
		size_t b = after < h->r.clen ? after : h->r.clen;
		consumed += b;
		h->skip = h->r.clen - b;
	}
	brk_rx_consume(c, consumed);
	brk_rx_want(c, 0);
	brk_rx_busy(c, false);
	h->head_len = h->scanned = 0;
	h->body_read = false;
	h->state = h->skip > 0 ? H_SKIP : H_HEAD;
}

/* The head's strings point into the input: follow it when it moves. */
static void
on_moved(void *arg, brk_rx_conn *c, uintptr_t from, uint8_t *to)
{
	hconn *h = brk_rx_data(c);
	brk_http_head *hd = &h->r.head;
	(void)arg;
	if (h->state != H_HANDLER && h->state != H_BODY)
		return;
#define MOVE(p) ((p) = (char *)to + ((uintptr_t)(p)-from))
	MOVE(hd->method);
	MOVE(hd->target);
	for (size_t i = 0; i < hd->nheaders; i++) {
		MOVE(hd->h[i].name);
		MOVE(hd->h[i].value);
	}
#undef MOVE
}

static bool
on_open(void *arg, brk_rx_conn *c)
{
	hconn *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return false;
	h->s = arg;
	h->c = c;
	h->state = H_HEAD;
	h->refs = 1;
	h->r.h = h;
	brk_rx_set_data(c, h);
	return true;
}

static void
on_closed(void *arg, brk_rx_conn *c)
{
	hconn *h = brk_rx_data(c);
	(void)arg;
	if (h->state == H_BODY)
		abandon_body(h); /* the handler answers; the reactor drops it */
	hconn_unref(h);
}

/* ---- life cycle ---- */

int
brk_httpd_open(const char *hostport, const brk_httpd_handler *hd, brk_httpd **out, char *err,
               size_t errlen)
{
	brk_httpd *s = calloc(1, sizeof(*s));
	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->hd = *hd;
	brk_rx_proto p = {
	        .open = on_open,
	        .input = on_input,
	        .answered = on_answered,
	        .moved = on_moved,
	        .closed = on_closed,
	        .arg = s,
	        .idle_ms = IDLE_MS,
	        .write_stall_ms = WRITE_STALL_MS,
	        .name = "http",
	};
	if (brk_rx_open(hostport, &p, &s->rx, err, errlen) != 0) {
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

const char *
brk_httpd_addr(const brk_httpd *s)
{
	return brk_rx_addr(s->rx);
}

void
brk_httpd_close(brk_httpd *s)
{
	if (s == NULL)
		return;
	brk_rx_close(s->rx);
	free(s);
}
