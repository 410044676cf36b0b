/*
 * qbench: one load generator for Sluice, beanstalkd and Redis, so that the
 * three are measured by the same client. bench/run drives it; each call is
 * one run of one workload against one server and prints one line of
 * key=value results on stdout.
 *
 * Concurrency model, the same for every system: one thread per producer or
 * consumer, each with its own connection and one request outstanding.
 * beanstalkd and Redis are spoken in their text protocols over plain
 * blocking TCP sockets; Sluice over its own NNG REQ socket per thread, with
 * frames built by proto/codec.c. Every Sluice message carries a generated
 * retry key (flag RETRY_KEY, 16 bytes: 6 of wall ms, 6 of a per-connection
 * random nonce, 4 of a counter), exactly as proto/client.c sends them.
 * "sluice-http" is Sluice's HTTP API on a kept-alive connection per thread,
 * over the same blocking sockets as the text protocols: POST .../messages
 * for one message, .../messages:batch (one per line) for more; it only
 * enqueues (the HTTP API has no lease).
 *
 * Workloads (-w):
 *   enqueue  closed loop: each thread sends --batch messages (Sluice: one
 *            ENQUEUE of that many; Redis: that many LPUSH pipelined in one
 *            write; beanstalkd: that many put pipelined in one write),
 *            waits for every reply, and repeats. Latency is per request.
 *   rate     open loop: request k (one message) is due at start + k/rate,
 *            whichever thread is free sends it, and its latency counts from
 *            when it was due, so a stalled server is charged for every
 *            request it delays (no coordinated omission).
 *   drain    prefill the queue, then --consumers threads consume (reserve +
 *            delete; RPOP; LMOVE + LREM; LEASE + ACK) while --producers
 *            threads keep enqueueing one message per request. The rate is
 *            consumed messages/s up to the moment a consumer first finds
 *            the queue empty, or the end of the run.
 * Utilities: port (print two distinct free loopback TCP ports), ping (wait until a
 * server answers), fsync (4 KiB append + fdatasync, 1000 times, in a
 * directory).
 *
 * Server CPU: utime + stime of --pid (every thread of it) from /proc,
 * sampled by the main thread every SLOT_MS of the measured window.
 */
#include "codec.h"
#include "hist.h"
#include "port.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLOT_MS 50
#define MAX_SIZE 60000
#define MAX_BATCH 1000
#define MAX_LEASE 5000
#define RBUF_CAP (256 * 1024)
#define IO_TIMEOUT_S 60
#define KEY_LEN 16
#define VISIBILITY_MS 60000
#define WAIT_MS 100

typedef struct conn conn;

/* One system's protocol. Every call is blocking and returns 0 or -1 with
 * the reason in c->err. */
typedef struct backend {
	const char *name;
	int (*open)(conn *c, bool consumer);
	void (*close)(conn *c);
	/* Stores n messages, made by next_payload, in one round trip. */
	int (*enqueue)(conn *c, int n);
	/* Takes up to max messages and removes them (acknowledges); waits
	 * briefly for one when wait is set. *got: how many were removed. */
	int (*consume)(conn *c, int max, bool wait, int *got);
	/* Answers when the server is up. */
	int (*ping)(conn *c);
	/* Optional: the server's commit and fsync counters (Sluice's STATS). */
	int (*counters)(conn *c, int64_t *commits, int64_t *fsyncs);
} backend;

struct conn {
	const backend *be;
	int fd;               /* text protocols */
	nng_socket sock;      /* Sluice */
	uint32_t rid;         /* Sluice request id, random start */
	uint8_t nonce[6];     /* Sluice retry keys */
	uint32_t keyseq;
	char *rbuf;           /* owned; RBUF_CAP bytes read from fd */
	size_t roff, rlen;
	char *wbuf;           /* owned; requests being built */
	size_t wcap;
	char *item;           /* owned; last popped value (LREM), or one payload */
	size_t item_len;
	uint64_t *ids;        /* owned; Sluice lease ids to ack */
	uint32_t tid;         /* unique per connection: makes payloads unique */
	uint64_t seq;
	char err[256];
};

/* What a run was asked to do. */
static struct {
	const backend *be;
	const char *addr;   /* host:port, or an NNG URL for Sluice */
	const char *host;
	int port;
	const char *queue;
	size_t qlen;
	const char *workload;
	int conns;          /* enqueue, rate: threads */
	int producers;      /* drain */
	int consumers;      /* drain */
	int batch;          /* enqueue, drain producers: messages per request */
	int lease;          /* drain: most messages a consumer takes at once */
	int size;           /* payload bytes */
	double duration_s;
	double warmup_s;
	double rate;        /* rate: requests/s */
	long prefill;       /* drain: messages to prefill */
	double prefill_s;   /* drain: at most this long */
	int pid;            /* server, for CPU; 0 = none */
} opt = {
	.queue = "bench",
	.workload = "enqueue",
	.conns = 1,
	.producers = 4,
	.consumers = 4,
	.batch = 1,
	.lease = 500,
	.size = 200,
	.duration_s = 5,
	.warmup_s = 1,
	.rate = 1000,
	.prefill = 200000,
	.prefill_s = 10,
};

static atomic_uint next_tid;
static int64_t t0_ns, t_start_ns, t_end_ns; /* set before any thread starts */
static atomic_bool stop;

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
sleep_until(int64_t t_ns)
{
	struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int
fail(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return -1;
}

/* Writes the next unique payload of this connection into dst (opt.size
 * bytes): "tid:seq:" then filler, so Redis's LREM removes exactly it. */
static void
next_payload(conn *c, char *dst)
{
	char head[32];
	int n = snprintf(head, sizeof(head), "%08x:%012" PRIu64 ":", c->tid, c->seq++);
	memset(dst, 'x', (size_t)opt.size);
	memcpy(dst, head, (size_t)n < (size_t)opt.size ? (size_t)n : (size_t)opt.size);
}

static int
wbuf_reserve(conn *c, size_t need)
{
	if (need <= c->wcap)
		return 0;
	char *p = realloc(c->wbuf, need);
	if (p == NULL)
		return fail(c, "out of memory");
	c->wbuf = p;
	c->wcap = need;
	return 0;
}

/* ---- plain TCP with a read buffer, for the text protocols ---- */

static int
tcp_open(conn *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
	if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1)
		return fail(c, "bad address %s", opt.host);
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return fail(c, "socket: %s", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		return fail(c, "connect %s:%d: %s", opt.host, opt.port, strerror(e));
	}
	if ((c->rbuf = malloc(RBUF_CAP)) == NULL)
		return fail(c, "out of memory");
	c->roff = c->rlen = 0;
	return 0;
}

