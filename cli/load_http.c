/*
 * load_http: the `http` target. One thread runs an edge-triggered epoll
 * loop over keep-alive HTTP/1.1 connections; each VU sends
 * POST PATH/v1/queues/Q/messages with its payload (and an Idempotency-Key
 * header, the payload's unique head) and waits for the whole response.
 *
 * Connections are a pool: one per VU by default, or --connections of them,
 * in which case a VU waits (in FIFO order, within its timeout) for a free
 * one. A keep-alive connection the server closed while idle is reopened and
 * the request sent again once; any other failure is a "transport" error.
 *
 * Threads: everything below belongs to the loop thread. The controller
 * talks to it only through run->vus, run->stopping, the atomics of hdrv and
 * an eventfd that wakes the loop.
 */
#include "load.h"

#include "clock.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESPONSE_MAX (1024 * 1024) /* a response over this is a transport error */
#define HEADER_ROOM 512            /* request line and headers */
#define FAIL_PAUSE_MS 10           /* after a transport failure: do not spin */

/* An intrusive, circular, doubly linked list (sentinel head). */
typedef struct hlink {
	struct hlink *prev, *next;
} hlink;

static void
list_init(hlink *h)
{
	h->prev = h->next = h;
}

static bool
list_empty(const hlink *h)
{
	return h->next == h;
}

