/*
 * reactor: connections on one epoll thread; see reactor.h.
 *
 * Connections are edge-triggered: an event marks a connection readable
 * (or its client as done sending) and conn_run does all it can: write the
 * queued answers (writev, in order), let the protocol frame what is in,
 * read more. A read that returns less than it asked for took all there
 * was, so the next arrival brings a new edge and no second read is needed
 * to see EAGAIN. Posted answers go on a done list under a mutex; an
 * eventfd wakes the thread when the list turns non-empty, so a group
 * commit's worth of answers costs one wake-up.
 */
#define _GNU_SOURCE /* accept4, pthread_setname_np */
#include "reactor.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define STALL_MS        30000 /* a request arriving no faster than this is dropped */
#define LINGER_MS       2000  /* after a closing answer, how long to drain the client's bytes */
#define TICK_MS         250   /* how often stalls are looked for */
#define ACCEPT_PAUSE_MS 100   /* out of descriptors: stop accepting this long */
#define BUF_MIN         4096
#define BUF_KEEP        65536 /* a bigger idle buffer is given back */
#define MAX_EVENTS      256
#define MAX_IOV         64

struct brk_rx_conn {
	brk_rx *rx;
	brk_rx_conn *prev, *next; /* rx->conns */
	brk_rx_conn *next_kick;   /* rx->kicked */
	int fd;                   /* -1 once ended */
	bool readable;            /* the last edge said so and no read drained it */
	bool rdhup;               /* the client shut its side: read to the end */
	bool eof;
	bool fresh;       /* input has something new for the protocol */
	bool close_after; /* close once the queue is written */
	bool lingering;
	bool ended; /* closed; waits for its held answers */
	bool busy;
	bool kicked;
	int held; /* answers due */
	int64_t last_in, last_out, last_any, linger_until;

	uint8_t *in;
	size_t cap, len, want;

	brk_rx_out *wq_head, *wq_tail; /* answers to write, in order */
	size_t wq_off;                 /* bytes of wq_head written */

	void *data; /* the protocol's */
};

struct brk_rx {
	brk_rx_proto p;
	int lfd, efd, ep;
	pthread_t thread;
	bool started;
	char addr[96];
	brk_rx_conn *conns; /* the thread's */
	brk_rx_conn *kicked;
	int64_t now;
	int64_t accept_paused_until;
	int64_t next_tick;

	pthread_mutex_t mu;
	brk_rx_out *done_head, *done_tail; /* under mu */
	bool stop, stop_accepting;         /* under mu */
};

/* ---- the protocol's view ---- */

void
brk_rx_set_data(brk_rx_conn *c, void *data)
{
	c->data = data;
}

void *
brk_rx_data(const brk_rx_conn *c)
{
	return c->data;
}

uint8_t *
brk_rx_input(const brk_rx_conn *c, size_t *len)
{
	*len = c->len;
	return c->in;
}

void
brk_rx_consume(brk_rx_conn *c, size_t n)
{
	if (n > c->len)
		n = c->len;
	memmove(c->in, c->in + n, c->len - n);
	c->len -= n;
}

void
brk_rx_want(brk_rx_conn *c, size_t n)
{
	c->want = n;
}

bool
brk_rx_eof(const brk_rx_conn *c)
{
	return c->eof;
}

void
brk_rx_busy(brk_rx_conn *c, bool busy)
{
	c->busy = busy;
}

void
brk_rx_hold(brk_rx_conn *c)
{
	c->held++;
}

static void
queue(brk_rx_conn *c, brk_rx_out *o)
{
	o->next = NULL;
	if (c->wq_tail != NULL)
		c->wq_tail->next = o;
	else
		c->wq_head = o;
	c->wq_tail = o;
	if (c->wq_head == o)
		c->last_out = c->rx->now; /* a write stall counts from here */
	if (o->close)
		c->close_after = true;
}

void
brk_rx_send(brk_rx_conn *c, brk_rx_out *o)
{
	o->conn = c;
	if (c->ended) {
		o->release(o);
		return;
	}
	queue(c, o);
}

