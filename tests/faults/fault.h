/*
 * fault: what every fault scenario shares, built on fixture.h.
 *
 * - Producers (ft_load) that enqueue "PREFIX<p>-<k>" messages, each with a
 *   user idempotency key equal to its name, and retry a refused or
 *   unanswered request with the same keys until it is acknowledged: across
 *   any fault, every message ends up stored once.
 * - The audit (ft_audit), run at the end of every scenario: the broker
 *   still serves; the queue drains with nothing dead-lettered; every
 *   message a producer saw acknowledged is in the sink exactly once (or,
 *   for jobs, ran at least once); nothing a producer never sent is there,
 *   and of what was sent but not acknowledged (the request in hand when a
 *   producer stopped) at most that is there.
 * - Probes for the attacks: VmRSS/VmHWM, raw SP and HTTP connections,
 *   /metrics values, child processes.
 *
 * Counts: ft_count(ci, full) is `full` when SLUICE_FAULT_FULL=1, else
 * th_scaled(ci), so CI runs short and the sanitizer build shorter still.
 * Each scenario prints one "FIGURES name: ..." line for docs/RELIABILITY.md.
 */
#ifndef SLUICE_FAULT_H
#define SLUICE_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fixture.h"

/* full under SLUICE_FAULT_FULL=1, else th_scaled(ci) */
long ft_count(long ci, long full);
bool ft_full(void);

/* ---- producers ---- */

#define FT_MAX_PRODUCERS 32
#define FT_MAX_CODES 128

typedef struct ft_load_opts {
	const char *url;        /* default fx.url */
	const char *queue;      /* default "default" */
	const char *prefix;     /* default "m" */
	int producers;          /* default 4 */
	int batch;              /* messages per ENQUEUE; default 1 */
	int payload_bytes;      /* pad each payload to this many bytes; 0 = its name only */
	int64_t timeout_ms;     /* per call; default 3000 */
	int pause_us;           /* after each acknowledged request; default 0 */
	int retry_us;           /* after a refused or failed one; default 20000 */
	long max_per_producer;  /* stop after this many messages each; 0 = until ft_load_stop */
	const char *tls_ca, *tls_cert_key, *tls_server_name; /* for tls+tcp:// */
} ft_load_opts;

typedef struct ft_load ft_load;

/* Starts the producers (threads, each with its own client). */
ft_load *ft_load_start(const ft_load_opts *o);
/* Asks them to stop: each finishes the request in hand (retrying it up to
 * grace_ms), then the threads are joined. */
void ft_load_stop(ft_load *l, int64_t grace_ms);
/* Messages acknowledged so far, over every producer. */
long ft_load_acked(const ft_load *l);
/* Requests answered with this result code (a PROTO_ERR_* or SLUICE_E_*). */
long ft_load_refused(const ft_load *l, int code);
/* Longest answer time, in ms, of requests refused with this code. */
int64_t ft_load_refused_max_ms(const ft_load *l, int code);
/* The broker's retry advice with the last refusal with code, in ms. */
uint32_t ft_load_retry_after_ms(const ft_load *l, int code);
/* The message of the last refusal with code, or "" (lives with l). */
const char *ft_load_refused_text(const ft_load *l, int code);
/* Requests retried (refused or unanswered). */
long ft_load_retries(const ft_load *l);
/* Waits until at least n more messages are acknowledged (false on timeout). */
bool ft_load_wait(const ft_load *l, long n, int timeout_ms);

/* ---- the audit ---- */

typedef struct ft_audit_opts {
	const char *queue;      /* default "default" */
	const char *sink;       /* SQLite sink; default fx.sink; NULL with jobs set */
	const char *table;      /* default "events" */
	const char *jobs;       /* exec sink: a file with one payload per line per run */
	int drain_ms;           /* wait this long for the queue to drain; default 120000 */
} ft_audit_opts;

typedef struct ft_audit_result {
	long acked;             /* messages the producers saw acknowledged */
	long stored;            /* rows (or runs) of this load in the sink */
	long lost;              /* acknowledged, not in the sink */
	long duplicated;        /* acknowledged, in the sink more than once (jobs: ran twice) */
	long unacked_stored;    /* sent, never acknowledged, in the sink (allowed) */
	long phantom;           /* in the sink, never sent by anyone */
} ft_audit_result;

/* The audit: fails the case unless every rule of the file's header holds.
 * Fills r (may be NULL) and prints one "AUDIT" line. */
void ft_audit(ft_load *l, const ft_audit_opts *o, ft_audit_result *r);

/* The broker at fx.url answers PING, STATS, and an enqueue, lease and ack
 * on a queue of its own. */
bool ft_broker_serves(void);

/* ---- processes ---- */

/* VmRSS and VmHWM (the peak) of pid in KiB, from /proc/PID/status; -1 if gone. */
long ft_rss_kb(pid_t pid);
long ft_hwm_kb(pid_t pid);
/* Children of parent whose command line contains name; up to max. */
int ft_children(pid_t parent, const char *name, pid_t *out, int max);
/* Starts sluice-broker -c fx.config behind a wrapper command (prefix,
 * NULL-terminated, e.g. prlimit or fiu-run; the wrapper must exec the
 * broker), and waits until it answers PING (fails the case after 15 s). */
pid_t ft_broker_via(const char *log, const char *const *prefix);
/* Is pid alive (and not a zombie)? */
bool ft_alive(pid_t pid);
/* Is a write transaction open on the SQLite database db (its write lock
 * taken)? */
bool ft_sqlite_write_locked(const char *db);
/* Occurrences of text in a file (0 if unreadable). */
int ft_count_in(const char *path, const char *text);

/* ---- raw connections ---- */

/* A connected (blocking) socket to a tcp://HOST:PORT or ipc:///PATH URL,
 * with 5 s timeouts, or -1; th_dial_tcp for an HTTP host:port. */
int ft_dial(const char *url);
/* The SP handshake of a REQ peer (8 bytes each way). false on failure. */
bool ft_sp_hello(int fd);
/* Sends one SP message: (ipc: a 0x01 byte), 64-bit length, the REQ
 * request id, then body. false on failure. */
bool ft_sp_send(int fd, bool ipc, uint32_t req_id, const void *body, size_t len);

/* An HTTP/1.1 request (Connection: close) with an optional bearer token
 * and body; returns the status (0: no answer) and, when resp is not NULL,
 * the response body (lives until the case ends). */
int ft_http(const char *hostport, const char *method, const char *path, const char *token,
            const void *body, size_t len, char **resp);
int ft_http_get(const char *hostport, const char *path, const char *token, char **resp);
/* A sample's value in a /metrics text ("name" or "name{labels}"); -1 if absent. */
double ft_metric(const char *metrics, const char *sample);

#endif