static void
list_append(hlink *h, hlink *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static void
list_remove(hlink *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

enum { V_IDLE, V_WAIT, V_REQ, V_THINK };

typedef struct hconn hconn;

typedef struct hvu {
	int index;
	int state;            /* V_* */
	hconn *c;             /* borrowed while V_REQ */
	uint64_t seq;         /* the payload of the request in flight */
	int64_t start_ns;
	int64_t deadline_ns;
	int64_t wake_ns;      /* V_THINK: when to send the next request */
	bool retried;         /* sent again after a stale keep-alive connection */
	hlink flight;         /* in drv.flight while V_WAIT or V_REQ (start order) */
	hlink queue;          /* in drv.waiting (V_WAIT) or drv.due (V_THINK) */
} hvu;

struct hconn {
	int fd;               /* -1 when closed */
	bool connected;
	bool used;            /* a response came back on this connection */
	hvu *vu;              /* borrowed: the VU it serves, or NULL */
	char *wbuf;           /* owned: the request */
	size_t wlen, woff;
	char *rbuf;           /* owned: the response so far, at most RESPONSE_MAX */
	size_t rlen, rcap;
	hlink free;           /* in drv.free while idle */
};

typedef struct hdrv {
	load_run *run;        /* borrowed */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char host[128];       /* Host header */
	char path[512];       /* PATH/v1/queues/Q/messages */
	int ep;               /* epoll */
	int wake;             /* eventfd */
	pthread_t thread;
	bool started;
	atomic_bool quit;
	atomic_int inflight;
	hvu *vus;             /* owned, nvus */
	int nvus;
	hconn *conns;         /* owned, nconns */
	int nconns;
	hlink flight, waiting, due, free;
	char *payload;        /* owned scratch, payload_len */
	int last_target;
} hdrv;

/* ---- URL ---- */

static int
parse_url(hdrv *d, const char *url, char *err, size_t errlen)
{
	const char *p = url;
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	else if (strstr(p, "://") != NULL) {
		snprintf(err, errlen, "bad URL '%s': only http://HOST:PORT is supported", url);
		return -1;
	}
	const char *slash = strchr(p, '/');
	size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
	if (hlen == 0 || hlen >= sizeof(d->host)) {
		snprintf(err, errlen, "bad URL '%s': no HOST:PORT", url);
		return -1;
	}
	memcpy(d->host, p, hlen);
	d->host[hlen] = '\0';
	char host[128], port[16];
	const char *colon = strrchr(d->host, ':');
	if (d->host[0] == '[') { /* [::1]:8080 */
		const char *rb = strchr(d->host, ']');
		if (rb == NULL || rb[1] != ':') {
			snprintf(err, errlen, "bad URL '%s': expected [ADDR]:PORT", url);
			return -1;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(rb - d->host - 1), d->host + 1);
		snprintf(port, sizeof(port), "%s", rb + 2);
	} else if (colon != NULL) {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - d->host), d->host);
		snprintf(port, sizeof(port), "%s", colon + 1);
	} else {
		snprintf(host, sizeof(host), "%s", d->host);
		snprintf(port, sizeof(port), "80");
	}
	size_t plen = slash ? strlen(slash) : 0;
	while (plen > 0 && slash[plen - 1] == '/')
		plen--;
	int n = snprintf(d->path, sizeof(d->path), "%.*s/v1/queues/%s/messages", (int)plen,
	                 slash ? slash : "", d->run->o->queue);
	if (n < 0 || (size_t)n >= sizeof(d->path)) {
		snprintf(err, errlen, "bad URL '%s': path too long", url);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	int rv = getaddrinfo(host, port, &hints, &ai);
	if (rv != 0) {
		snprintf(err, errlen, "bad URL '%s': %s", url, gai_strerror(rv));
		return -1;
	}
	memcpy(&d->addr, ai->ai_addr, ai->ai_addrlen);
	d->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* A blocking connect, to tell an unreachable target from a slow one. */
static int
probe(hdrv *d, const char *url, char *err, size_t errlen)
{
	int fd = socket(d->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int e = 0;
	if (connect(fd, (struct sockaddr *)&d->addr, d->addrlen) != 0) {
		e = errno;
		if (e == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int n = poll(&pfd, 1, 5000);
			socklen_t len = sizeof(e);
			if (n == 0)
				e = ETIMEDOUT;
			else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
				e = errno;
		}
	}
	close(fd);
	if (e != 0) {
		snprintf(err, errlen,
		         "cannot reach the HTTP API at %s: %s (is sluice-broker running with "
		         "broker.http? --url picks another)",
		         url, strerror(e));
		return -1;
	}
	return 0;
}

/* ---- responses ---- */

static const char *
find(const char *b, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(b + i, needle, n) == 0)
			return b + i;
	return NULL;
}

/* Length of a chunked body starting at b, 0 if incomplete, -1 if bad. */
static long
chunked_len(const char *b, size_t len)
{
	size_t i = 0;
	for (;;) {
		const char *eol = find(b + i, len - i, "\r\n");
		if (eol == NULL)
			return 0;
		char *end;
		unsigned long size = strtoul(b + i, &end, 16);
		if (end == b + i)
			return -1;
		i = (size_t)(eol - b) + 2;
		if (size == 0) { /* trailers, then an empty line */
			for (;;) {
				const char *e2 = find(b + i, len - i, "\r\n");
				if (e2 == NULL)
					return 0;
				bool empty = e2 == b + i;
				i = (size_t)(e2 - b) + 2;
				if (empty)
					return (long)i;
			}
		}
		if (size > RESPONSE_MAX)
			return -1;
		if (len - i < size + 2)
			return 0;
		i += size + 2;
	}
}

/* 1: a whole response is in b (status, its length and whether the
 * connection may be reused are set); 0: not yet; -1: malformed. */
static int
parse_response(const char *b, size_t len, bool eof, int *status, size_t *total, bool *keep)
{
	const char *hend = find(b, len, "\r\n\r\n");
	if (hend == NULL)
		return eof ? -1 : 0;
	size_t hlen = (size_t)(hend - b) + 4;
	if (len < 12 || strncmp(b, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(b + 9);
	if (*status < 100 || *status > 999)
		return -1;
	*keep = b[7] == '1';
	long clen = -1;
	bool chunked = false;
	const char *p = (const char *)memchr(b, '\n', hlen) + 1;
	while (p < b + hlen - 2) {
		const char *eol = find(p, (size_t)(b + hlen - p), "\r\n");
		size_t l = (size_t)(eol - p);
		if (l > 15 && strncasecmp(p, "content-length:", 15) == 0)
			clen = atol(p + 15);
		else if (l > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0)
			chunked = find(p, l, "chunked") != NULL;
		else if (l > 11 && strncasecmp(p, "connection:", 11) == 0) {
			if (find(p, l, "close") != NULL || find(p, l, "Close") != NULL)
				*keep = false;
			else if (find(p, l, "keep-alive") != NULL || find(p, l, "Keep-Alive") != NULL)
				*keep = true;
		}
		p = eol + 2;
	}
	if (chunked) {
		long n = chunked_len(b + hlen, len - hlen);
		if (n < 0)
			return -1;
		if (n == 0)
			return eof ? -1 : 0;
		*total = hlen + (size_t)n;
		return 1;
	}
	if (clen >= 0) {
		if (clen > RESPONSE_MAX)
			return -1;
		if (len < hlen + (size_t)clen)
			return eof ? -1 : 0;
		*total = hlen + (size_t)clen;
		return 1;
	}
	if (*status < 200 || *status == 204 || *status == 304) {
		*total = hlen;
		return 1;
	}
	/* the body runs to the end of the connection */
	*keep = false;
	if (!eof)
		return 0;
	*total = len;
	return 1;
}

/* ---- connections and VUs ---- */

static bool
should_run(hdrv *d, const hvu *v)
{
	return !atomic_load(&d->run->stopping) && v->index < atomic_load(&d->run->vus) &&
	       !atomic_load(&d->quit);
}

static void
conn_close(hdrv *d, hconn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(d->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->connected = false;
	c->used = false;
	c->rlen = 0;
	c->wlen = c->woff = 0;
}

static void attach(hdrv *d, hvu *v, hconn *c);

/* c is free again; assign() hands it to the longest waiting VU. Never
 * attach from here: a connection that fails at once would recurse through
 * every waiting VU. */
static void
conn_release(hdrv *d, hconn *c)
{
	c->vu = NULL;
	list_append(&d->free, &c->free);
}

/* The request of v ended (kind); the VU goes on, thinks or idles. */
static void
finish(hdrv *d, hvu *v, int kind, const char *detail, bool reusable)
{
	int64_t now = clk_mono_ns();
	load_rec_add(d->run->rec, kind, now - v->start_ns, detail);
	list_remove(&v->flight);
	list_remove(&v->queue);
	atomic_fetch_sub(&d->inflight, 1);
	hconn *c = v->c;
	v->c = NULL;
	if (c != NULL) {
		if (!reusable)
			conn_close(d, c);
		conn_release(d, c);
	}
	if (!should_run(d, v)) {
		v->state = V_IDLE;
		return;
	}
	/* never start the next request from here: the loop does, so a
	 * failure at once cannot recurse */
	int64_t pause = d->run->o->think_ms;
	if (kind == LOAD_KIND_TRANSPORT && pause < FAIL_PAUSE_MS)
		pause = FAIL_PAUSE_MS;
	v->state = V_THINK;
	v->wake_ns = now + pause * 1000000;
	list_append(&d->due, &v->queue);
}

static void
conn_fail(hdrv *d, hconn *c, int err, const char *what)
{
	hvu *v = c->vu;
	/* a keep-alive connection the server closed while idle: send again */
	bool stale = c->used && c->rlen == 0 && (err == 0 || err == ECONNRESET || err == EPIPE);
	conn_close(d, c);
	if (v == NULL) {
		conn_release(d, c);
		return;
	}
	if (stale && !v->retried) {
		v->retried = true;
		attach(d, v, c);
		return;
	}
	char detail[160];
	snprintf(detail, sizeof(detail), "%s: %s", what, err ? strerror(err) : "connection closed");
	finish(d, v, LOAD_KIND_TRANSPORT, detail, false);
}

static void
try_write(hdrv *d, hconn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* EPOLLOUT will tell */
		conn_fail(d, c, errno, "send");
		return;
	}
}

static void
complete(hdrv *d, hconn *c, int status, size_t total, bool keep)
{
	hvu *v = c->vu;
	char detail[160];
	int kind;
	c->used = true;
	if (status == 200 || status == 201) {
		kind = LOAD_KIND_OK;
		detail[0] = '\0';
	} else {
		kind = status == 429 ? LOAD_KIND_BUSY : LOAD_KIND_BROKER;
		const char *body = find(c->rbuf, c->rlen, "\r\n\r\n");
		size_t blen = body ? total - (size_t)(body + 4 - c->rbuf) : 0;
		snprintf(detail, sizeof(detail), "HTTP %d%s%.*s", status, blen ? ": " : "",
		         (int)(blen < 100 ? blen : 100), body ? body + 4 : "");
	}
	if (c->rlen != total)
		keep = false; /* bytes after the response: we never pipeline */
	c->rlen = 0;
	finish(d, v, kind, detail, keep);
}

static void
try_read(hdrv *d, hconn *c)
{
	for (;;) {
		if (c->rlen == c->rcap) {
			if (c->rcap >= RESPONSE_MAX) {
				conn_fail(d, c, EMSGSIZE, "response");
				return;
			}
			size_t cap = c->rcap ? c->rcap * 2 : 1024;
			char *p = realloc(c->rbuf, cap);
			if (p == NULL) {
				conn_fail(d, c, ENOMEM, "response");
				return;
			}
			c->rbuf = p;
			c->rcap = cap;
		}
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			conn_fail(d, c, errno, "receive");
			return;
		}
		bool eof = n == 0;
		c->rlen += (size_t)n;
		if (c->vu == NULL) { /* idle: the server closed it, or sent junk */
			conn_close(d, c);
			return;
		}
		int status = 0;
		size_t total = 0;
		bool keep = false;
		int r = parse_response(c->rbuf, c->rlen, eof, &status, &total, &keep);
		if (r > 0) {
			complete(d, c, status, total, keep && !eof);
			return;
		}
		if (r < 0 || eof) {
			if (eof && c->rlen == 0)
				conn_fail(d, c, 0, "receive");
			else
				conn_fail(d, c, EPROTO, "response");
			return;
		}
	}
}

static void
conn_event(hdrv *d, hconn *c, uint32_t ev)
{
	if (c->fd < 0)
		return;
	if (!c->connected) {
		int e = 0;
		socklen_t len = sizeof(e);
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
			e = errno;
		if (e != 0) {
			conn_fail(d, c, e, "connect");
			return;
		}
		c->connected = true;
	}
	if (c->vu == NULL) {
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			try_read(d, c);
		return;
	}
	if (c->woff < c->wlen) {
		try_write(d, c);
		if (c->fd < 0 || c->vu == NULL)
			return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		try_read(d, c);
}

static void
conn_open(hdrv *d, hconn *c)
{
	c->fd = socket(d->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_fail(d, c, errno, "socket");
		return;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
	if (epoll_ctl(d->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		conn_fail(d, c, e, "epoll");
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&d->addr, d->addrlen) == 0) {
		c->connected = true;
		try_write(d, c);
	} else if (errno != EINPROGRESS) {
		conn_fail(d, c, errno, "connect");
	}
}

/* Gives v the connection c and sends its request. */
static void
attach(hdrv *d, hvu *v, hconn *c)
{
	const load_opts *o = d->run->o;
	c->vu = v;
	v->c = c;
	v->state = V_REQ;
	size_t plen = load_payload(d->run, v->seq, d->payload);
	char key[LOAD_HEAD_MAX + 1];
	size_t klen = load_payload_head(d->run, v->seq, key);
	key[klen] = '\0';
	int n = snprintf(c->wbuf, HEADER_ROOM,
	                 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
	                 "Content-Length: %zu\r\n%s%s%s\r\n",
	                 d->path, d->host, plen, o->no_keys ? "" : "Idempotency-Key: ",
	                 o->no_keys ? "" : key, o->no_keys ? "" : "\r\n");
	memcpy(c->wbuf + n, d->payload, plen);
	c->wlen = (size_t)n + plen;
	c->woff = 0;
	c->rlen = 0;
	if (c->fd < 0)
		conn_open(d, c);
	else
		try_write(d, c);
}

static void
start(hdrv *d, hvu *v, int64_t now)
{
	v->seq = atomic_fetch_add(&d->run->seq, 1);
	v->start_ns = now;
	v->deadline_ns = now + d->run->o->timeout_ms * 1000000;
	v->retried = false;
	atomic_fetch_add(&d->inflight, 1);
	list_append(&d->flight, &v->flight);
	v->state = V_WAIT;
	list_append(&d->waiting, &v->queue);
}

/* Free connections to waiting VUs, first come first served. */
static void
assign(hdrv *d)
{
	while (!list_empty(&d->free) && !list_empty(&d->waiting)) {
		hconn *c = CONTAINER(d->free.next, hconn, free);
		hvu *v = CONTAINER(d->waiting.next, hvu, queue);
		list_remove(&c->free);
		list_remove(&v->queue);
		attach(d, v, c);
	}
}

static void
expire(hdrv *d, int64_t now)
{
	char detail[96];
	while (!list_empty(&d->flight)) {
		hvu *v = CONTAINER(d->flight.next, hvu, flight);
		if (v->deadline_ns > now)
			break;
		snprintf(detail, sizeof(detail), "%s within %lld ms",
		         v->state == V_WAIT ? "no free connection" : "no response",
		         (long long)d->run->o->timeout_ms);
		if (v->c != NULL)
			conn_close(d, v->c); /* a late response must not meet the next request */
		finish(d, v, LOAD_KIND_TIMEOUT, detail, false);
	}
}

static void
wake_due(hdrv *d, int64_t now)
{
	hlink ready;
	list_init(&ready);
	while (!list_empty(&d->due)) {
		hvu *v = CONTAINER(d->due.next, hvu, queue);
		if (v->wake_ns > now)
			break;
		list_remove(&v->queue);
		list_append(&ready, &v->queue);
	}
	while (!list_empty(&ready)) {
		hvu *v = CONTAINER(ready.next, hvu, queue);
		list_remove(&v->queue);
		if (should_run(d, v))
			start(d, v, now);
		else
			v->state = V_IDLE;
	}
}

static void
start_idle(hdrv *d, int64_t now)
{
	int target = atomic_load(&d->run->vus);
	if (atomic_load(&d->run->stopping))
		target = 0;
	if (target == d->last_target)
		return;
	d->last_target = target;
	for (int i = 0; i < target && i < d->nvus; i++)
		if (d->vus[i].state == V_IDLE)
			start(d, &d->vus[i], now);
}

static void *
loop(void *arg)
{
	hdrv *d = arg;
	struct epoll_event evs[256];
	while (!atomic_load(&d->quit)) {
		int64_t now = clk_mono_ns();
		int64_t wait_ns = 100 * 1000000LL;
		if (!list_empty(&d->due)) {
			int64_t w = CONTAINER(d->due.next, hvu, queue)->wake_ns - now;
			if (w < wait_ns)
				wait_ns = w;
		}
		if (!list_empty(&d->flight)) {
			int64_t w = CONTAINER(d->flight.next, hvu, flight)->deadline_ns - now;
			if (w < wait_ns)
				wait_ns = w;
		}
		int timeout = wait_ns <= 0 ? 0 : (int)((wait_ns + 999999) / 1000000);
		int n = epoll_wait(d->ep, evs, 256, timeout);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t x;
				if (read(d->wake, &x, sizeof(x)) < 0) { /* nothing to do: it is only a wake-up */
				}
				continue;
			}
			conn_event(d, evs[i].data.ptr, evs[i].events);
		}
		now = clk_mono_ns();
		expire(d, now);
		wake_due(d, now);
		start_idle(d, now);
		assign(d);
	}
	return NULL;
}

static void
poke(hdrv *d)
{
	uint64_t one = 1;
	if (write(d->wake, &one, sizeof(one)) < 0) { /* the counter is full: the loop is awake */
	}
}

static void http_close(void *arg);

static int
http_open(load_run *run, int max_vus, void **out, char *err, size_t errlen)
{
	const load_opts *o = run->o;
	hdrv *d = calloc(1, sizeof(*d));
	*out = NULL;
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->run = run;
	d->ep = d->wake = -1;
	atomic_init(&d->quit, false);
	atomic_init(&d->inflight, 0);
	list_init(&d->flight);
	list_init(&d->waiting);
	list_init(&d->due);
	list_init(&d->free);
	if (parse_url(d, o->url, err, errlen) != 0 || probe(d, o->url, err, errlen) != 0)
		goto fail;
	d->nvus = max_vus;
	d->nconns = o->connections > 0 ? o->connections : max_vus;
	if (d->nconns < 1)
		d->nconns = 1;
	d->vus = calloc((size_t)(max_vus > 0 ? max_vus : 1), sizeof(*d->vus));
	d->conns = calloc((size_t)d->nconns, sizeof(*d->conns));
	d->payload = malloc(run->payload_len);
	if (d->vus == NULL || d->conns == NULL || d->payload == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < d->nvus; i++) {
		d->vus[i].index = i;
		d->vus[i].state = V_IDLE;
		list_init(&d->vus[i].flight);
		list_init(&d->vus[i].queue);
	}
	for (int i = 0; i < d->nconns; i++) {
		hconn *c = &d->conns[i];
		c->fd = -1;
		list_init(&c->free);
		if ((c->wbuf = malloc(HEADER_ROOM + run->payload_len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		list_append(&d->free, &c->free);
	}
	d->ep = epoll_create1(EPOLL_CLOEXEC);
	d->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (d->ep < 0 || d->wake < 0 || epoll_ctl(d->ep, EPOLL_CTL_ADD, d->wake, &ev) != 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	int rv = pthread_create(&d->thread, NULL, loop, d);
	if (rv != 0) {
		snprintf(err, errlen, "cannot start a thread: %s", strerror(rv));
		goto fail;
	}
	d->started = true;
	*out = d;
	return 0;
fail:
	http_close(d);
	return -1;
}

static void
http_set_vus(void *arg, int vus)
{
	(void)vus; /* the loop reads run->vus */
	poke(arg);
}

static void
http_tick(void *arg, int64_t now_ns)
{
	(void)arg;
	(void)now_ns;
}

static void
http_stop(void *arg)
{
	poke(arg);
}

static int
http_inflight(void *arg)
{
	hdrv *d = arg;
	return atomic_load(&d->inflight);
}

static void
http_close(void *arg)
{
	hdrv *d = arg;
	if (d == NULL)
		return;
	if (d->started) {
		atomic_store(&d->quit, true);
		poke(d);
		pthread_join(d->thread, NULL);
	}
	for (int i = 0; d->conns != NULL && i < d->nconns; i++) {
		if (d->conns[i].fd >= 0)
			close(d->conns[i].fd);
		free(d->conns[i].wbuf);
		free(d->conns[i].rbuf);
	}
	if (d->ep >= 0)
		close(d->ep);
	if (d->wake >= 0)
		close(d->wake);
	free(d->conns);
	free(d->vus);
	free(d->payload);
	free(d);
}

const load_driver load_http_driver = {
	.name = "http",
	.open = http_open,
	.set_vus = http_set_vus,
	.tick = http_tick,
	.stop = http_stop,
	.inflight = http_inflight,
	.close = http_close,
};