void
brk_rx_close_after(brk_rx_conn *c)
{
	c->close_after = true;
}

void
brk_rx_kick(brk_rx_conn *c)
{
	if (c->kicked || c->ended)
		return;
	c->kicked = true;
	c->next_kick = c->rx->kicked;
	c->rx->kicked = c;
}

void
brk_rx_post(brk_rx_conn *c, brk_rx_out *o)
{
	brk_rx *rx = c->rx;
	o->conn = c;
	o->next = NULL;
	pthread_mutex_lock(&rx->mu);
	bool wake = rx->done_head == NULL;
	if (rx->done_tail != NULL)
		rx->done_tail->next = o;
	else
		rx->done_head = o;
	rx->done_tail = o;
	pthread_mutex_unlock(&rx->mu);
	/* the thread itself looks at the list before it sleeps again */
	if (wake && !pthread_equal(pthread_self(), rx->thread)) {
		uint64_t one = 1;
		(void)!write(rx->efd, &one, sizeof(one));
	}
}

/* ---- connections ---- */

static void
unlink_free(brk_rx_conn *c)
{
	brk_rx *rx = c->rx;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		rx->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c->in);
	free(c);
}

/* The connection ends now: the protocol lets go of it and queued answers
 * are released. It is freed by whoever sees it ended with no answer due. */
void
brk_rx_drop(brk_rx_conn *c)
{
	if (c->ended)
		return;
	c->ended = true;
	close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->want = 0;
	c->rx->p.closed(c->rx->p.arg, c);
	while (c->wq_head != NULL) {
		brk_rx_out *o = c->wq_head;
		c->wq_head = o->next;
		o->release(o);
	}
	c->wq_tail = NULL;
}

/* Frees c if it has ended and nothing refers to it any more. */
static void
reap(brk_rx_conn *c)
{
	if (c->ended && c->held == 0 && !c->kicked)
		unlink_free(c);
}

static void
conn_end(brk_rx_conn *c)
{
	brk_rx_drop(c);
	reap(c);
}

/* Writes the queue. -1 when the connection failed. */
static int
flush(brk_rx_conn *c)
{
	while (c->wq_head != NULL) {
		struct iovec iov[MAX_IOV];
		int n = 0;
		size_t off = c->wq_off;
		for (brk_rx_out *o = c->wq_head; o != NULL && n < MAX_IOV; o = o->next) {
			iov[n].iov_base = (void *)(o->data + off);
			iov[n].iov_len = o->len - off;
			off = 0;
			n++;
		}
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t k = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		c->last_out = c->last_any = c->rx->now;
		size_t left = (size_t)k;
		while (c->wq_head != NULL && left >= c->wq_head->len - c->wq_off) {
			brk_rx_out *o = c->wq_head;
			left -= o->len - c->wq_off;
			c->wq_off = 0;
			c->wq_head = o->next;
			if (c->wq_head == NULL)
				c->wq_tail = NULL;
			o->release(o);
		}
		c->wq_off += left;
		if (c->wq_head != NULL && left > 0)
			return 0; /* a short write: the socket is full */
	}
	return 0;
}

/* Moves the input into a buffer of cap bytes (at least its length),
 * telling the protocol; by hand rather than realloc, so that the protocol
 * can follow the bytes. */
static bool
move_input(brk_rx_conn *c, size_t cap)
{
	brk_rx *rx = c->rx;
	uint8_t *p = malloc(cap);
	if (p == NULL)
		return false;
	if (c->len > 0)
		memcpy(p, c->in, c->len);
	if (c->in != NULL && rx->p.moved != NULL)
		rx->p.moved(rx->p.arg, c, (uintptr_t)c->in, p);
	free(c->in);
	c->in = p;
	c->cap = cap;
	return true;
}

/* Gives the buffer at least n bytes of room in all. */
static bool
reserve(brk_rx_conn *c, size_t n)
{
	if (n <= c->cap)
		return true;
	size_t cap = c->cap ? c->cap : BUF_MIN;
	while (cap < n)
		cap *= 2;
	return move_input(c, cap);
}

