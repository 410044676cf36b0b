/*
 * cli: the `sluice` command. Each subcommand is one function taking its own
 * argv (argv[0] is the subcommand's name) and returning the exit status:
 * 0 done, 1 failed, 2 usage error.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "config.h"

/* What every subcommand shares: the configuration and where the broker is. */
typedef struct cli_env {
	cfg *cfg;              /* owned */
	const char *config_path;
	const char *broker;    /* -b, else worker.broker from the configuration */
	const char *queue;     /* -q, else worker.queue */
	int64_t timeout_ms;
} cli_env;

/* -b, -c and -q given before the subcommand (sluice -c FILE stats): each
 * subcommand starts from a copy of this. */
extern cli_env cli_global;

/* Options every subcommand accepts; add CLI_COMMON_OPTS to a getopt table
 * and pass unknown letters to cli_common_opt. */
#define CLI_COMMON_SHORT "b:c:q:"
#define CLI_COMMON_LONG                                                        \
	{"broker", required_argument, NULL, 'b'}, {"config", required_argument, NULL, 'c'}, \
		{"queue", required_argument, NULL, 'q'}
/* Handles -b, -c, -q; false if opt is not one of them. */
bool cli_common_opt(cli_env *e, int opt, const char *arg);
/* Loads the configuration (after the options are parsed); prints why not. */
int cli_env_load(cli_env *e);
void cli_env_fini(cli_env *e);
/* Connects to the broker; prints a clear message and returns non-zero if
 * it cannot be reached. */
int cli_connect(cli_env *e, sluice_client **out);

/* Prints "sluice CMD: message" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int cli_put(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_dlq(int argc, char **argv);
int cli_purge(int argc, char **argv);
int cli_peek(int argc, char **argv);
int cli_load(int argc, char **argv);
int cli_demo(int argc, char **argv);

#endif