static void
tcp_close(conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int
wr_all(conn *c, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(c->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(c, "write: %s", n < 0 ? strerror(errno) : "closed");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads more bytes, keeping the unread ones. */
static int
rd_fill(conn *c)
{
	if (c->roff > 0) {
		memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
		c->rlen -= c->roff;
		c->roff = 0;
	}
	if (c->rlen == RBUF_CAP)
		return fail(c, "reply too long");
	for (;;) {
		ssize_t n = read(c->fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(c, "read: %s", n < 0 ? strerror(errno) : "connection closed");
		c->rlen += (size_t)n;
		return 0;
	}
}

/* The next line without its CRLF, NUL-terminated in place. */
static int
rd_line(conn *c, char **line)
{
	for (;;) {
		char *s = c->rbuf + c->roff, *end = c->rbuf + c->rlen, *e = s;
		while ((e = memchr(e, '\r', (size_t)(end - e))) != NULL && e + 1 < end && e[1] != '\n')
			e++;
		if (e != NULL && e + 1 < end) {
			*e = '\0';
			*line = s;
			c->roff = (size_t)(e + 2 - c->rbuf);
			return 0;
		}
		if (rd_fill(c) != 0)
			return -1;
	}
}

/* The next n bytes and their CRLF; *data points at them until the next read. */
static int
rd_block(conn *c, size_t n, const char **data)
{
	while (c->rlen - c->roff < n + 2)
		if (rd_fill(c) != 0)
			return -1;
	*data = c->rbuf + c->roff;
	c->roff += n + 2;
	return 0;
}

/* ---- beanstalkd: put / reserve-with-timeout / delete ---- */

static int
bs_cmd(conn *c, const char *cmd, const char *want)
{
	char *line;
	if (wr_all(c, cmd, strlen(cmd)) != 0 || rd_line(c, &line) != 0)
		return -1;
	if (strncmp(line, want, strlen(want)) != 0)
		return fail(c, "beanstalkd: %s -> %s", want, line);
	return 0;
}

static int
bs_open(conn *c, bool consumer)
{
	char cmd[300];
	if (tcp_open(c) != 0)
		return -1;
	if (consumer) {
		snprintf(cmd, sizeof(cmd), "watch %s\r\n", opt.queue);
		if (bs_cmd(c, cmd, "WATCHING") != 0 || bs_cmd(c, "ignore default\r\n", "WATCHING") != 0)
			return -1;
	} else {
		snprintf(cmd, sizeof(cmd), "use %s\r\n", opt.queue);
		if (bs_cmd(c, cmd, "USING") != 0)
			return -1;
	}
	return 0;
}

static int
bs_enqueue(conn *c, int n)
{
	size_t per = 48 + (size_t)opt.size;
	if (wbuf_reserve(c, per * (size_t)n) != 0)
		return -1;
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		len += (size_t)sprintf(c->wbuf + len, "put 0 0 120 %d\r\n", opt.size);
		next_payload(c, c->wbuf + len);
		len += (size_t)opt.size;
		memcpy(c->wbuf + len, "\r\n", 2);
		len += 2;
	}
	if (wr_all(c, c->wbuf, len) != 0)
		return -1;
	for (int i = 0; i < n; i++) {
		char *line;
		if (rd_line(c, &line) != 0)
			return -1;
		if (strncmp(line, "INSERTED ", 9) != 0)
			return fail(c, "beanstalkd put -> %s", line);
	}
	return 0;
}

static int
bs_consume(conn *c, int max, bool wait, int *got)
{
	char cmd[64], *line;
	unsigned long long id;
	size_t bytes;
	const char *data;
	(void)max; /* beanstalkd reserves one job at a time */
	*got = 0;
	snprintf(cmd, sizeof(cmd), "reserve-with-timeout %d\r\n", wait ? 1 : 0);
	if (wr_all(c, cmd, strlen(cmd)) != 0 || rd_line(c, &line) != 0)
		return -1;
	if (strcmp(line, "TIMED_OUT") == 0 || strcmp(line, "DEADLINE_SOON") == 0)
		return 0;
	if (sscanf(line, "RESERVED %llu %zu", &id, &bytes) != 2)
		return fail(c, "beanstalkd reserve -> %s", line);
	if (rd_block(c, bytes, &data) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "delete %llu\r\n", id);
	if (bs_cmd(c, cmd, "DELETED") != 0)
		return -1;
	*got = 1;
	return 0;
}

static int
bs_ping(conn *c)
{
	return bs_cmd(c, "list-tubes\r\n", "OK");
}

/* ---- Redis: RESP over TCP ---- */

enum { R_NIL, R_INT, R_BULK, R_ARRAY, R_STATUS };

/* Reads one reply. The last bulk string met (also inside an array) is
 * copied to c->item when keep is set. An error reply is a failure. */
static int
rs_reply(conn *c, int *kind, long long *ival, bool keep)
{
	char *line;
	const char *data;
	if (rd_line(c, &line) != 0)
		return -1;
	switch (line[0]) {
	case ':':
		*kind = R_INT;
		*ival = atoll(line + 1);
		return 0;
	case '+':
		*kind = R_STATUS;
		return 0;
	case '-':
		return fail(c, "redis: %s", line + 1);
	case '$': {
		long long n = atoll(line + 1);
		if (n < 0) {
			*kind = R_NIL;
			return 0;
		}
		if (rd_block(c, (size_t)n, &data) != 0)
			return -1;
		if (keep) {
			if ((size_t)n > MAX_SIZE)
				return fail(c, "redis: value of %lld bytes", n);
			memcpy(c->item, data, (size_t)n);
			c->item_len = (size_t)n;
		}
		*kind = R_BULK;
		return 0;
	}
	case '*': {
		long long n = atoll(line + 1);
		if (n < 0) {
			*kind = R_NIL;
			return 0;
		}
		for (long long i = 0; i < n; i++) {
			int k;
			long long v;
			if (rs_reply(c, &k, &v, keep) != 0)
				return -1;
		}
		*kind = R_ARRAY;
		*ival = n;
		return 0;
	}
	default:
		return fail(c, "redis: unexpected reply '%.40s'", line);
	}
}

/* Appends one command as a RESP array of bulk strings; NULL-terminated
 * (pointer, length) pairs. */
static size_t
rs_append(char *dst, int argc, const char *const *argv, const size_t *lens)
{
	size_t len = (size_t)sprintf(dst, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		len += (size_t)sprintf(dst + len, "$%zu\r\n", lens[i]);
		memcpy(dst + len, argv[i], lens[i]);
		len += lens[i];
		memcpy(dst + len, "\r\n", 2);
		len += 2;
	}
	return len;
}

static int
rs_call(conn *c, int argc, const char *const *argv, const size_t *lens, int *kind,
        long long *ival, bool keep)
{
	size_t need = 64;
	for (int i = 0; i < argc; i++)
		need += 24 + lens[i];
	if (wbuf_reserve(c, need) != 0)
		return -1;
	size_t len = rs_append(c->wbuf, argc, argv, lens);
	if (wr_all(c, c->wbuf, len) != 0)
		return -1;
	return rs_reply(c, kind, ival, keep);
}

static int
rs_open(conn *c, bool consumer)
{
	(void)consumer;
	return tcp_open(c);
}

static int
rs_enqueue(conn *c, int n)
{
	size_t per = 64 + opt.qlen + (size_t)opt.size;
	if (wbuf_reserve(c, per * (size_t)n) != 0)
		return -1;
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		next_payload(c, c->item);
		const char *argv[3] = {"LPUSH", opt.queue, c->item};
		size_t lens[3] = {5, opt.qlen, (size_t)opt.size};
		len += rs_append(c->wbuf + len, 3, argv, lens);
	}
	if (wr_all(c, c->wbuf, len) != 0)
		return -1;
	for (int i = 0; i < n; i++) {
		int kind;
		long long v;
		if (rs_reply(c, &kind, &v, false) != 0)
			return -1;
		if (kind != R_INT)
			return fail(c, "redis LPUSH: not an integer reply");
	}
	return 0;
}

/* RPOP: no lease; a message is gone once popped. */
static int
rs_consume_pop(conn *c, int max, bool wait, int *got)
{
	int kind;
	long long v;
	(void)max;
	*got = 0;
	if (wait) {
		const char *argv[3] = {"BRPOP", opt.queue, "0.1"};
		size_t lens[3] = {5, opt.qlen, 3};
		if (rs_call(c, 3, argv, lens, &kind, &v, false) != 0)
			return -1;
	} else {
		const char *argv[2] = {"RPOP", opt.queue};
		size_t lens[2] = {4, opt.qlen};
		if (rs_call(c, 2, argv, lens, &kind, &v, false) != 0)
			return -1;
	}
	*got = kind == R_NIL ? 0 : 1;
	return 0;
}

/* The reliable-queue pattern: LMOVE to a processing list, then LREM. */
static int
rs_consume_move(conn *c, int max, bool wait, int *got)
{
	int kind;
	long long v;
	char wip[160];
	snprintf(wip, sizeof(wip), "%s:wip", opt.queue);
	size_t wlen = strlen(wip);
	(void)max;
	*got = 0;
	if (wait) {
		const char *argv[6] = {"BLMOVE", opt.queue, wip, "RIGHT", "LEFT", "0.1"};
		size_t lens[6] = {6, opt.qlen, wlen, 5, 4, 3};
		if (rs_call(c, 6, argv, lens, &kind, &v, true) != 0)
			return -1;
	} else {
		const char *argv[5] = {"LMOVE", opt.queue, wip, "RIGHT", "LEFT"};
		size_t lens[5] = {5, opt.qlen, wlen, 5, 4};
		if (rs_call(c, 5, argv, lens, &kind, &v, true) != 0)
			return -1;
	}
	if (kind == R_NIL)
		return 0;
	const char *argv[4] = {"LREM", wip, "1", c->item};
	size_t lens[4] = {4, wlen, 1, c->item_len};
	if (rs_call(c, 4, argv, lens, &kind, &v, false) != 0)
		return -1;
	if (kind != R_INT || v != 1)
		return fail(c, "redis LREM removed %lld", v);
	*got = 1;
	return 0;
}

static int
rs_ping(conn *c)
{
	int kind;
	long long v;
	const char *argv[1] = {"PING"};
	size_t lens[1] = {4};
	return rs_call(c, 1, argv, lens, &kind, &v, false);
}

/* ---- Sluice: NNG REQ, one socket per thread ---- */

/* sluice-sp: the same frames over SP's TCP mapping on a blocking socket,
 * the way the Redis and beanstalkd clients talk: 8 bytes of handshake
 * each way, then each message is a 64-bit big-endian length, the 32-bit
 * request id (top bit set) and the frame. */
static bool sp_raw;

static int
sp_open(conn *c)
{
	static const uint8_t hello[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0}; /* REQ */
	uint8_t peer[8];
	if (tcp_open(c) != 0 || wr_all(c, (const char *)hello, sizeof(hello)) != 0)
		return -1;
	for (size_t got = 0; got < sizeof(peer);) {
		ssize_t n = read(c->fd, peer + got, sizeof(peer) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(c, "SP handshake: %s", n < 0 ? strerror(errno) : "closed");
		got += (size_t)n;
	}
	if (peer[1] != 'S' || peer[2] != 'P' || peer[5] != 0x31)
		return fail(c, "SP handshake: not a REP peer");
	return 0;
}

/* Reads exactly n bytes into dst, through the read buffer. */
static int
rd_exact(conn *c, uint8_t *dst, size_t n)
{
	while (c->rlen - c->roff < n && c->rlen - c->roff < RBUF_CAP / 2)
		if (rd_fill(c) != 0)
			return -1;
	size_t have = c->rlen - c->roff < n ? c->rlen - c->roff : n;
	memcpy(dst, c->rbuf + c->roff, have);
	c->roff += have;
	for (size_t got = have; got < n;) { /* a big reply: straight from the socket */
		ssize_t k = read(c->fd, dst + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return fail(c, "read: %s", k < 0 ? strerror(errno) : "connection closed");
		got += (size_t)k;
	}
	return 0;
}

static int
sp_roundtrip(conn *c, nng_msg *m, nng_msg **rep)
{
	uint8_t head[12];
	uint64_t len = nng_msg_len(m) + 4;
	uint32_t id = c->rid++ | 0x80000000u;
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)(len >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		head[8 + i] = (uint8_t)(id >> (24 - 8 * i));
	if (wbuf_reserve(c, sizeof(head) + nng_msg_len(m)) != 0) {
		nng_msg_free(m);
		return -1;
	}
	memcpy(c->wbuf, head, sizeof(head));
	memcpy(c->wbuf + sizeof(head), nng_msg_body(m), nng_msg_len(m));
	size_t total = sizeof(head) + nng_msg_len(m);
	nng_msg_free(m);
	if (wr_all(c, c->wbuf, total) != 0 || rd_exact(c, head, sizeof(head)) != 0)
		return -1;
	len = 0;
	for (int i = 0; i < 8; i++)
		len = len << 8 | head[i];
	uint32_t back = (uint32_t)head[8] << 24 | (uint32_t)head[9] << 16 | (uint32_t)head[10] << 8 |
	                head[11];
	if (len < 4 || len > (64u << 20) || back != id)
		return fail(c, "SP reply: length %" PRIu64 ", id %08x for %08x", len, back, id);
	if (nng_msg_alloc(rep, (size_t)len - 4) != 0)
		return fail(c, "out of memory");
	if (rd_exact(c, nng_msg_body(*rep), (size_t)len - 4) != 0) {
		nng_msg_free(*rep);
		return -1;
	}
	return 0;
}

static int
nng_open(conn *c)
{
	int rv;
	if ((rv = nng_req0_open(&c->sock)) != 0)
		return fail(c, "nng_req0_open: %s", nng_strerror(rv));
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, 3600 * 1000);
	nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, IO_TIMEOUT_S * 1000);
	nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, IO_TIMEOUT_S * 1000);
	if ((rv = nng_dial(c->sock, opt.addr, NULL, 0)) != 0) {
		nng_close(c->sock);
		c->sock = (nng_socket)NNG_SOCKET_INITIALIZER;
		return fail(c, "dial %s: %s", opt.addr, nng_strerror(rv));
	}
	return 0;
}

static int
sl_open(conn *c, bool consumer)
{
	(void)consumer;
	if ((sp_raw ? sp_open(c) : nng_open(c)) != 0)
		return -1;
	if (getrandom(c->nonce, sizeof(c->nonce), 0) != sizeof(c->nonce) ||
	    getrandom(&c->rid, sizeof(c->rid), 0) != sizeof(c->rid))
		return fail(c, "getrandom failed");
	return 0;
}

static void
sl_close(conn *c)
{
	tcp_close(c);
	if (nng_socket_id(c->sock) > 0)
		nng_close(c->sock);
	c->sock = (nng_socket)NNG_SOCKET_INITIALIZER;
}

/* Sends the request in b (built in m's body) and decodes the reply into f;
 * *rep owns the reply's bytes, which f borrows. */
static int
sl_roundtrip(conn *c, nng_msg *m, const proto_buf *b, nng_msg **rep, proto_frame *f)
{
	int rv;
	if (proto_end((proto_buf *)b) != PROTO_OK) {
		nng_msg_free(m);
		return fail(c, "encode: %s", proto_strerror(b->err));
	}
	if (b->len < nng_msg_len(m))
		nng_msg_chop(m, nng_msg_len(m) - b->len);
	if (sp_raw) {
		if (sp_roundtrip(c, m, rep) != 0)
			return -1;
	} else if ((rv = nng_sendmsg(c->sock, m, 0)) != 0) {
		nng_msg_free(m);
		return fail(c, "send: %s", nng_strerror(rv));
	} else if ((rv = nng_recvmsg(c->sock, rep, 0)) != 0) {
		return fail(c, "recv: %s", nng_strerror(rv));
	}
	if ((rv = proto_frame_decode(nng_msg_body(*rep), nng_msg_len(*rep), f)) != PROTO_OK) {
		nng_msg_free(*rep);
		return fail(c, "reply: %s", proto_strerror(rv));
	}
	if (f->h.type == PROTO_T_ERROR) {
		fail(c, "sluice: %s: %.*s", proto_err_name(f->u.error.code),
		     (int)f->u.error.message.len, (const char *)f->u.error.message.ptr);
		nng_msg_free(*rep);
		return -1;
	}
	return 0;
}

static int
sl_enqueue(conn *c, int n)
{
	nng_msg *m, *rep;
	proto_buf b;
	proto_frame f;
	size_t size = PROTO_ENQUEUE_BASE(opt.qlen) +
	              (size_t)n * proto_enq_item_size(KEY_LEN, (size_t)opt.size);
	if (nng_msg_alloc(&m, size) != 0)
		return fail(c, "out of memory");
	proto_buf_init(&b, nng_msg_body(m), size);
	proto_enc_enqueue(&b, c->rid++, opt.queue, opt.qlen);
	/* as the client library does: a batch carries one key for the whole
	 * request (REQUEST_KEY), a single message its own */
	if (n > 1)
		proto_set_flags(&b, PROTO_F_REQUEST_KEY);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t wall_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < n; i++) {
		if (i > 0) {
			next_payload(c, c->item);
			proto_enq_item plain = {.payload = {(const uint8_t *)c->item, (size_t)opt.size}};
			proto_enc_enq_item(&b, &plain);
			continue;
		}
		uint8_t key[KEY_LEN];
		for (int j = 0; j < 6; j++)
			key[j] = (uint8_t)(wall_ms >> (40 - 8 * j));
		memcpy(key + 6, c->nonce, 6);
		uint32_t seq = c->keyseq++;
		for (int j = 0; j < 4; j++)
			key[12 + j] = (uint8_t)(seq >> (24 - 8 * j));
		next_payload(c, c->item);
		proto_enq_item it = {
			.flags = PROTO_ITEM_RETRY_KEY,
			.key = {key, KEY_LEN},
			.payload = {(const uint8_t *)c->item, (size_t)opt.size},
		};
		proto_enc_enq_item(&b, &it);
	}
	if (sl_roundtrip(c, m, &b, &rep, &f) != 0)
		return -1;
	int rc = 0;
	if (f.h.type != PROTO_T_IDS || proto_iter_left(&f.u.id_list.ids) != (uint32_t)n)
		rc = fail(c, "sluice ENQUEUE: reply %s with %u ids for %d", proto_type_name(f.h.type),
		          proto_iter_left(&f.u.id_list.ids), n);
	nng_msg_free(rep);
	return rc;
}