/* Reads what there is room for. 1 read something, 0 nothing now, -1 the
 * connection failed. Sets eof. */
static int
fill(brk_rx_conn *c)
{
	if (!c->readable && !c->rdhup)
		return 0;
	if (!reserve(c, c->want > BUF_MIN ? c->want : BUF_MIN))
		return -1;
	if (c->len == c->cap)
		return 0; /* full: the protocol consumes first */
	for (;;) {
		size_t room = c->cap - c->len;
		ssize_t n = recv(c->fd, c->in + c->len, room, 0);
		if (n > 0) {
			c->len += (size_t)n;
			c->last_in = c->last_any = c->rx->now;
			if ((size_t)n < room)
				c->readable = false;
			return 1;
		}
		if (n == 0) {
			c->eof = true;
			c->readable = c->rdhup = false;
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

/* Does what can be done for c now; may free it. */
static void
conn_run(brk_rx_conn *c)
{
	brk_rx *rx = c->rx;
	while (!c->ended) {
		if (flush(c) != 0) {
			conn_end(c);
			return;
		}
		if (c->close_after && c->wq_head == NULL && c->held == 0 && !c->lingering) {
			/* let the client read the answer before the close: drain
			 * what it still sends instead of resetting the connection */
			shutdown(c->fd, SHUT_WR);
			c->lingering = true;
			c->linger_until = rx->now + LINGER_MS;
		}
		if (c->lingering) {
			c->len = c->want = 0;
			int rv = fill(c);
			if (rv < 0 || c->eof) {
				conn_end(c);
				return;
			}
			if (rv > 0)
				continue;
			return;
		}
		if (c->fresh && !c->close_after) {
			c->fresh = false;
			rx->p.input(rx->p.arg, c);
			if (c->ended)
				break;
			/* give a big buffer back (out of memory: keep it) */
			if (c->cap > BUF_KEEP && c->len <= BUF_MIN && c->want <= BUF_MIN)
				(void)move_input(c, BUF_MIN);
			continue;
		}
		if (c->close_after)
			return; /* answers still due or going out */
		int rv = fill(c);
		if (rv < 0) {
			conn_end(c);
			return;
		}
		if (rv > 0) {
			c->fresh = true;
			continue;
		}
		if (c->eof) {
			/* the client is done sending: what it sent is framed,
			 * answered, written, then the connection closes */
			c->close_after = true;
			c->fresh = false;
			rx->p.input(rx->p.arg, c);
			continue;
		}
		return;
	}
	reap(c);
}

/* Has c stalled or idled past its limits? */
static const char *
stalled(const brk_rx_conn *c, const brk_rx_proto *p, int64_t now)
{
	if (c->ended)
		return NULL;
	if (c->lingering)
		return now >= c->linger_until ? "lingering close done" : NULL;
	if (c->wq_head != NULL && now - c->last_out >= p->write_stall_ms)
		return BRK_RX_STALL_WRITE;
	if (c->len > 0 && !c->busy && now - c->last_in >= STALL_MS)
		return "a request made no progress";
	if (p->idle_ms > 0 && c->held == 0 && c->wq_head == NULL && c->len == 0 &&
	    now - c->last_any >= p->idle_ms)
		return "idle";
	return NULL;
}

/* ---- the thread ---- */

static void
accept_all(brk_rx *rx)
{
	for (;;) {
		int fd = accept4(rx->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				log_warn("ACCEPT-PAUSED", "%s: cannot accept: %s; pausing %d ms",
				         rx->p.name, strerror(errno), ACCEPT_PAUSE_MS);
				epoll_ctl(rx->ep, EPOLL_CTL_DEL, rx->lfd, NULL);
				rx->accept_paused_until = rx->now + ACCEPT_PAUSE_MS;
			}
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		brk_rx_conn *c = calloc(1, sizeof(*c));
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		                         .data.ptr = c};
		if (c == NULL || epoll_ctl(rx->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			free(c);
			close(fd);
			continue;
		}
		c->rx = rx;
		c->fd = fd;
		c->last_in = c->last_out = c->last_any = rx->now;
		c->next = rx->conns;
		if (rx->conns != NULL)
			rx->conns->prev = c;
		rx->conns = c;
		if (!rx->p.open(rx->p.arg, c)) {
			c->ended = true; /* never opened: nothing to tell the protocol */
			close(c->fd);
			c->fd = -1;
			unlink_free(c);
		}
	}
}

static void
tick(brk_rx *rx)
{
	if (rx->accept_paused_until != 0 && rx->now >= rx->accept_paused_until && rx->lfd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &rx->lfd};
		rx->accept_paused_until = 0;
		epoll_ctl(rx->ep, EPOLL_CTL_ADD, rx->lfd, &ev);
	}
	for (brk_rx_conn *c = rx->conns, *next; c != NULL; c = next) {
		next = c->next;
		const char *why = stalled(c, &rx->p, rx->now);
		if (why != NULL) {
			if (rx->p.stalled != NULL)
				rx->p.stalled(rx->p.arg, c, why);
			else
				log_debug("CONN-CLOSED", "%s: closing a connection: %s", rx->p.name,
				          why);
			conn_end(c); /* frees c at most: next is still good */
		}
	}
}

/* Answers posted since the last look: queue them. false when stopping. */
static bool
take_answers(brk_rx *rx)
{
	for (;;) {
		pthread_mutex_lock(&rx->mu);
		bool stop = rx->stop;
		bool stop_accepting = rx->stop_accepting;
		brk_rx_out *o = stop ? NULL : rx->done_head;
		if (!stop)
			rx->done_head = rx->done_tail = NULL;
		pthread_mutex_unlock(&rx->mu);
		if (stop)
			return false; /* brk_rx_close takes the list */
		if (stop_accepting && rx->lfd >= 0) {
			close(rx->lfd);
			rx->lfd = -1;
		}
		if (o == NULL)
			return true;
		while (o != NULL) {
			brk_rx_out *next = o->next;
			brk_rx_conn *c = o->conn;
			c->held--;
			if (c->ended) {
				o->release(o);
				reap(c);
			} else {
				queue(c, o);
				c->last_any = rx->now;
				if (rx->p.answered != NULL)
					rx->p.answered(rx->p.arg, c, o);
				brk_rx_kick(c); /* runs it with fresh input */
				reap(c); /* if answered dropped it (and kick did not take it) */
			}
			o = next;
		}
	}
}

static void *
run(void *arg)
{
	brk_rx *rx = arg;
	struct epoll_event ev[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(rx->ep, ev, MAX_EVENTS, TICK_MS);
		rx->now = clk_mono_ms();
		for (int i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;
			if (p == &rx->lfd) {
				accept_all(rx);
			} else if (p == &rx->efd) {
				uint64_t v;
				(void)!read(rx->efd, &v, sizeof(v));
			} else {
				brk_rx_conn *c = p;
				if (c->ended)
					continue;
				if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					c->readable = true;
				if (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					c->rdhup = true;
				if (ev[i].events & (EPOLLHUP | EPOLLERR)) {
					conn_end(c); /* gone for good */
					continue;
				}
				conn_run(c);
			}
		}
		if (!take_answers(rx))
			return NULL;
		while (rx->kicked != NULL) {
			brk_rx_conn *c = rx->kicked;
			rx->kicked = c->next_kick;
			c->kicked = false;
			if (c->ended) {
				reap(c);
				continue;
			}
			c->fresh = true;
			conn_run(c);
		}
		if (rx->now >= rx->next_tick) {
			tick(rx);
			rx->next_tick = rx->now + TICK_MS;
		}
	}
}

/* ---- life cycle ---- */

/* Splits hostport into buf: *host (NULL for any address) and *port. */
static int
split_addr(const char *hostport, char *buf, size_t cap, char **host, char **port)
{
	if (strncmp(hostport, "http://", 7) == 0 || strncmp(hostport, "tcp://", 6) == 0)
		hostport = strstr(hostport, "//") + 2;
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
listen_on(brk_rx *rx, const char *hostport, char *err, size_t errlen)
{
	char buf[300], *host, *port;
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int rv, e = 0;

	if (split_addr(hostport, buf, sizeof(buf), &host, &port) != 0) {
		snprintf(err, errlen, "'%s': use host:port", hostport);
		return -1;
	}
	/* a name (localhost) is taken as IPv4, as clients mostly resolve it */
	if (host != NULL && strchr(host, ':') == NULL)
		hints.ai_family = AF_INET;
	if ((rv = getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "'%s': %s", hostport, gai_strerror(rv));
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
			rx->lfd = fd;
			break;
		}
		e = errno;
		close(fd);
	}
	freeaddrinfo(ai);
	if (rx->lfd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(e));
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char h[64], p[8];
	if (getsockname(rx->lfd, (struct sockaddr *)&ss, &sl) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
	                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(rx->addr, sizeof(rx->addr), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		         h, p);
	else
		snprintf(rx->addr, sizeof(rx->addr), "%s", hostport);
	return 0;
}

int
brk_rx_open(const char *hostport, const brk_rx_proto *p, brk_rx **out, char *err, size_t errlen)
{
	brk_rx *rx = calloc(1, sizeof(*rx));
	*out = NULL;
	if (rx == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rx->p = *p;
	rx->lfd = rx->efd = rx->ep = -1;
	pthread_mutex_init(&rx->mu, NULL);
	if (listen_on(rx, hostport, err, errlen) != 0)
		goto fail;
	struct epoll_event el = {.events = EPOLLIN, .data.ptr = &rx->lfd};
	struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &rx->efd};
	if ((rx->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    (rx->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    epoll_ctl(rx->ep, EPOLL_CTL_ADD, rx->lfd, &el) != 0 ||
	    epoll_ctl(rx->ep, EPOLL_CTL_ADD, rx->efd, &ee) != 0) {
		snprintf(err, errlen, "%s: %s", p->name, strerror(errno));
		goto fail;
	}
	rx->now = clk_mono_ms();
	if ((errno = pthread_create(&rx->thread, NULL, run, rx)) != 0) {
		snprintf(err, errlen, "%s thread: %s", p->name, strerror(errno));
		goto fail;
	}
	pthread_setname_np(rx->thread, p->name);
	rx->started = true;
	*out = rx;
	return 0;
fail:
	brk_rx_close(rx);
	return -1;
}

const char *
brk_rx_addr(const brk_rx *rx)
{
	return rx->addr;
}

void
brk_rx_stop_accepting(brk_rx *rx)
{
	if (rx == NULL)
		return;
	uint64_t one = 1;
	pthread_mutex_lock(&rx->mu);
	rx->stop_accepting = true;
	pthread_mutex_unlock(&rx->mu);
	(void)!write(rx->efd, &one, sizeof(one));
}

void
brk_rx_close(brk_rx *rx)
{
	if (rx == NULL)
		return;
	if (rx->started) {
		uint64_t one = 1;
		pthread_mutex_lock(&rx->mu);
		rx->stop = true;
		pthread_mutex_unlock(&rx->mu);
		(void)!write(rx->efd, &one, sizeof(one));
		pthread_join(rx->thread, NULL);
	}
	/* end every connection (the protocol may post answers as it lets go),
	 * release the answers not taken, then free */
	for (brk_rx_conn *c = rx->conns; c != NULL; c = c->next)
		brk_rx_drop(c);
	for (brk_rx_out *o = rx->done_head, *next; o != NULL; o = next) {
		next = o->next;
		o->conn->held--;
		o->release(o);
	}
	size_t held = 0;
	while (rx->conns != NULL) {
		held += (size_t)rx->conns->held;
		unlink_free(rx->conns);
	}
	if (held > 0)
		log_warn("CONN-LEAK", "%s: %zu requests still held at close", rx->p.name, held);
	if (rx->ep >= 0)
		close(rx->ep);
	if (rx->efd >= 0)
		close(rx->efd);
	if (rx->lfd >= 0)
		close(rx->lfd);
	pthread_mutex_destroy(&rx->mu);
	free(rx);
}
