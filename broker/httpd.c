/*
 * httpd: the HTTP/1.1 server under the broker's API; see httpd.h.
 *
 * One thread owns the listening socket, every connection and an epoll set
 * (edge-triggered for connections). A connection carries one request at a
 * time: its bytes stay in the connection's buffer from the head's arrival
 * to the answer, so the request's strings and body point into it. Answers
 * come from any thread: brk_hreq_respond formats the answer into the
 * connection's ans buffer, which only the responder touches, and queues
 * the connection on the done list; the server's thread moves ans to out
 * and writes it. An eventfd wakes the thread when the list turns
 * non-empty, so a group commit's worth of answers costs one wake-up.
 *
 * Why not NNG's HTTP server: it passes each request between its own
 * threads several times (read, handler, body read, write), and on two
 * cores those hand-offs, not the disk, bound the broker's HTTP enqueues.
 */
#define _GNU_SOURCE /* accept4 */
#include "httpd.h"

#include "http_parse.h"
#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STALL_MS 30000       /* a request (or an answer) making no progress this long is dropped */
#define IDLE_MS 120000       /* a kept-alive connection with no request this long is closed */
#define LINGER_MS 2000       /* after a closing answer, how long to drain what the client sends */
#define TICK_MS 250          /* how often stalls are looked for */
#define ACCEPT_PAUSE_MS 100  /* out of descriptors: stop accepting this long */
#define BUF_MIN 4096
#define BUF_KEEP 65536       /* a bigger buffer is given back after its request */
#define OUT_MAX 65536        /* answers not yet read by the client before requests wait */
#define MAX_EVENTS 256

enum cstate {
	C_HEAD,     /* reading a head */
	C_HANDLER,  /* the handler has the request */
	C_BODY,     /* reading the body the handler asked for */
	C_SKIP,     /* dropping the body of a request answered without it */
	C_LINGER,   /* answered and closing: draining the client's bytes */
};

struct brk_hreq {
	brk_http_head head;
	size_t clen;           /* Content-Length (0 when not framed) */
	bool framed;
	bool expect;           /* Expect: 100-continue */
	bool close;            /* the client asked for the connection to close */
	void *data;
};

typedef struct conn conn;
struct conn {
	brk_httpd *s;
	conn *prev, *next;     /* s->conns */
	conn *next_done;       /* s->done, under s->mu */
	int fd;                /* -1 once closed */
	int state;
	bool readable;         /* the last edge said so and no read has drained it */
	bool rdhup;            /* the client shut its side: read until the end */
	bool eof;              /* the client sent all it will */
	bool close_after;      /* close once out is written */
	bool dead;             /* closed while the handler holds its request */
	bool body_read;
	int64_t deadline;      /* stalled past this (see stalled()) */

	uint8_t *in;           /* bytes read: the request at the start */
	size_t cap, len;
	size_t head_len;       /* of the request in hand */
	size_t scanned;        /* brk_http_head_parse's */
	size_t skip;           /* C_SKIP: body bytes still to drop */

	char *out;             /* the thread's: answers being written */
	size_t out_len, out_off, out_cap;

	char *ans;             /* the responder's, until queued on done */
	size_t ans_len, ans_cap;
	bool ans_close, ans_broken;

	brk_hreq r;
};

struct brk_httpd {
	brk_httpd_handler hd;
	int lfd, efd, ep;
	pthread_t thread;
	bool started;
	char addr[96];
	conn *conns;           /* the thread's */
	int64_t now;           /* the thread's clock, ms */
	int64_t accept_paused_until;
	int64_t next_tick;

	pthread_mutex_t mu;
	conn *done_head, *done_tail; /* under mu */
	bool stop;                   /* under mu */
};

static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static conn *
conn_of(brk_hreq *r)
{
	return (conn *)(void *)((char *)r - offsetof(conn, r));
}

static bool
grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : BUF_MIN;
	while (n < need)
		n *= 2;
	char *p = realloc(*buf, n);
	if (p == NULL)
		return false;
	*buf = p;
	*cap = n;
	return true;
}

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
	conn *c = conn_of((brk_hreq *)r);
	return c->body_read ? c->in + c->head_len : NULL;
}

