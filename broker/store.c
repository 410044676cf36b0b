/*
 * store: SQLite persistence for the broker.
 *
 * DESIGN: one connection, owned by the writer thread, which batches many
 * requests into each write transaction (group commit; see writer.c). Every
 * statement is prepared once at open. The database runs in WAL mode with
 * synchronous=FULL (an fsync of the WAL per commit: an acknowledged message
 * survives power loss) or NORMAL with durability: fast. SQLite's result
 * codes stop here: callers see BRK_STORE_* codes and brk_store_errmsg().
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum stmt_id {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_META_GET,
	S_META_SET,
	S_QUEUE_ADD,
	S_QUEUE_EACH,
	S_MSG_PUT,
	S_MSG_DELETE,
	S_MSG_ARCHIVE,
	S_MSG_UPDATE,
	S_MSG_UPDATE_ERR,
	S_MSG_PAYLOAD,
	S_MSG_EACH,
	S_KEY_PUT_USER,
	S_KEY_GET_USER,
	S_KEY_RENEW_USER,
	S_KEY_PRUNE_USER,
	S_KEY_PUT_RETRY,
	S_KEY_GET_RETRY,
	S_KEY_RENEW_RETRY,
	S_KEY_PRUNE_RETRY,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_BEGIN_READ] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[S_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
	               "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[S_QUEUE_ADD] = "INSERT INTO queues(name, created_ms) VALUES (?1, ?2)",
	[S_QUEUE_EACH] = "SELECT id, name FROM queues ORDER BY id",
	[S_MSG_PUT] = "INSERT INTO messages(id, queue, priority, enqueued_ms, visible_ms, attempts, "
	              "payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_MSG_DELETE] = "DELETE FROM messages WHERE id = ?1",
	[S_MSG_ARCHIVE] = "INSERT OR REPLACE INTO archive(id, queue, enqueued_ms, acked_ms, attempts, "
	                  "payload) SELECT id, queue, enqueued_ms, ?2, attempts, payload "
	                  "FROM messages WHERE id = ?1",
	[S_MSG_UPDATE] = "UPDATE messages SET queue = ?2, visible_ms = ?3, attempts = ?4 WHERE id = ?1",
	[S_MSG_UPDATE_ERR] = "UPDATE messages SET queue = ?2, visible_ms = ?3, attempts = ?4, "
	                     "last_error = ?5 WHERE id = ?1",
	[S_MSG_PAYLOAD] = "SELECT payload FROM messages WHERE id = ?1",
	[S_MSG_EACH] = "SELECT id, queue, priority, enqueued_ms, visible_ms, attempts, "
	               "length(payload) FROM messages ORDER BY id",
	[S_KEY_PUT_USER] = "INSERT INTO keys_user(queue, key, id, created_ms) VALUES (?1, ?2, ?3, ?4) "
	                   "ON CONFLICT(queue, key) DO NOTHING",
	[S_KEY_GET_USER] = "SELECT id, created_ms FROM keys_user WHERE queue = ?1 AND key = ?2",
	[S_KEY_RENEW_USER] = "UPDATE keys_user SET id = ?3, created_ms = ?4 WHERE queue = ?1 AND key = ?2",
	[S_KEY_PRUNE_USER] = "DELETE FROM keys_user WHERE rowid IN "
	                     "(SELECT rowid FROM keys_user ORDER BY rowid LIMIT ?2) AND created_ms < ?1",
	[S_KEY_PUT_RETRY] = "INSERT INTO keys_retry(queue, key, id, created_ms) VALUES (?1, ?2, ?3, ?4) "
	                    "ON CONFLICT(queue, key) DO NOTHING",
	[S_KEY_GET_RETRY] = "SELECT id, created_ms FROM keys_retry WHERE queue = ?1 AND key = ?2",
	[S_KEY_RENEW_RETRY] = "UPDATE keys_retry SET id = ?3, created_ms = ?4 WHERE queue = ?1 AND key = ?2",
	[S_KEY_PRUNE_RETRY] = "DELETE FROM keys_retry WHERE rowid IN "
	                      "(SELECT rowid FROM keys_retry ORDER BY rowid LIMIT ?2) AND created_ms < ?1",
};

static const char schema_v1[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE queues(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	" created_ms INTEGER NOT NULL);"
	"CREATE TABLE messages(id INTEGER PRIMARY KEY, queue INTEGER NOT NULL,"
	" priority INTEGER NOT NULL, enqueued_ms INTEGER NOT NULL, visible_ms INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL, last_error TEXT, payload BLOB NOT NULL);"
	"CREATE TABLE keys_user(queue INTEGER NOT NULL, key BLOB NOT NULL, id INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX keys_user_key ON keys_user(queue, key);"
	"CREATE TABLE keys_retry(queue INTEGER NOT NULL, key BLOB NOT NULL, id INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX keys_retry_key ON keys_retry(queue, key);"
	"CREATE TABLE archive(id INTEGER PRIMARY KEY, queue INTEGER NOT NULL,"
	" enqueued_ms INTEGER NOT NULL, acked_ms INTEGER NOT NULL, attempts INTEGER NOT NULL,"
	" payload BLOB NOT NULL);";

/* brk_store_set_quota; set once, before the writer thread starts */
static int64_t quota_bytes;

