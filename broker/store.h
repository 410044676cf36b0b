/*
 * store: the broker's SQLite database. The only file that includes
 * sqlite3.h. One connection, used only by the writer thread (see writer.c);
 * nothing here is thread-safe.
 *
 * Schema (PRAGMA user_version = STORE_SCHEMA_VERSION):
 *   meta(key, value)                  next message id, boot counter
 *   queues(id, name, created_ms)
 *   messages(id, queue, priority, enqueued_ms, visible_ms, attempts,
 *            last_error, payload)     every message not yet acknowledged
 *   keys_user / keys_retry(rowid, queue, key, id, created_ms)
 *                                     idempotency keys, oldest first
 *   archive(id, queue, enqueued_ms, acked_ms, attempts, payload)
 * Leases are not stored: after a restart every message is ready again,
 * which is what an expired lease means.
 *
 * To change the schema: bump STORE_SCHEMA_VERSION, add a step to migrate()
 * in store.c that takes version N-1 to N inside the migration transaction,
 * and add a test that opens a database of the old version.
 */
#ifndef SLUICE_BRK_STORE_H
#define SLUICE_BRK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1

/* Results: 0 is success. */
#define BRK_STORE_OK 0
#define BRK_STORE_DUP 1      /* key_claim: the key exists; *existing holds its id */
#define BRK_STORE_E_FULL 2   /* disk or quota full (SQLITE_FULL) */
#define BRK_STORE_E_IO 3     /* I/O error, read-only file system, corruption */
#define BRK_STORE_E_BUSY 4   /* another process holds the database */
#define BRK_STORE_E_OTHER 5

enum brk_key_table { BRK_KEYS_USER = 0, BRK_KEYS_RETRY = 1 };

typedef struct brk_store brk_store;

/* A stored message, as the writer inserts or loads it. */
typedef struct brk_row {
	uint64_t id;
	int64_t queue_id;
	int32_t priority;
	int64_t enqueued_ms;
	int64_t visible_ms;
	uint32_t attempts;
	const void *payload; /* borrowed */
	size_t len;
} brk_row;

/* Opens (creating with mode 0600 if needed) and migrates the database at
 * path, taking an exclusive lock on PATH.lock so a second broker cannot use
 * it. fast: synchronous=NORMAL instead of FULL. On failure returns a code
 * and a reason in err. */
int brk_store_open(const char *path, bool fast, brk_store **out, char *err, size_t errlen);
/* A quota on the database file, in bytes (0, the default: none), that
 * every later brk_store_open applies with PRAGMA max_page_count: past it a
 * write fails with BRK_STORE_E_FULL, a true SQLITE_FULL, while deletes go
 * on. A database already bigger stays as it is and does not grow. main
 * sets it from broker.max_db_size before the writer opens the store. */
void brk_store_set_quota(int64_t max_bytes);
/* Checkpoints the WAL into the database and closes. Accepts NULL. */
void brk_store_close(brk_store *s);
/* The last SQLite error, for logs and error replies. */
const char *brk_store_errmsg(const brk_store *s);

int brk_store_begin(brk_store *s);      /* a write transaction */
int brk_store_commit(brk_store *s);
void brk_store_rollback(brk_store *s);
int brk_store_begin_read(brk_store *s); /* a read transaction, for many lookups */
void brk_store_end_read(brk_store *s);

int brk_store_meta_get(brk_store *s, const char *key, int64_t *value); /* 0 if absent */
int brk_store_meta_set(brk_store *s, const char *key, int64_t value);

int brk_store_queue_add(brk_store *s, const char *name, int64_t now_ms, int64_t *id);
/* Calls fn for every queue; stops and returns fn's result if non-zero. */
int brk_store_queue_each(brk_store *s, int (*fn)(void *arg, int64_t id, const char *name),
                         void *arg);

int brk_store_msg_put(brk_store *s, const brk_row *row);
int brk_store_msg_delete(brk_store *s, uint64_t id);
/* Copies the message to the archive table, then deletes it. */
int brk_store_msg_archive(brk_store *s, uint64_t id, int64_t now_ms);
/* Sets where and when a message is next visible, its attempts and error
 * (err NULL: unchanged). Used for retries, dead-lettering and requeues. */
int brk_store_msg_update(brk_store *s, uint64_t id, int64_t queue_id, int64_t visible_ms,
                         uint32_t attempts, const char *err, size_t errlen);
/* The payload and enqueue time of a message; *ptr is valid until the next
 * call into the store. */
int brk_store_msg_payload(brk_store *s, uint64_t id, const void **ptr, size_t *len);
/* Calls fn for every message in id order (payload not loaded; len set). */
int brk_store_msg_each(brk_store *s, int (*fn)(void *arg, const brk_row *row), void *arg);

/* Records key for id unless the queue already has it from within the last
 * window_ms; BRK_STORE_DUP and *existing when it does. */
int brk_store_key_claim(brk_store *s, int table, int64_t queue_id, const void *key,
                        size_t keylen, uint64_t id, int64_t now_ms, int64_t window_ms,
                        uint64_t *existing);
/* Deletes up to max_rows keys older than cutoff_ms, oldest first; *deleted
 * tells how many (fewer than max_rows: nothing more is due). */
int brk_store_key_prune(brk_store *s, int table, int64_t cutoff_ms, int max_rows, int *deleted);

/* Database size and free pages, for metrics. */
int brk_store_size(brk_store *s, int64_t *bytes, int64_t *free_bytes);

#endif