static void
out_put(conn *c, const char *p, size_t n)
{
	if (!grow(&c->out, &c->out_cap, c->out_len + n)) {
		c->close_after = true; /* cannot answer: give up on the connection */
		return;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

void
brk_hreq_read_body(brk_hreq *r)
{
	conn *c = conn_of(r);
	c->state = C_BODY;
	/* a client that asked waits for the go-ahead before it sends */
	if (r->expect && r->clen > 0 && c->len == c->head_len)
		out_put(c, CONTINUE, sizeof(CONTINUE) - 1);
}

void
brk_hreq_respond(brk_hreq *r, unsigned status, const char *type, const char *headers,
                 const void *body, size_t len, bool close)
{
	conn *c = conn_of(r);
	brk_httpd *s = c->s;
	char head[512];

	close = close || r->close || !r->framed;
	size_t blen = strcmp(r->head.method, "HEAD") == 0 ? 0 : len; /* HEAD: the length, no body */
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
	                 status, brk_http_reason(status), type, len, headers ? headers : "",
	                 close ? "Connection: close\r\n" : "");
	c->ans_broken = n < 0 || (size_t)n >= sizeof(head) ||
	                !grow(&c->ans, &c->ans_cap, (size_t)n + blen);
	if (!c->ans_broken) {
		memcpy(c->ans, head, (size_t)n);
		if (blen > 0)
			memcpy(c->ans + n, body, blen);
		c->ans_len = (size_t)n + blen;
	}
	c->ans_close = close;

	pthread_mutex_lock(&s->mu);
	bool wake = s->done_head == NULL;
	c->next_done = NULL;
	if (s->done_tail != NULL)
		s->done_tail->next_done = c;
	else
		s->done_head = c;
	s->done_tail = c;
	pthread_mutex_unlock(&s->mu);
	/* the thread itself looks at the list before it sleeps again */
	if (wake && !pthread_equal(pthread_self(), s->thread)) {
		uint64_t one = 1;
		(void)!write(s->efd, &one, sizeof(one));
	}
}

/* ---- connections ---- */

static void
conn_free(conn *c)
{
	brk_httpd *s = c->s;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	free(c->ans);
	free(c);
}

/* The handler waits for a body that will not come: tell it (brk_hreq_body
 * gives NULL); its answer then frees c. */
static void
abandon_body(conn *c)
{
	c->dead = true;
	c->state = C_HANDLER;
	c->s->hd.body(c->s->hd.arg, &c->r);
}

/* Ends the connection. A request the handler holds keeps it until it is
 * answered; a body the handler waits for is reported missing. */
static void
conn_close(conn *c)
{
	if (c->state != C_HANDLER && c->state != C_BODY) {
		conn_free(c);
		return;
	}
	close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->dead = true;
	if (c->state == C_BODY)
		abandon_body(c);
}

/* Writes what out holds. -1 when the connection failed. */
static int
flush(conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			c->deadline = c->s->now + STALL_MS;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return 0;
		} else {
			return -1;
		}
	}
	c->out_off = c->out_len = 0;
	return 0;
}

/* The head's strings point into the buffer: follow it when it moves. */
static void
rebase(brk_http_head *h, uintptr_t from, char *to)
{
#define MOVE(p) ((p) = to + ((uintptr_t)(p) - from))
	MOVE(h->method);
	MOVE(h->target);
	for (size_t i = 0; i < h->nheaders; i++) {
		MOVE(h->h[i].name);
		MOVE(h->h[i].value);
	}
#undef MOVE
}

/* Reads into in, making room for need bytes in all. 1 read something, 0
 * nothing to read now, -1 the connection failed. Sets eof. */
static int
fill(conn *c, size_t need)
{
	if (!c->readable && !c->rdhup)
		return 0;
	if (need < c->len + BUF_MIN / 2)
		need = c->len + BUF_MIN / 2;
	if (need > c->cap) {
		/* by hand rather than realloc: the head must follow the bytes */
		size_t n = c->cap ? c->cap : BUF_MIN;
		while (n < need)
			n *= 2;
		uint8_t *p = malloc(n);
		if (p == NULL)
			return -1;
		if (c->len > 0)
			memcpy(p, c->in, c->len);
		if (c->head_len > 0)
			rebase(&c->r.head, (uintptr_t)c->in, (char *)p);
		free(c->in);
		c->in = p;
		c->cap = n;
	}
	for (;;) {
		size_t want = c->cap - c->len;
		ssize_t n = recv(c->fd, c->in + c->len, want, 0);
		if (n > 0) {
			c->len += (size_t)n;
			c->deadline = c->s->now + STALL_MS;
			/* a short read took all there was: the next arrival brings a new edge */
			if ((size_t)n < want)
				c->readable = false;
			return 1;
		}
		if (n == 0) {
			c->eof = true;
			c->readable = false;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->readable = false;
			return 0;
		}
		return -1;
	}
}