/*
 * Checkpoints: copying the WAL back into the database (and its fsync) would
 * run inside the writer's commits. A thread of the store's own does it
 * instead, PASSIVE (never blocking the writer) every CHECKPOINT_EVERY_MS on
 * a connection of its own; the writer's own automatic checkpoint stays, at
 * a larger threshold, so that the WAL still starts over when load never
 * pauses (a passive checkpoint can always be a frame behind).
 */
#define CHECKPOINT_EVERY_MS 100
#define WRITER_AUTOCHECKPOINT_PAGES 4000

struct brk_store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	sqlite3 *ckpt_db;       /* the checkpointer's connection */
	pthread_t ckpt_thread;
	bool ckpt_running;
	bool ckpt_stop;         /* guarded by ckpt_mu */
	pthread_mutex_t ckpt_mu;
	pthread_cond_t ckpt_cv;
	int lock_fd;
	char errmsg[256];
};

/* Maps a SQLite result to ours, remembering the message. */
static int
status(brk_store *s, int rc)
{
	if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
		return BRK_STORE_OK;
	snprintf(s->errmsg, sizeof(s->errmsg), "%s", sqlite3_errmsg(s->db));
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return BRK_STORE_E_FULL;
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CORRUPT:
	case SQLITE_CANTOPEN:
	case SQLITE_NOTADB:
		return BRK_STORE_E_IO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return BRK_STORE_E_BUSY;
	default:
		return BRK_STORE_E_OTHER;
	}
}

const char *
brk_store_errmsg(const brk_store *s)
{
	return s->errmsg;
}

/* Runs a prepared statement that returns no rows. */
static int
run(brk_store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return status(s, rc);
}

static int
exec(brk_store *s, const char *sql)
{
	return status(s, sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

static int
migrate(brk_store *s)
{
	sqlite3_stmt *st;
	int version = 0, rc;

	if ((rc = exec(s, "BEGIN IMMEDIATE")) != 0)
		return rc;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
		rc = status(s, sqlite3_errcode(s->db));
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(s->errmsg, sizeof(s->errmsg),
		         "database schema version %d is newer than this broker's (%d); "
		         "run a newer sluice-broker", version, STORE_SCHEMA_VERSION);
		rc = BRK_STORE_E_OTHER;
		goto fail;
	}
	if (version < 1 && (rc = exec(s, schema_v1)) != 0)
		goto fail;
	/* future steps: if (version < 2) { ... } */
	if (version < STORE_SCHEMA_VERSION) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
		if ((rc = exec(s, sql)) != 0)
			goto fail;
	}
	return exec(s, "COMMIT");
fail:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Creates the file's directory (0700) and the file itself (0600) so the
 * database, its WAL and its shared memory are private to this user. */
static int
prepare_path(const char *path, char *err, size_t errlen)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		/* create each missing component */
		for (char *p = dir + 1; *p; p++) {
			if (*p == '/') {
				*p = '\0';
				if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
					snprintf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
					return BRK_STORE_E_IO;
				}
				*p = '/';
			}
		}
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
			return BRK_STORE_E_IO;
		}
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return BRK_STORE_E_IO;
	}
	close(fd);
	return BRK_STORE_OK;
}

static int
take_lock(brk_store *s, const char *path, char *err, size_t errlen)
{
	char lock[4096 + 8];
	snprintf(lock, sizeof(lock), "%s.lock", path);
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", lock, strerror(errno));
		return BRK_STORE_E_IO;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "";
		ssize_t n = pread(s->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, errlen, "%s is in use by another broker%s%s%s", path,
		         pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		return BRK_STORE_E_BUSY;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, pid, (size_t)n, 0) < 0) {
		/* the pid is only a courtesy for the error above */
	}
	return BRK_STORE_OK;
}

