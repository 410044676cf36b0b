/*
 * log: one line per event on stderr, written with a single write(2) so lines
 * from concurrent threads and processes never interleave.
 *
 * Line format (stable; tests grep the event name):
 *   2026-11-24T13:47:08.123Z INFO  broker[1234] EVENT-NAME free text
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

/* Current threshold; read by the macros so disabled levels cost one compare. */
extern int log_threshold;

/* Sets the role printed on each line (e.g. "broker"; copied) and the level. */
void log_init(const char *role, int level);

/* Writes one line. event is a stable upper-case name such as LEASE-EXPIRED. */
void log_write(int level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *name);

#define log_at(lvl, event, ...)                                                \
	do {                                                                       \
		if ((lvl) <= log_threshold)                                            \
			log_write((lvl), (event), __VA_ARGS__);                            \
	} while (0)
#define log_error(event, ...) log_at(LOG_LEVEL_ERROR, event, __VA_ARGS__)
#define log_warn(event, ...) log_at(LOG_LEVEL_WARN, event, __VA_ARGS__)
#define log_info(event, ...) log_at(LOG_LEVEL_INFO, event, __VA_ARGS__)
#define log_debug(event, ...) log_at(LOG_LEVEL_DEBUG, event, __VA_ARGS__)

#endif
