/*
 * client: the Sluice client library, used by the worker, the supervisor and
 * the sluice command. Blocking calls, each with a timeout, safe to call from
 * several threads at once on one client (each call has its own NNG context).
 *
 * Results: 0 is success; 1..99 are the broker's error codes (enum proto_err
 * in codec.h, e.g. PROTO_ERR_QUEUE_FULL); SLUICE_E_* below are the client's
 * own. sluice_errmsg() gives the text of the last failure on this thread
 * (the broker's message, or what went wrong locally), and
 * sluice_retry_after_ms() the broker's retry advice.
 *
 * Retries: PING, STATS, PEEK, ENQUEUE, ACK, TOUCH, NACK and REPORT are safe
 * to repeat and are retried with backoff on timeouts and transport errors
 * until the call's deadline. ENQUEUE is safe because every message carries an
 * idempotency key: one is generated for any message without its own, so a
 * resent request (by NNG's REQ after a reconnect, or by a retry here) never
 * stores a message twice. LEASE, REQUEUE and PURGE are sent once.
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLUICE_OK 0
#define SLUICE_E_TIMEOUT 100   /* no reply within the timeout */
#define SLUICE_E_CONNECT 101   /* cannot connect (with connect_now) */
#define SLUICE_E_TRANSPORT 102 /* NNG failed otherwise */
#define SLUICE_E_PROTOCOL 103  /* the reply is not what the protocol says */
#define SLUICE_E_NOMEM 104
#define SLUICE_E_INVALID 105   /* a bad argument: queue name, batch too big */

typedef struct sluice_client sluice_client;

typedef struct sluice_opts {
	int64_t timeout_ms;        /* per call, retries included; default 10 s */
	int64_t max_message_bytes; /* refuse bigger payloads locally; default 1 MiB */
	bool connect_now;          /* fail sluice_open if the broker is not there */
	const char *tls_ca;        /* tls+tcp://: CA file to verify the broker */
	const char *tls_cert_key;  /* tls+tcp://: client certificate + key (one PEM file) */
	const char *tls_server_name;
} sluice_opts;

/* Opens a client for url (tcp://, ipc://, tls+tcp://). opts may be NULL.
 * Unless connect_now, connecting happens in the background and calls wait
 * for it (up to their timeout). */
int sluice_open(sluice_client **out, const char *url, const sluice_opts *opts);
void sluice_close(sluice_client *c); /* accepts NULL */

/* Text of the last failure of a call on this thread. */
const char *sluice_errmsg(void);
/* The broker's retry advice with the last QUEUE_FULL, in ms. */
uint32_t sluice_retry_after_ms(void);
/* A short name for a result code. */
const char *sluice_strerror(int rc);

typedef struct sluice_info {
	char server[64];
	uint32_t max_message_bytes;
	uint32_t max_frame_bytes;
} sluice_info;

int sluice_ping(sluice_client *c, sluice_info *info);

/* One message to enqueue. key NULL: one is generated. */
typedef struct sluice_msg_in {
	const void *payload;
	size_t len;
	const void *key;
	size_t keylen;      /* <= 255 */
	uint32_t delay_ms;
	int32_t priority;
} sluice_msg_in;

/* Enqueues n messages atomically; ids[i] (and dup[i] when dup is not NULL)
 * receive each message's id and whether it was a duplicate of an earlier
 * key. All of a request must fit in one frame. */
int sluice_enqueue(sluice_client *c, const char *queue, const sluice_msg_in *msgs, size_t n,
                   uint64_t *ids, bool *dup);

/* A leased batch; msgs point into memory owned by the batch. */
typedef struct sluice_msg {
	uint64_t id;
	uint32_t attempt;
	int32_t priority;
	int64_t enqueued_ms;
	const uint8_t *payload;
	size_t len;
} sluice_msg;

typedef struct sluice_batch {
	uint64_t token;
	size_t count;
	sluice_msg *msgs;
	void *priv; /* private */
} sluice_batch;

/* Leases up to max messages for visibility_ms, waiting up to wait_ms for
 * the first (the call's own timeout is extended by wait_ms). *out is a new
 * batch, possibly empty; free it with sluice_batch_free. */
int sluice_lease(sluice_client *c, const char *queue, uint32_t max, uint32_t visibility_ms,
                 uint32_t wait_ms, sluice_batch **out);
/* Ready messages without leasing them (token 0). */
int sluice_peek(sluice_client *c, const char *queue, uint32_t max, sluice_batch **out);
void sluice_batch_free(sluice_batch *b); /* accepts NULL */

/* A named value: reports and stats. */
typedef struct sluice_field {
	const char *key;
	int64_t value;
} sluice_field;

/* codes, when not NULL, receives one result per id (0 or a PROTO_ERR_*).
 * report/nreport: the worker's sink health, sent with the ack. */
int sluice_ack(sluice_client *c, const char *queue, uint64_t token, const uint64_t *ids,
               size_t n, const sluice_field *report, size_t nreport, uint16_t *codes);
/* errors[i]: why message i failed (may be NULL). delay_ms SLUICE_BACKOFF:
 * the queue's retry backoff. */
#define SLUICE_BACKOFF 0xFFFFFFFFu
int sluice_nack(sluice_client *c, const char *queue, uint64_t token, const uint64_t *ids,
                const char *const *errors, size_t n, uint32_t delay_ms, uint16_t *codes);
/* Hands messages back without counting the delivery as an attempt (NACK
 * with NO_ATTEMPT): for messages a worker could not even try. */
int sluice_release(sluice_client *c, const char *queue, uint64_t token, const uint64_t *ids,
                   size_t n, uint32_t delay_ms, uint16_t *codes);
int sluice_touch(sluice_client *c, const char *queue, uint64_t token, const uint64_t *ids,
                 size_t n, uint32_t visibility_ms, uint16_t *codes);

/* Stats: the broker's fields, and each queue's. */
typedef struct sluice_stat {
	char key[64];
	int64_t value;
} sluice_stat;

typedef struct sluice_queue_stats {
	char name[136];
	size_t nfields;
	sluice_stat *fields;
} sluice_queue_stats;

typedef struct sluice_stats {
	size_t nbroker;
	sluice_stat *broker;
	size_t nqueues;
	sluice_queue_stats *queues;
} sluice_stats;

/* queue NULL or "": every queue. */
int sluice_stats_get(sluice_client *c, const char *queue, sluice_stats **out);
void sluice_stats_free(sluice_stats *s); /* accepts NULL */
/* A field's value, or dflt if absent. */
int64_t sluice_stat_value(const sluice_stat *fields, size_t n, const char *key, int64_t dflt);
const sluice_queue_stats *sluice_stats_queue(const sluice_stats *s, const char *name);

int sluice_requeue(sluice_client *c, const char *queue, uint32_t max, uint64_t *moved);
int sluice_purge(sluice_client *c, const char *queue, uint64_t *purged);
int sluice_report(sluice_client *c, const char *queue, const sluice_field *fields, size_t n);

#endif