void
brk_store_set_quota(int64_t max_bytes)
{
	quota_bytes = max_bytes > 0 ? max_bytes : 0;
}

/* PRAGMA max_page_count from the quota: whole pages, at least one. */
static int
apply_quota(brk_store *s)
{
	sqlite3_stmt *st;
	int64_t page = 4096;
	char sql[64];
	if (quota_bytes == 0)
		return BRK_STORE_OK;
	if (sqlite3_prepare_v2(s->db, "PRAGMA page_size", -1, &st, NULL) != SQLITE_OK)
		return status(s, sqlite3_errcode(s->db));
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
		page = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	int64_t pages = quota_bytes / page;
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)(pages > 0 ? pages : 1));
	return exec(s, sql);
}

static void *
checkpointer(void *arg)
{
	brk_store *s = arg;
	pthread_mutex_lock(&s->ckpt_mu);
	while (!s->ckpt_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += CHECKPOINT_EVERY_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &ts);
		if (s->ckpt_stop)
			break;
		pthread_mutex_unlock(&s->ckpt_mu);
		/* a failure (a full disk, say) is the writer's to see and report */
		sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&s->ckpt_mu);
	}
	pthread_mutex_unlock(&s->ckpt_mu);
	return NULL;
}

/* Starts the checkpointer; without it the writer checkpoints as SQLite
 * does by default. */
static void
start_checkpointer(brk_store *s, const char *path)
{
	char sql[64];
	if (sqlite3_open_v2(path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(s->ckpt_db);
		s->ckpt_db = NULL;
		return;
	}
	pthread_mutex_init(&s->ckpt_mu, NULL);
	pthread_cond_init(&s->ckpt_cv, NULL);
	if (pthread_create(&s->ckpt_thread, NULL, checkpointer, s) != 0) {
		pthread_cond_destroy(&s->ckpt_cv);
		pthread_mutex_destroy(&s->ckpt_mu);
		sqlite3_close(s->ckpt_db);
		s->ckpt_db = NULL;
		return;
	}
	s->ckpt_running = true;
	snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint=%d", WRITER_AUTOCHECKPOINT_PAGES);
	exec(s, sql);
}

static void
stop_checkpointer(brk_store *s)
{
	if (s->ckpt_running) {
		pthread_mutex_lock(&s->ckpt_mu);
		s->ckpt_stop = true;
		pthread_cond_signal(&s->ckpt_cv);
		pthread_mutex_unlock(&s->ckpt_mu);
		pthread_join(s->ckpt_thread, NULL);
		pthread_cond_destroy(&s->ckpt_cv);
		pthread_mutex_destroy(&s->ckpt_mu);
		s->ckpt_running = false;
	}
	if (s->ckpt_db != NULL)
		sqlite3_close(s->ckpt_db);
	s->ckpt_db = NULL;
}

int
brk_store_open(const char *path, bool fast, brk_store **out, char *err, size_t errlen)
{
	brk_store *s;
	int rc;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return BRK_STORE_E_OTHER;
	}
	s->lock_fd = -1;
	if ((rc = prepare_path(path, err, errlen)) != 0 || (rc = take_lock(s, path, err, errlen)) != 0)
		goto fail;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
		rc = BRK_STORE_E_IO;
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	char pragmas[256];
	snprintf(pragmas, sizeof(pragmas),
	         "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA busy_timeout=5000;"
	         "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;",
	         fast ? "NORMAL" : "FULL");
	if ((rc = exec(s, pragmas)) != 0 || (rc = migrate(s)) != 0 || (rc = apply_quota(s)) != 0) {
		snprintf(err, errlen, "%s: %s", path, s->errmsg);
		goto fail;
	}
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
		                       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing statement %d: %s", path, i, sqlite3_errmsg(s->db));
			rc = BRK_STORE_E_OTHER;
			goto fail;
		}
	}
	start_checkpointer(s, path);
	*out = s;
	return BRK_STORE_OK;
fail:
	brk_store_close(s);
	return rc;
}

void
brk_store_close(brk_store *s)
{
	if (s == NULL)
		return;
	stop_checkpointer(s);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db != NULL) {
		sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
		sqlite3_close(s->db);
	}
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	free(s);
}