static int
sl_consume(conn *c, int max, bool wait, int *got)
{
	nng_msg *m, *rep;
	proto_buf b;
	proto_frame f;
	*got = 0;
	size_t size = PROTO_HEADER_SIZE + 1 + opt.qlen + 12;
	if (nng_msg_alloc(&m, size) != 0)
		return fail(c, "out of memory");
	proto_buf_init(&b, nng_msg_body(m), size);
	proto_enc_lease(&b, c->rid++, opt.queue, opt.qlen, (uint32_t)max, VISIBILITY_MS,
	                wait ? WAIT_MS : 0);
	if (sl_roundtrip(c, m, &b, &rep, &f) != 0)
		return -1;
	if (f.h.type != PROTO_T_MESSAGES) {
		nng_msg_free(rep);
		return fail(c, "sluice LEASE: reply %s", proto_type_name(f.h.type));
	}
	uint64_t token = f.u.messages.token;
	uint32_t n = 0;
	proto_msg pm;
	while (proto_msg_next(&f.u.messages.msgs, &pm) && n < MAX_LEASE)
		c->ids[n++] = pm.id;
	nng_msg_free(rep);
	if (n == 0)
		return 0;

	size = PROTO_HEADER_SIZE + 1 + opt.qlen + 8 + 4 + 4 + 8 * (size_t)n;
	if (nng_msg_alloc(&m, size) != 0)
		return fail(c, "out of memory");
	proto_buf_init(&b, nng_msg_body(m), size);
	proto_enc_ids(&b, PROTO_T_ACK, 0, c->rid++, opt.queue, opt.qlen, token, 0);
	for (uint32_t i = 0; i < n; i++)
		proto_enc_id(&b, c->ids[i]);
	if (sl_roundtrip(c, m, &b, &rep, &f) != 0)
		return -1;
	int rc = 0;
	if (f.h.type != PROTO_T_RESULTS || proto_iter_left(&f.u.results.codes) != n) {
		rc = fail(c, "sluice ACK: reply %s", proto_type_name(f.h.type));
	} else {
		uint16_t code;
		while (proto_code_next(&f.u.results.codes, &code))
			if (code == 0)
				(*got)++;
	}
	nng_msg_free(rep);
	return rc;
}

