/*
 * reactor: one thread and an epoll set serving the connections of one
 * listening TCP socket, for a protocol module (httpd.c for HTTP, spd.c for
 * SP). The reactor reads into each connection's input buffer, writes the
 * answers queued on it in order, closes what stalls or idles, and lingers
 * on a close so the client reads its last answer. The protocol frames
 * requests out of the input and hands them to whoever answers them.
 *
 * Answers come from any thread: the protocol holds an answer due on the
 * connection (brk_rx_hold, on the reactor's thread) when it hands a
 * request over, and whoever answers posts a brk_rx_out with the bytes
 * (brk_rx_post). The reactor writes it and then releases it; an answer for
 * a connection that has gone is released unwritten. Every hold is matched
 * by exactly one post, and the connection lives until then.
 */
#ifndef SLUICE_BRK_REACTOR_H
#define SLUICE_BRK_REACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct brk_rx brk_rx;
typedef struct brk_rx_conn brk_rx_conn;
typedef struct brk_rx_out brk_rx_out;

struct brk_rx_out {
	const uint8_t *data; /* the answer, set before brk_rx_post */
	size_t len;
	bool close; /* close the connection once it is written */
	/* Called on the reactor's thread once the answer is written, or
	 * dropped with its connection; frees what it belongs to. */
	void (*release)(brk_rx_out *o);

	/* the reactor's */
	brk_rx_out *next;
	brk_rx_conn *conn;
};

/* The why of a connection closed because its answers are not read. */
#define BRK_RX_STALL_WRITE "its answers are not being read"

typedef struct brk_rx_proto {
	/* A connection is accepted: set its state (brk_rx_set_data). false
	 * closes it at once. */
	bool (*open)(void *arg, brk_rx_conn *c);
	/* Bytes are in (brk_rx_input), or the client stopped sending: frame
	 * what can be framed. Called again after each answer is queued. */
	void (*input)(void *arg, brk_rx_conn *c);
	/* An answer of c's is queued for writing (optional). */
	void (*answered)(void *arg, brk_rx_conn *c, brk_rx_out *o);
	/* The input buffer moved: from is the old address (optional; for
	 * protocols that keep pointers into it). */
	void (*moved)(void *arg, brk_rx_conn *c, uintptr_t from, uint8_t *to);
	/* c is going away: free its state. Answers it holds are still posted
	 * and then released unwritten. */
	void (*closed)(void *arg, brk_rx_conn *c);
	/* c is being closed for a stall (why says which); optional, for the
	 * log (without it: a debug line). */
	void (*stalled)(void *arg, brk_rx_conn *c, const char *why);
	void *arg;
	int idle_ms;        /* close a connection with nothing going on this long; 0 never */
	int write_stall_ms; /* close one whose answers make no progress this long */
	const char *name;   /* for the log and the thread */
} brk_rx_proto;

/* Listens on hostport ("host:port", "[v6]:port", with "http://" or
 * "tcp://" before either; a host "*" or "" is any address) and starts the
 * thread. 0, or -1 with err filled. */
int brk_rx_open(const char *hostport, const brk_rx_proto *p, brk_rx **out, char *err,
                size_t errlen);
/* The address listened on, "host:port" with the port bound. */
const char *brk_rx_addr(const brk_rx *rx);
/* Stops accepting (any thread). */
void brk_rx_stop_accepting(brk_rx *rx);
/* Stops the thread and closes every connection; posted answers are
 * released. Every held answer must have been posted. Accepts NULL. */
void brk_rx_close(brk_rx *rx);

/* ---- on the reactor's thread, for the protocol ---- */

void brk_rx_set_data(brk_rx_conn *c, void *data);
void *brk_rx_data(const brk_rx_conn *c);
/* The bytes read and not yet consumed. */
uint8_t *brk_rx_input(const brk_rx_conn *c, size_t *len);
/* Drops the first n bytes of the input. */
void brk_rx_consume(brk_rx_conn *c, size_t n);
/* Keep at least n bytes of input (the buffer grows to hold them); by
 * default the buffer holds 4 KiB and reading waits while it is full. */
void brk_rx_want(brk_rx_conn *c, size_t n);
/* Has the client shut its side (no more input will come)? */
bool brk_rx_eof(const brk_rx_conn *c);
/* The bytes in the input are not a stalled request: they wait for us. */
void brk_rx_busy(brk_rx_conn *c, bool busy);
/* An answer is due: the connection waits for it (one brk_rx_post). */
void brk_rx_hold(brk_rx_conn *c);
/* Queues bytes owned by o for writing now, without holding (a 100
 * Continue, the answer to an unparseable request). */
void brk_rx_send(brk_rx_conn *c, brk_rx_out *o);
/* Closes c once what is queued is written (and lingers). */
void brk_rx_close_after(brk_rx_conn *c);
/* Closes c now (held answers are released when they come). */
void brk_rx_drop(brk_rx_conn *c);
/* Runs input for c again soon (after a limit it waited on was lifted). */
void brk_rx_kick(brk_rx_conn *c);

/* ---- any thread ---- */

/* An answer held on c is ready: o (owned by the caller until released). */
void brk_rx_post(brk_rx_conn *c, brk_rx_out *o);

#endif