/* An answer of the server's own, for a request it could not parse. */
static void
refuse(conn *c, unsigned status, const char *why)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg),
	                 "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n{\"error\":\"%s\"}\n",
	                 status, brk_http_reason(status), strlen(why) + 13, why);
	out_put(c, msg, (size_t)n);
	c->close_after = true;
}

/* A head is in: frame the request and hand it over. */
static void
dispatch(conn *c, long head_len)
{
	brk_hreq *r = &c->r;
	brk_httpd *s = c->s;
	size_t ncl = 0;
	const char *cl = brk_http_head_get(&r->head, "Content-Length", &ncl);
	const char *conn_hdr = brk_http_head_get(&r->head, "Connection", NULL);
	const char *expect = brk_http_head_get(&r->head, "Expect", NULL);

	c->head_len = (size_t)head_len;
	c->body_read = false;
	r->data = NULL;
	r->clen = 0;
	r->framed = brk_http_head_get(&r->head, "Transfer-Encoding", NULL) == NULL && ncl <= 1 &&
	            (cl == NULL || brk_http_content_length(cl, &r->clen));
	if (!r->framed)
		r->clen = 0;
	r->expect = brk_http_expects_continue(expect) && r->head.minor >= 1;
	r->close = r->head.minor == 0 || (conn_hdr != NULL && strcasecmp(conn_hdr, "close") == 0);
	c->state = C_HANDLER;
	s->hd.head(s->hd.arg, r);
}

/* The answer to c's request is in ans: queue it for writing and move on
 * to the next request. */
static void
answered(conn *c)
{
	if (c->dead) {
		conn_free(c);
		return;
	}
	if (c->ans_broken) {
		c->close_after = true;
	} else if (c->out_off == c->out_len) { /* swap rather than copy */
		char *p = c->out;
		size_t cap = c->out_cap;
		c->out = c->ans;
		c->out_cap = c->ans_cap;
		c->out_off = 0;
		c->out_len = c->ans_len;
		c->ans = p;
		c->ans_cap = cap;
	} else {
		out_put(c, c->ans, c->ans_len);
	}
	c->ans_len = 0;
	if (c->ans_close)
		c->close_after = true;

	/* the request leaves the buffer; a body not read is skipped */
	size_t consumed = c->head_len, after = c->len - c->head_len;
	c->skip = 0;
	if (c->body_read) {
		consumed += c->r.clen;
	} else {
		size_t b = after < c->r.clen ? after : c->r.clen;
		consumed += b;
		c->skip = c->r.clen - b;
	}
	memmove(c->in, c->in + consumed, c->len - consumed);
	c->len -= consumed;
	c->head_len = c->scanned = 0;
	c->body_read = false;
	c->state = c->skip > 0 ? C_SKIP : C_HEAD;
	c->deadline = c->s->now + (c->skip > 0 || c->len > 0 ? STALL_MS : IDLE_MS);
	if (c->cap > BUF_KEEP && c->len <= BUF_MIN) {
		uint8_t *p = malloc(BUF_MIN);
		if (p != NULL) {
			memcpy(p, c->in, c->len);
			free(c->in);
			c->in = p;
			c->cap = BUF_MIN;
		}
	}
}