static int
sl_ping(conn *c)
{
	nng_msg *m, *rep;
	proto_buf b;
	proto_frame f;
	if (nng_msg_alloc(&m, PROTO_HEADER_SIZE) != 0)
		return fail(c, "out of memory");
	proto_buf_init(&b, nng_msg_body(m), PROTO_HEADER_SIZE);
	proto_enc_ping(&b, c->rid++);
	if (sl_roundtrip(c, m, &b, &rep, &f) != 0)
		return -1;
	nng_msg_free(rep);
	return 0;
}

static int
sl_counters(conn *c, int64_t *commits, int64_t *fsyncs)
{
	nng_msg *m, *rep;
	proto_buf b;
	proto_frame f;
	proto_field fld;
	size_t size = PROTO_HEADER_SIZE + 1 + 4;
	if (nng_msg_alloc(&m, size) != 0)
		return fail(c, "out of memory");
	proto_buf_init(&b, nng_msg_body(m), size);
	proto_enc_queue_op(&b, PROTO_T_STATS, c->rid++, "", 0, 0);
	if (sl_roundtrip(c, m, &b, &rep, &f) != 0)
		return -1;
	*commits = *fsyncs = -1;
	if (f.h.type == PROTO_T_STATS_REPLY) {
		while (proto_field_next(&f.u.stats.broker, &fld)) {
			if (fld.key.len == 13 && memcmp(fld.key.ptr, "commits_total", 13) == 0)
				*commits = fld.value;
			else if (fld.key.len == 12 && memcmp(fld.key.ptr, "fsyncs_total", 12) == 0)
				*fsyncs = fld.value;
		}
	}
	nng_msg_free(rep);
	return 0;
}

