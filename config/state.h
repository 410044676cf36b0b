/*
 * state: reads the supervisor's state file (STATE.yaml), the memory that
 * lets a restarted supervisor, or a replay, resume instead of forgetting.
 * Plain data, no knowledge of the supervisor: supervisor/statefile.c
 * converts it and writes the same format.
 *
 *   t0: 1700000000            # start; initial_cooldown_period counts from here
 *   current: 3                # workers running
 *   last_active: 1700000012.5 # or null: never active since t0
 *   failures: 0               # consecutive failed reads
 *   recommendations:          # raw recommendations [t, n]; omitted (or null):
 *     - [1700000010, 3]       #   seed on the first poll; []: none
 *   scale_up_events: []       # [t, |change|] made by the HPA step
 *   scale_down_events: []
 *   guard_since: null         # optional: the sink over its guard limits since t
 *
 * Times are seconds (fractions to the millisecond, e.g. 12.5) on the clock
 * of the trace being replayed, or since the Unix epoch for the live
 * supervisor. t0 and current are required; the rest default as above.
 * Errors read "FILE:LINE:COLUMN: key: what is wrong", like the config's.
 */
#ifndef SLUICE_CONFIG_STATE_H
#define SLUICE_CONFIG_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Limits the reader enforces; the supervisor accepts the same. */
#define CFG_STATE_REPLICAS_MAX 1000000
#define CFG_STATE_COUNT_MAX INT64_C(1000000000000000000) /* n of a sample */
#define CFG_STATE_SECONDS_MAX INT64_C(1000000000000)     /* 1e12 s */

typedef struct cfg_state_sample {
	int64_t t_ms;
	int64_t n;
} cfg_state_sample;

typedef struct cfg_state {
	int64_t t0_ms;
	int current;
	bool has_last_active;
	int64_t last_active_ms;
	int failures;
	bool has_recommendations;       /* false: omitted, seed on the first poll */
	cfg_state_sample *recommendations; /* owned; in file order */
	size_t nrecommendations;
	cfg_state_sample *scale_up_events; /* owned */
	size_t nscale_up_events;
	cfg_state_sample *scale_down_events; /* owned */
	size_t nscale_down_events;
	bool has_guard_since;
	int64_t guard_since_ms;
} cfg_state;

/* Reads path into a new cfg_state. On failure returns a CFG_E_* code, fills
 * err and sets *out NULL. */
int cfg_state_load(const char *path, cfg_state **out, cfg_error *err);
/* The same from memory; name is the file name used in messages. */
int cfg_state_load_buffer(const char *name, const char *text, size_t len, cfg_state **out,
                          cfg_error *err);
void cfg_state_free(cfg_state *s); /* accepts NULL */

/* Parses seconds with up to 3 decimals ("12", "12.5", "0.001") into ms:
 * 0 on success, -1 if malformed, negative or above CFG_STATE_SECONDS_MAX. */
int cfg_seconds_parse(const char *text, int64_t *ms);

#endif