int
brk_store_begin(brk_store *s)
{
	sqlite3_reset(s->stmt[S_MSG_PAYLOAD]); /* let go of the last payload read */
	return run(s, s->stmt[S_BEGIN]);
}

int
brk_store_commit(brk_store *s)
{
	int rc = run(s, s->stmt[S_COMMIT]);
	if (rc != 0 && !sqlite3_get_autocommit(s->db))
		brk_store_rollback(s); /* a failed COMMIT may leave the transaction open */
	return rc;
}

void
brk_store_rollback(brk_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		run(s, s->stmt[S_ROLLBACK]);
}

int
brk_store_begin_read(brk_store *s)
{
	return run(s, s->stmt[S_BEGIN_READ]);
}

void
brk_store_end_read(brk_store *s)
{
	sqlite3_reset(s->stmt[S_MSG_PAYLOAD]);
	if (!sqlite3_get_autocommit(s->db))
		run(s, s->stmt[S_COMMIT]);
}

int
brk_store_meta_get(brk_store *s, const char *key, int64_t *value)
{
	sqlite3_stmt *st = s->stmt[S_META_GET];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*value = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return status(s, rc);
}

int
brk_store_meta_set(brk_store *s, const char *key, int64_t value)
{
	sqlite3_stmt *st = s->stmt[S_META_SET];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	return run(s, st);
}

int
brk_store_queue_add(brk_store *s, const char *name, int64_t now_ms, int64_t *id)
{
	sqlite3_stmt *st = s->stmt[S_QUEUE_ADD];
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = run(s, st);
	if (rc == 0)
		*id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int
brk_store_queue_each(brk_store *s, int (*fn)(void *, int64_t, const char *), void *arg)
{
	sqlite3_stmt *st = s->stmt[S_QUEUE_EACH];
	int rc, r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = fn(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
		if (r != 0)
			break;
	}
	sqlite3_reset(st);
	return r != 0 ? r : status(s, rc);
}

int
brk_store_msg_put(brk_store *s, const brk_row *m)
{
	sqlite3_stmt *st = s->stmt[S_MSG_PUT];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->id);
	sqlite3_bind_int64(st, 2, m->queue_id);
	sqlite3_bind_int(st, 3, m->priority);
	sqlite3_bind_int64(st, 4, m->enqueued_ms);
	sqlite3_bind_int64(st, 5, m->visible_ms);
	sqlite3_bind_int64(st, 6, m->attempts);
	/* the request buffer outlives this step: no copy needed */
	sqlite3_bind_blob(st, 7, m->len ? m->payload : "", (int)m->len, SQLITE_STATIC);
	return run(s, st);
}

int
brk_store_msg_delete(brk_store *s, uint64_t id)
{
	sqlite3_stmt *st = s->stmt[S_MSG_DELETE];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	return run(s, st);
}

int
brk_store_msg_archive(brk_store *s, uint64_t id, int64_t now_ms)
{
	sqlite3_stmt *st = s->stmt[S_MSG_ARCHIVE];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	sqlite3_bind_int64(st, 2, now_ms);
	int rc = run(s, st);
	return rc != 0 ? rc : brk_store_msg_delete(s, id);
}

int
brk_store_msg_update(brk_store *s, uint64_t id, int64_t queue_id, int64_t visible_ms,
                     uint32_t attempts, const char *err, size_t errlen)
{
	sqlite3_stmt *st = s->stmt[err != NULL ? S_MSG_UPDATE_ERR : S_MSG_UPDATE];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	sqlite3_bind_int64(st, 2, queue_id);
	sqlite3_bind_int64(st, 3, visible_ms);
	sqlite3_bind_int64(st, 4, attempts);
	if (err != NULL)
		sqlite3_bind_text(st, 5, err, (int)errlen, SQLITE_TRANSIENT);
	return run(s, st);
}

int
brk_store_msg_payload(brk_store *s, uint64_t id, const void **ptr, size_t *len)
{
	sqlite3_stmt *st = s->stmt[S_MSG_PAYLOAD];
	sqlite3_reset(st); /* the previous payload stays valid until now */
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		*ptr = NULL;
		*len = 0;
		sqlite3_reset(st);
		if (rc == SQLITE_DONE) {
			snprintf(s->errmsg, sizeof(s->errmsg), "message %llu is not stored",
			         (unsigned long long)id);
			return BRK_STORE_E_OTHER;
		}
		return status(s, rc);
	}
	*ptr = sqlite3_column_blob(st, 0);
	*len = (size_t)sqlite3_column_bytes(st, 0);
	return BRK_STORE_OK;
}