/* ---- Sluice over HTTP: POST on a kept-alive connection ---- */

static int
sh_open(conn *c, bool consumer)
{
	(void)consumer;
	return tcp_open(c);
}

/* Sends the request in wbuf[0..len) and reads the answer: its status in
 * *status, the body skipped. */
static int
sh_call(conn *c, size_t len, int *status)
{
	char *line;
	long clen = -1;
	const char *body;
	if (wr_all(c, c->wbuf, len) != 0 || rd_line(c, &line) != 0)
		return -1;
	if (sscanf(line, "HTTP/1.%*d %d", status) != 1)
		return fail(c, "sluice http: bad status line '%.60s'", line);
	for (;;) {
		if (rd_line(c, &line) != 0)
			return -1;
		if (line[0] == '\0')
			break;
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = atol(line + 15);
	}
	if (clen < 0)
		return fail(c, "sluice http: no Content-Length");
	/* rd_block wants a CRLF after the block: read the body plus none */
	while (c->rlen - c->roff < (size_t)clen)
		if (rd_fill(c) != 0)
			return -1;
	body = c->rbuf + c->roff;
	c->roff += (size_t)clen;
	if (*status >= 300)
		return fail(c, "sluice http: %d %.*s", *status, (int)(clen > 200 ? 200 : clen), body);
	return 0;
}

static int
sh_enqueue(conn *c, int n)
{
	size_t body = (size_t)n * (size_t)opt.size + (size_t)(n - 1);
	if (wbuf_reserve(c, 256 + opt.qlen + body) != 0)
		return -1;
	int h = snprintf(c->wbuf, 256 + opt.qlen,
	                 "POST /v1/queues/%s/messages%s HTTP/1.1\r\nHost: b\r\n"
	                 "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
	                 opt.queue, n > 1 ? ":batch" : "", body);
	size_t len = (size_t)h;
	for (int i = 0; i < n; i++) {
		if (i > 0)
			c->wbuf[len++] = '\n';
		next_payload(c, c->wbuf + len);
		len += (size_t)opt.size;
	}
	int status;
	if (sh_call(c, len, &status) != 0)
		return -1;
	if (status != 201)
		return fail(c, "sluice http: answered %d", status);
	return 0;
}

static int
sh_ping(conn *c)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n";
	int status;
	if (wbuf_reserve(c, sizeof(req)) != 0)
		return -1;
	memcpy(c->wbuf, req, sizeof(req) - 1);
	return sh_call(c, sizeof(req) - 1, &status);
}

static int
sh_consume(conn *c, int max, bool wait, int *got)
{
	(void)max;
	(void)wait;
	*got = 0;
	return fail(c, "sluice-http only enqueues: the HTTP API has no lease");
}