/* Does what can be done for c now; may free it. */
static void
conn_run(conn *c)
{
	for (;;) {
		if (c->out_off < c->out_len && flush(c) != 0) {
			conn_close(c);
			return;
		}
		bool pending = c->out_off < c->out_len;
		if (c->close_after && !pending && c->state != C_LINGER && c->state != C_HANDLER) {
			/* let the client read the answer before the close: drain
			 * what it still sends instead of resetting the connection */
			shutdown(c->fd, SHUT_WR);
			c->state = C_LINGER;
			c->len = 0;
			c->deadline = c->s->now + LINGER_MS;
		}
		if (c->close_after && c->state != C_LINGER)
			return; /* the answer is still going out */

		int rv;
		switch (c->state) {
		case C_HANDLER:
			return;
		case C_LINGER:
			c->len = 0;
			rv = fill(c, BUF_MIN);
			if (rv < 0 || c->eof) {
				conn_free(c);
				return;
			}
			if (rv == 0)
				return;
			continue;
		case C_SKIP: {
			size_t d = c->len < c->skip ? c->len : c->skip;
			memmove(c->in, c->in + d, c->len - d);
			c->len -= d;
			c->skip -= d;
			if (c->skip == 0) {
				c->state = C_HEAD;
				continue;
			}
			break;
		}
		case C_BODY:
			if (c->len - c->head_len >= c->r.clen) {
				c->body_read = true;
				c->state = C_HANDLER;
				c->s->hd.body(c->s->hd.arg, &c->r);
				continue;
			}
			break;
		case C_HEAD:
			if (pending && c->out_len - c->out_off > OUT_MAX)
				return; /* the client is not reading its answers */
			if (c->len > 0) {
				long h = brk_http_head_parse((char *)c->in, c->len, &c->scanned, &c->r.head);
				if (h > 0) {
					dispatch(c, h);
					continue;
				}
				if (h < 0) {
					refuse(c, (unsigned)-h,
					       h == -431 ? "request head too large" :
					       h == -505 ? "HTTP/1.x only" : "bad request");
					continue;
				}
			}
			break;
		}
		/* more bytes are needed */
		size_t need = c->state == C_BODY ? c->head_len + c->r.clen : c->len + BUF_MIN / 2;
		rv = fill(c, need);
		if (rv < 0) {
			conn_close(c);
			return;
		}
		if (rv == 0) {
			if (!c->eof)
				return;
			/* the client is done sending: finish the answers, then close */
			if (c->out_off < c->out_len && (c->state == C_HEAD || c->state == C_SKIP)) {
				c->close_after = true;
				return;
			}
			conn_close(c);
			return;
		}
	}
}

/* Has c stalled (a request, an answer or a lingering close going nowhere)
 * or been idle too long? Requests the handler holds wait for their answer. */
static bool
stalled(const conn *c, int64_t now)
{
	return !c->dead && c->state != C_HANDLER && now >= c->deadline;
}

/* ---- the thread ---- */

static void
accept_all(brk_httpd *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_warn("HTTP-ACCEPT", "cannot accept: %s; pausing %d ms", strerror(errno),
				         ACCEPT_PAUSE_MS);
				epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
				s->accept_paused_until = s->now + ACCEPT_PAUSE_MS;
			}
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn *c = calloc(1, sizeof(*c));
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		                         .data.ptr = c};
		if (c == NULL || epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			free(c);
			close(fd);
			continue;
		}
		c->s = s;
		c->fd = fd;
		c->state = C_HEAD;
		c->deadline = s->now + IDLE_MS;
		c->next = s->conns;
		if (s->conns != NULL)
			s->conns->prev = c;
		s->conns = c;
	}
}

static void
tick(brk_httpd *s)
{
	if (s->accept_paused_until != 0 && s->now >= s->accept_paused_until) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->lfd};
		s->accept_paused_until = 0;
		epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
	}
	for (conn *c = s->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (stalled(c, s->now)) {
			log_debug("HTTP-STALLED", "closing a connection: %s",
			          c->state == C_HEAD && c->len == 0 && c->out_off == c->out_len ?
			          "idle" : "no progress");
			conn_close(c); /* a dead one stays on the list: next is still good */
		}
	}
}

