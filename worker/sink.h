/*
 * sink: where a worker puts the messages it leased. Each kind of sink is
 * one file exporting one table of operations (sink_sqlite.c, sink_exec.c);
 * a new sink (PostgreSQL, HTTP) is a new file and a line in main.c's table.
 *
 * Threads: a sink is opened, used and closed by one thread at a time.
 */
#ifndef SLUICE_WRK_SINK_H
#define SLUICE_WRK_SINK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Return codes of open and commit. */
#define WRK_SINK_OK 0
#define WRK_SINK_EFAIL 1  /* commit: the sink could not take the batch (transient) */
#define WRK_SINK_EOPEN 2  /* open: unusable configuration or destination */
#define WRK_SINK_ENOMEM 3

/* What became of one item. The caller sets every result to UNTRIED before
 * commit; the sink changes those it dealt with. */
enum wrk_item_state {
	WRK_ITEM_UNTRIED = 0, /* not tried: handed back without counting an attempt */
	WRK_ITEM_OK = 1,      /* stored (or already there): acknowledged */
	WRK_ITEM_FAILED = 2,  /* this message failed: nacked with error, retried later */
};

#define WRK_ERROR_MAX 256
#define WRK_DEADLINE_POLL_MS 100

/* One leased message, as the sink sees it. Everything is borrowed and
 * valid for the duration of the commit call only. */
typedef struct wrk_item {
	uint64_t id;            /* the broker's message id: unique, the sink's key */
	const char *queue;      /* NUL-terminated */
	uint32_t attempt;       /* 1 on the first delivery */
	int64_t enqueued_ms;    /* ms since the Unix epoch */
	const uint8_t *payload; /* len bytes, any content */
	size_t len;
} wrk_item;

typedef struct wrk_result {
	int state;                 /* enum wrk_item_state */
	char error[WRK_ERROR_MAX]; /* FAILED: why, one line, NUL-terminated */
} wrk_result;

typedef struct wrk_sink_ops {
	const char *name; /* as in sink.type */

	/* Opens the sink described by conf (borrowed; it must outlive the
	 * sink). On failure returns WRK_SINK_EOPEN or WRK_SINK_ENOMEM and
	 * writes one line for humans into err ("cannot open PATH: why"). */
	int (*open)(const cfg_sink *conf, void **out, char *err, size_t errlen);

	/* Delivers items[0..n) and fills res[0..n) (all UNTRIED on entry).
	 * Returns WRK_SINK_OK when every item was tried: each result is then
	 * OK or FAILED. Returns WRK_SINK_EFAIL, with the reason in err, when
	 * the sink itself failed (database locked past its timeout, disk
	 * full, read-only, unreachable): items it did not get to stay
	 * UNTRIED, and the caller backs off. *deadline_ms (monotonic ms, 0 =
	 * none) is when the caller must be done; another thread may set it
	 * while commit runs (a shutdown), so a sink that waits reads it at
	 * least every WRK_DEADLINE_POLL_MS. Work still running at the
	 * deadline is abandoned and its items stay UNTRIED. */
	int (*commit)(void *sink, const wrk_item *items, size_t n, const atomic_llong *deadline_ms,
	              wrk_result *res, char *err, size_t errlen);

	void (*close)(void *sink); /* accepts NULL */
} wrk_sink_ops;

extern const wrk_sink_ops wrk_sink_sqlite;
extern const wrk_sink_ops wrk_sink_exec;
extern const wrk_sink_ops wrk_sink_pg;

#endif