static const backend backends[] = {
	{
		.name = "sluice",
		.open = sl_open,
		.close = sl_close,
		.enqueue = sl_enqueue,
		.consume = sl_consume,
		.ping = sl_ping,
		.counters = sl_counters,
	},
	{
		.name = "sluice-http",
		.open = sh_open,
		.close = tcp_close,
		.enqueue = sh_enqueue,
		.consume = sh_consume,
		.ping = sh_ping,
	},
	{
		.name = "beanstalkd",
		.open = bs_open,
		.close = tcp_close,
		.enqueue = bs_enqueue,
		.consume = bs_consume,
		.ping = bs_ping,
	},
	{
		.name = "redis",
		.open = rs_open,
		.close = tcp_close,
		.enqueue = rs_enqueue,
		.consume = rs_consume_pop,
		.ping = rs_ping,
	},
	{
		.name = "redis-reliable",
		.open = rs_open,
		.close = tcp_close,
		.enqueue = rs_enqueue,
		.consume = rs_consume_move,
		.ping = rs_ping,
	},
};

static int
conn_open(conn *c, bool consumer)
{
	memset(c, 0, sizeof(*c));
	c->be = opt.be;
	c->fd = -1;
	c->sock = (nng_socket)NNG_SOCKET_INITIALIZER;
	c->tid = atomic_fetch_add(&next_tid, 1);
	c->item = malloc(MAX_SIZE);
	c->ids = malloc(MAX_LEASE * sizeof(*c->ids));
	if (c->item == NULL || c->ids == NULL)
		return fail(c, "out of memory");
	return c->be->open(c, consumer);
}

static void
conn_close(conn *c)
{
	if (c->be != NULL)
		c->be->close(c);
	free(c->rbuf);
	free(c->wbuf);
	free(c->item);
	free(c->ids);
	c->rbuf = c->wbuf = c->item = NULL;
	c->ids = NULL;
}

/* ---- threads ---- */

enum role { PRODUCER, CONSUMER, SCHEDULED, FILLER };

typedef struct worker {
	pthread_t th;
	enum role role;
	conn c;
	hist *h;          /* latency of requests in the window, us */
	uint64_t msgs;    /* messages in the window */
	uint64_t reqs;
	uint32_t *slots;  /* drain: messages per SLOT_MS of the window */
	int nslots;
	int64_t dry_ns;   /* drain: first empty consume in the window; 0 = never */
	int failed;
	bool started;
} worker;

static atomic_long fill_left;
static atomic_ullong sched_next;
static double sched_interval_ns;

static void
count(worker *w, int64_t done_ns, int64_t lat_from_ns, int n)
{
	if (done_ns < t_start_ns || done_ns >= t_end_ns)
		return;
	w->msgs += (uint64_t)n;
	w->reqs++;
	hist_record(w->h, (uint64_t)(done_ns - lat_from_ns) / 1000);
	if (w->slots != NULL) {
		int64_t i = (done_ns - t_start_ns) / (SLOT_MS * 1000000LL);
		if (i < w->nslots)
			w->slots[i] += (uint32_t)n;
	}
}

static void *
run_worker(void *arg)
{
	worker *w = arg;
	conn *c = &w->c;
	int got;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int64_t t = now_ns(), due, done;
		switch (w->role) {
		case PRODUCER:
			if (t >= t_end_ns)
				return NULL;
			if (c->be->enqueue(c, opt.batch) != 0)
				goto failed;
			count(w, now_ns(), t, opt.batch);
			break;
		case FILLER: {
			long n = atomic_fetch_sub(&fill_left, 100);
			if (n <= 0 || t >= t_end_ns)
				return NULL;
			if (c->be->enqueue(c, n < 100 ? (int)n : 100) != 0)
				goto failed;
			w->msgs += (uint64_t)(n < 100 ? n : 100);
			break;
		}
		case SCHEDULED: {
			uint64_t k = atomic_fetch_add(&sched_next, 1);
			due = t0_ns + (int64_t)((double)k * sched_interval_ns);
			if (due >= t_end_ns)
				return NULL;
			sleep_until(due);
			if (c->be->enqueue(c, 1) != 0)
				goto failed;
			done = now_ns();
			/* counted by when it was due, latency from when it was due */
			if (due >= t_start_ns) {
				w->msgs++;
				w->reqs++;
				hist_record(w->h, (uint64_t)(done - due) / 1000);
			}
			break;
		}
		case CONSUMER:
			if (t >= t_end_ns)
				return NULL;
			if (c->be->consume(c, opt.lease, false, &got) != 0)
				goto failed;
			done = now_ns();
			if (got == 0) {
				if (w->dry_ns == 0 && done >= t_start_ns)
					w->dry_ns = done;
				if (c->be->consume(c, opt.lease, true, &got) != 0)
					goto failed;
				done = now_ns();
			}
			if (got > 0)
				count(w, done, t, got);
			break;
		}
	}
	return NULL;
failed:
	w->failed = 1;
	fprintf(stderr, "qbench: %s: %s\n", c->be->name, c->err);
	return NULL;
}

/* Connects n workers; they start running in launch_workers. */
static int
open_workers(worker *ws, int n, enum role role, int nslots)
{
	for (int i = 0; i < n; i++) {
		worker *w = &ws[i];
		w->role = role;
		if ((w->h = hist_alloc()) == NULL)
			return -1;
		if (nslots > 0) {
			w->nslots = nslots;
			if ((w->slots = calloc((size_t)nslots, sizeof(*w->slots))) == NULL)
				return -1;
		}
		if (conn_open(&w->c, role == CONSUMER) != 0) {
			fprintf(stderr, "qbench: %s: %s\n", opt.be->name, w->c.err);
			return -1;
		}
	}
	return 0;
}

/* Starts every opened worker; the run's times must be set before. */
static int
launch_workers(worker *ws, int n)
{
	for (int i = 0; i < n; i++) {
		if (pthread_create(&ws[i].th, NULL, run_worker, &ws[i]) != 0)
			return -1;
		ws[i].started = true;
	}
	return 0;
}

static int
join_workers(worker *ws, int n)
{
	int failed = 0;
	for (int i = 0; i < n; i++) {
		if (ws[i].started)
			pthread_join(ws[i].th, NULL);
		failed |= ws[i].failed;
		conn_close(&ws[i].c);
	}
	return failed;
}

/* utime + stime of pid, in seconds; -1 if unknown. */
static double
proc_cpu_s(int pid)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	/* after "pid (comm)": state, then fields 4..13, then utime (14), stime (15) */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	                        &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static void
print_hist(const hist *h)
{
	printf(" p50_us=%" PRIu64 " p99_us=%" PRIu64 " p999_us=%" PRIu64 " max_us=%" PRIu64,
	       hist_quantile(h, 0.50), hist_quantile(h, 0.99), hist_quantile(h, 0.999), hist_max(h));
}

/* Fills the queue for the drain: 64 threads, 100 messages per request, until
 * opt.prefill messages or opt.prefill_s. */