int
brk_store_msg_each(brk_store *s, int (*fn)(void *, const brk_row *), void *arg)
{
	sqlite3_stmt *st = s->stmt[S_MSG_EACH];
	int rc, r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		brk_row m = {
			.id = (uint64_t)sqlite3_column_int64(st, 0),
			.queue_id = sqlite3_column_int64(st, 1),
			.priority = sqlite3_column_int(st, 2),
			.enqueued_ms = sqlite3_column_int64(st, 3),
			.visible_ms = sqlite3_column_int64(st, 4),
			.attempts = (uint32_t)sqlite3_column_int64(st, 5),
			.len = (size_t)sqlite3_column_int64(st, 6),
		};
		if ((r = fn(arg, &m)) != 0)
			break;
	}
	sqlite3_reset(st);
	return r != 0 ? r : status(s, rc);
}

int
brk_store_key_claim(brk_store *s, int table, int64_t queue_id, const void *key, size_t keylen,
                    uint64_t id, int64_t now_ms, int64_t window_ms, uint64_t *existing)
{
	bool retry = table == BRK_KEYS_RETRY;
	sqlite3_stmt *put = s->stmt[retry ? S_KEY_PUT_RETRY : S_KEY_PUT_USER];
	int rc;

	sqlite3_bind_int64(put, 1, queue_id);
	sqlite3_bind_blob(put, 2, key, (int)keylen, SQLITE_STATIC);
	sqlite3_bind_int64(put, 3, (sqlite3_int64)id);
	sqlite3_bind_int64(put, 4, now_ms);
	if ((rc = run(s, put)) != 0)
		return rc;
	if (sqlite3_changes(s->db) == 1)
		return BRK_STORE_OK;

	sqlite3_stmt *get = s->stmt[retry ? S_KEY_GET_RETRY : S_KEY_GET_USER];
	sqlite3_bind_int64(get, 1, queue_id);
	sqlite3_bind_blob(get, 2, key, (int)keylen, SQLITE_STATIC);
	int step = sqlite3_step(get);
	uint64_t old_id = step == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(get, 0) : 0;
	int64_t created = step == SQLITE_ROW ? sqlite3_column_int64(get, 1) : 0;
	sqlite3_reset(get);
	if (step != SQLITE_ROW)
		return status(s, step == SQLITE_DONE ? SQLITE_CORRUPT : step);
	if (now_ms - created < window_ms) {
		*existing = old_id;
		return BRK_STORE_DUP;
	}
	/* the old key is past its window but not yet pruned: it is new again */
	sqlite3_stmt *renew = s->stmt[retry ? S_KEY_RENEW_RETRY : S_KEY_RENEW_USER];
	sqlite3_bind_int64(renew, 1, queue_id);
	sqlite3_bind_blob(renew, 2, key, (int)keylen, SQLITE_STATIC);
	sqlite3_bind_int64(renew, 3, (sqlite3_int64)id);
	sqlite3_bind_int64(renew, 4, now_ms);
	return run(s, renew);
}

int
brk_store_key_prune(brk_store *s, int table, int64_t cutoff_ms, int max_rows, int *deleted)
{
	sqlite3_stmt *st = s->stmt[table == BRK_KEYS_RETRY ? S_KEY_PRUNE_RETRY : S_KEY_PRUNE_USER];
	sqlite3_bind_int64(st, 1, cutoff_ms);
	sqlite3_bind_int(st, 2, max_rows);
	int rc = run(s, st);
	*deleted = rc == 0 ? sqlite3_changes(s->db) : 0;
	return rc;
}

int
brk_store_size(brk_store *s, int64_t *bytes, int64_t *free_bytes)
{
	sqlite3_stmt *st;
	int64_t v[3] = {0, 0, 0};
	static const char *const q[3] = {"PRAGMA page_count", "PRAGMA freelist_count", "PRAGMA page_size"};
	for (int i = 0; i < 3; i++) {
		if (sqlite3_prepare_v2(s->db, q[i], -1, &st, NULL) != SQLITE_OK)
			return status(s, sqlite3_errcode(s->db));
		if (sqlite3_step(st) == SQLITE_ROW)
			v[i] = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	*bytes = v[0] * v[2];
	*free_bytes = v[1] * v[2];
	return BRK_STORE_OK;
}