static void *
run(void *arg)
{
	brk_httpd *s = arg;
	struct epoll_event ev[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(s->ep, ev, MAX_EVENTS, TICK_MS);
		s->now = now_ms();
		for (int i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;
			if (p == &s->lfd) {
				accept_all(s);
			} else if (p == &s->efd) {
				uint64_t v;
				(void)!read(s->efd, &v, sizeof(v));
			} else {
				conn *c = p;
				if (c->dead)
					continue;
				if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					c->readable = true;
				if (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					c->rdhup = true;
				if ((ev[i].events & (EPOLLHUP | EPOLLERR)) && c->state == C_HANDLER) {
					conn_close(c); /* gone for good: no answer to write */
					continue;
				}
				conn_run(c);
			}
		}
		for (;;) {
			pthread_mutex_lock(&s->mu);
			bool stop = s->stop;
			conn *c = stop ? NULL : s->done_head;
			if (!stop)
				s->done_head = s->done_tail = NULL;
			pthread_mutex_unlock(&s->mu);
			if (stop)
				return NULL; /* brk_httpd_close takes the list */
			if (c == NULL)
				break;
			while (c != NULL) {
				conn *next = c->next_done;
				bool dead = c->dead;
				answered(c);
				if (!dead)
					conn_run(c);
				c = next;
			}
		}
		if (s->now >= s->next_tick) {
			tick(s);
			s->next_tick = s->now + TICK_MS;
		}
	}
}

/* ---- life cycle ---- */

/* Splits hostport into host (NULL for any) and port, in buf. */
static int
split_addr(const char *hostport, char *buf, size_t cap, char **host, char **port)
{
	if (strncmp(hostport, "http://", 7) == 0)
		hostport += 7;
	if (snprintf(buf, cap, "%s", hostport) >= (int)cap)
		return -1;
	size_t n = strlen(buf);
	if (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	char *colon;
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		*close = '\0';
		*host = buf + 1;
		colon = close + 1;
	} else {
		if ((colon = strrchr(buf, ':')) == NULL)
			return -1;
		*colon = '\0';
		*host = buf;
	}
	*port = colon + 1;
	if (**port == '\0' || strspn(*port, "0123456789") != strlen(*port))
		return -1;
	if (**host == '\0' || strcmp(*host, "*") == 0)
		*host = NULL;
	return 0;
}

static int
listen_on(brk_httpd *s, const char *hostport, char *err, size_t errlen)
{
	char buf[300], *host, *port;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int rv, e = 0;

	if (split_addr(hostport, buf, sizeof(buf), &host, &port) != 0) {
		snprintf(err, errlen, "broker.http '%s': use host:port", hostport);
		return -1;
	}
	if ((rv = getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "broker.http '%s': %s", hostport, gai_strerror(rv));
		return -1;
	}
	for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
			s->lfd = fd;
			break;
		}
		e = errno;
		close(fd);
	}
	freeaddrinfo(ai);
	if (s->lfd < 0) {
		snprintf(err, errlen, "cannot listen on %s (broker.http): %s", hostport, strerror(e));
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char h[64], p[8];
	if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
	                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(s->addr, sizeof(s->addr), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
	else
		snprintf(s->addr, sizeof(s->addr), "%s", hostport);
	return 0;
}

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
	s->lfd = s->efd = s->ep = -1;
	pthread_mutex_init(&s->mu, NULL);
	if (listen_on(s, hostport, err, errlen) != 0)
		goto fail;
	struct epoll_event el = {.events = EPOLLIN, .data.ptr = &s->lfd};
	struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &s->efd};
	if ((s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    (s->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &el) != 0 ||
	    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->efd, &ee) != 0) {
		snprintf(err, errlen, "HTTP server: %s", strerror(errno));
		goto fail;
	}
	s->now = now_ms();
	if ((errno = pthread_create(&s->thread, NULL, run, s)) != 0) {
		snprintf(err, errlen, "HTTP server thread: %s", strerror(errno));
		goto fail;
	}
	s->started = true;
	*out = s;
	return 0;
fail:
	brk_httpd_close(s);
	return -1;
}

const char *
brk_httpd_addr(const brk_httpd *s)
{
	return s->addr;
}

void
brk_httpd_close(brk_httpd *s)
{
	if (s == NULL)
		return;
	if (s->started) {
		uint64_t one = 1;
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_mutex_unlock(&s->mu);
		(void)!write(s->efd, &one, sizeof(one));
		pthread_join(s->thread, NULL);
	}
	size_t held = 0;
	for (conn *c = s->conns; c != NULL; c = c->next)
		if (c->state == C_BODY)
			abandon_body(c); /* answered onto the done list */
	for (conn *c = s->done_head; c != NULL; c = c->next_done)
		c->state = C_HEAD; /* answered: not held */
	for (conn *c = s->conns, *next; c != NULL; c = next) {
		next = c->next;
		held += c->state == C_HANDLER && !c->dead;
		conn_free(c);
	}
	if (held > 0)
		log_warn("HTTP-LEAK", "%zu HTTP requests still held at close", held);
	if (s->ep >= 0)
		close(s->ep);
	if (s->efd >= 0)
		close(s->efd);
	if (s->lfd >= 0)
		close(s->lfd);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