static int
prefill(double *rate)
{
	int n = 64;
	worker *ws = calloc((size_t)n, sizeof(*ws));
	if (ws == NULL)
		return -1;
	atomic_store(&fill_left, opt.prefill);
	int rc = open_workers(ws, n, FILLER, 0);
	int64_t t = now_ns();
	t_start_ns = t;
	t_end_ns = t + (int64_t)(opt.prefill_s * 1e9);
	if (rc == 0)
		rc = launch_workers(ws, n);
	if (rc != 0)
		atomic_store(&stop, true);
	rc |= join_workers(ws, n);
	atomic_store(&stop, false);
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		total += ws[i].msgs;
		hist_free(ws[i].h);
	}
	free(ws);
	*rate = (double)total / ((double)(now_ns() - t) / 1e9);
	return rc == 0 ? (int)(total > INT32_MAX ? INT32_MAX : total) : -1;
}

static int
run(void)
{
	bool drain = strcmp(opt.workload, "drain") == 0;
	bool rate = strcmp(opt.workload, "rate") == 0;
	int nprod = drain ? opt.producers : opt.conns;
	int ncons = drain ? opt.consumers : 0;
	int nslots = (int)(opt.duration_s * 1000 / SLOT_MS);
	double fill_rate = 0;
	int filled = 0;

	if (!drain && !rate && strcmp(opt.workload, "enqueue") != 0) {
		fprintf(stderr, "qbench: unknown workload %s\n", opt.workload);
		return 2;
	}
	if (drain && (filled = prefill(&fill_rate)) < 0)
		return 1;

	worker *ws = calloc((size_t)(nprod + ncons), sizeof(*ws));
	double *srv = calloc((size_t)nslots + 1, sizeof(*srv));
	double *cli = calloc((size_t)nslots + 1, sizeof(*cli));
	if (ws == NULL || srv == NULL || cli == NULL)
		return 1;
	/* Connect everyone first; the clock starts once all are connected. */
	conn sc;
	int64_t commits[4] = {-1, -1, -1, -1}; /* commits, fsyncs at start; at end */
	bool have_stats = opt.be->counters != NULL && conn_open(&sc, false) == 0;
	int rc = open_workers(ws, nprod, rate ? SCHEDULED : PRODUCER, drain ? nslots : 0);
	if (rc == 0 && ncons > 0)
		rc = open_workers(ws + nprod, ncons, CONSUMER, nslots);
	sched_interval_ns = 1e9 / opt.rate;
	atomic_store(&sched_next, 0);
	t0_ns = now_ns() + 20000000LL;
	t_start_ns = t0_ns + (int64_t)(opt.warmup_s * 1e9);
	t_end_ns = t_start_ns + (int64_t)nslots * SLOT_MS * 1000000LL;
	if (rc == 0)
		rc = launch_workers(ws, nprod + ncons);
	if (rc != 0) {
		atomic_store(&stop, true);
		join_workers(ws, nprod + ncons);
		if (have_stats)
			conn_close(&sc);
		return 1;
	}
	sleep_until(t_start_ns);
	for (int i = 0; i <= nslots; i++) {
		sleep_until(t_start_ns + (int64_t)i * SLOT_MS * 1000000LL);
		srv[i] = proc_cpu_s(opt.pid);
		cli[i] = self_cpu_s();
		/* the server's own counters, at the start and the end only */
		if (have_stats && (i == 0 || i == nslots)) {
			int64_t *dst = i == 0 ? commits : commits + 2;
			if (opt.be->counters(&sc, &dst[0], &dst[1]) != 0) {
				fprintf(stderr, "qbench: stats: %s\n", sc.err);
				commits[0] = -1;
			}
		}
	}
	int failed = join_workers(ws, nprod + ncons);
	if (have_stats)
		conn_close(&sc);

	/* the window: up to the first empty consume in a drain */
	int used = nslots;
	if (drain) {
		for (int i = nprod; i < nprod + ncons; i++)
			if (ws[i].dry_ns != 0) {
				int s = (int)((ws[i].dry_ns - t_start_ns) / (SLOT_MS * 1000000LL));
				if (s < used)
					used = s;
			}
	}
	double window_s = used * SLOT_MS / 1000.0;
	hist *h = hist_alloc(), *hc = hist_alloc();
	uint64_t msgs = 0, reqs = 0, cmsgs = 0;
	for (int i = 0; i < nprod + ncons; i++) {
		worker *w = &ws[i];
		uint64_t m = w->msgs;
		if (drain) {
			m = 0;
			for (int s = 0; s < used; s++)
				m += w->slots[s];
		}
		if (w->role == CONSUMER) {
			cmsgs += m;
			hist_merge(hc, w->h);
		} else {
			msgs += m;
			reqs += w->reqs;
			hist_merge(h, w->h);
		}
	}
	double main_msgs = drain ? (double)cmsgs : (double)msgs;
	double srv_s = opt.pid > 0 && used > 0 ? srv[used] - srv[0] : -1;
	double cli_s = used > 0 ? cli[used] - cli[0] : -1;
	printf("system=%s workload=%s conns=%d batch=%d lease=%d size=%d window_s=%.2f msgs=%.0f msgs_per_s=%.0f",
	       opt.be->name, opt.workload, drain ? ncons : nprod, opt.batch, drain ? opt.lease : 0,
	       opt.size, window_s,
	       main_msgs, window_s > 0 ? main_msgs / window_s : 0);
	if (rate)
		printf(" offered_per_s=%.0f", opt.rate);
	if (drain)
		printf(" produced_per_s=%.0f producers=%d prod_p50_us=%" PRIu64 " prod_p99_us=%" PRIu64
		       " prefilled=%d prefill_per_s=%.0f dry=%d",
		       window_s > 0 ? (double)msgs / window_s : 0, nprod, hist_quantile(h, 0.50),
		       hist_quantile(h, 0.99), filled, fill_rate, used < nslots);
	else
		printf(" reqs_per_s=%.0f", window_s > 0 ? (double)reqs / window_s : 0);
	print_hist(drain ? hc : h);
	if (commits[0] >= 0 && commits[2] >= 0) {
		/* over the whole window, even when a drain's rate was cut short */
		double full_s = nslots * SLOT_MS / 1000.0;
		printf(" commits_per_s=%.0f fsyncs_per_s=%.0f", (double)(commits[2] - commits[0]) / full_s,
		       (double)(commits[3] - commits[1]) / full_s);
	}
	printf(" server_cpu_s=%.2f server_cpu_s_per_m=%.2f client_cpu_s_per_m=%.2f failed=%d\n",
	       srv_s, srv_s >= 0 && main_msgs > 0 ? srv_s * 1e6 / main_msgs : -1,
	       main_msgs > 0 ? cli_s * 1e6 / main_msgs : -1, failed);
	for (int i = 0; i < nprod + ncons; i++) {
		hist_free(ws[i].h);
		free(ws[i].slots);
	}
	hist_free(h);
	hist_free(hc);
	free(ws);
	free(srv);
	free(cli);
	return failed ? 1 : 0;
}

/* ---- utilities ---- */

/* Two free ports on loopback, distinct: a broker's SP and HTTP listeners. */
static int
free_ports(void)
{
	int a = port_free_loopback(), b = port_free_loopback();
	if (a < 0 || b < 0) {
		fprintf(stderr, "qbench: no free port on 127.0.0.1\n");
		return 1;
	}
	printf("%d %d\n", a, b);
	return 0;
}

/* Waits up to 20 s for the server to answer. */
static int
ping(void)
{
	conn c;
	int64_t deadline = now_ns() + 20LL * 1000000000;
	for (;;) {
		int rc = conn_open(&c, false);
		if (rc == 0)
			rc = c.be->ping(&c);
		conn_close(&c);
		if (rc == 0)
			return 0;
		if (now_ns() > deadline) {
			fprintf(stderr, "qbench: %s at %s does not answer: %s\n", opt.be->name, opt.addr,
			        c.err);
			return 1;
		}
		usleep(50000);
	}
}

/* 4 KiB appended and fdatasync'ed, 1000 times: what one durable commit
 * costs on this disk at least. */
static int
fsync_rate(const char *dir)
{
	char path[4096], block[4096];
	snprintf(path, sizeof(path), "%s/qbench-fsync.tmp", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	memset(block, 'f', sizeof(block));
	int64_t t = now_ns();
	for (int i = 0; i < 1000; i++) {
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fdatasync(fd) != 0) {
			perror(path);
			close(fd);
			unlink(path);
			return 1;
		}
	}
	double s = (double)(now_ns() - t) / 1e9;
	close(fd);
	unlink(path);
	printf("fsyncs_per_s=%.0f us_per_fsync=%.0f\n", 1000 / s, s * 1e3);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: qbench -s SYSTEM -a ADDR [-w WORKLOAD] [options]\n"
	        "       qbench -w port | qbench -w fsync -a DIR\n"
	        "\n"
	        "  -s SYSTEM      sluice (NNG), sluice-sp (SP over a plain socket), sluice-http\n"
	        "                 (enqueue only), beanstalkd, redis (RPOP), redis-reliable (LMOVE+LREM)\n"
	        "  -a ADDR        HOST:PORT (sluice: tcp://HOST:PORT)\n"
	        "  -w WORKLOAD    enqueue (default), rate, drain, ping, port, fsync\n"
	        "  -c N           enqueue, rate: connections (threads), default 1\n"
	        "  -b N           messages per enqueue request, default 1\n"
	        "  -L N           drain: most messages per lease (Sluice), default 500\n"
	        "  -m BYTES       payload size, default 200\n"
	        "  -d SECONDS     measured time, default 5\n"
	        "  -W SECONDS     warm-up before it, default 1\n"
	        "  -r RATE        rate: requests per second\n"
	        "  -P N           drain: producers, default 4\n"
	        "  -C N           drain: consumers, default 4\n"
	        "  -F N           drain: messages to prefill, default 200000\n"
	        "  -T SECONDS     drain: prefill for at most this long, default 10\n"
	        "  -p PID         server process, for its CPU time\n"
	        "  -q QUEUE       queue, list or tube name, default bench\n");
}

int
main(int argc, char **argv)
{
	const char *system = NULL;
	int ch;
	while ((ch = getopt(argc, argv, "s:a:w:c:b:L:m:d:W:r:P:C:F:T:p:q:h")) != -1) {
		switch (ch) {
		case 's': system = optarg; break;
		case 'a': opt.addr = optarg; break;
		case 'w': opt.workload = optarg; break;
		case 'c': opt.conns = atoi(optarg); break;
		case 'b': opt.batch = atoi(optarg); break;
		case 'L': opt.lease = atoi(optarg); break;
		case 'm': opt.size = atoi(optarg); break;
		case 'd': opt.duration_s = atof(optarg); break;
		case 'W': opt.warmup_s = atof(optarg); break;
		case 'r': opt.rate = atof(optarg); break;
		case 'P': opt.producers = atoi(optarg); break;
		case 'C': opt.consumers = atoi(optarg); break;
		case 'F': opt.prefill = atol(optarg); break;
		case 'T': opt.prefill_s = atof(optarg); break;
		case 'p': opt.pid = atoi(optarg); break;
		case 'q': opt.queue = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(opt.workload, "port") == 0)
		return free_ports();
	if (strcmp(opt.workload, "fsync") == 0)
		return opt.addr != NULL ? fsync_rate(opt.addr) : (usage(stderr), 2);
	if (system != NULL && strcmp(system, "sluice-sp") == 0) {
		sp_raw = true; /* the sluice backend, on a plain socket */
		system = "sluice";
	}
	for (size_t i = 0; system != NULL && i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(system, backends[i].name) == 0)
			opt.be = &backends[i];
	opt.qlen = strlen(opt.queue);
	if (opt.be == NULL || opt.addr == NULL || opt.conns < 1 || opt.batch < 1 ||
	    opt.batch > MAX_BATCH || opt.lease < 1 || opt.lease > MAX_LEASE || opt.size < 1 || opt.size > MAX_SIZE || opt.duration_s <= 0 ||
	    opt.rate <= 0 || opt.producers < 0 || opt.consumers < 1 || opt.qlen == 0 ||
	    opt.qlen > PROTO_MAX_QUEUE_LEN) {
		usage(stderr);
		return 2;
	}
	if (opt.be->open != sl_open || sp_raw) {
		static char host[256];
		const char *a = strncmp(opt.addr, "tcp://", 6) == 0 ? opt.addr + 6 : opt.addr;
		const char *colon = strrchr(a, ':');
		if (colon == NULL || (size_t)(colon - a) >= sizeof(host)) {
			fprintf(stderr, "qbench: address must be HOST:PORT\n");
			return 2;
		}
		memcpy(host, a, (size_t)(colon - a));
		host[colon - a] = '\0';
		opt.host = host;
		opt.port = atoi(colon + 1);
	}
	if (strcmp(opt.workload, "ping") == 0)
		return ping();
	return run();
}
