/* sluice: the command line. Dispatches to one file per subcommand. */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *what;
} commands[] = {
	{"demo", cli_demo, "run the broker, supervisor and workers against a burst, and report"},
	{"put", cli_put, "enqueue messages (arguments, or one per stdin line)"},
	{"stats", cli_stats, "show queue depths, rates and workers"},
	{"peek", cli_peek, "show the next ready messages without leasing them"},
	{"dlq", cli_dlq, "list, requeue or purge a queue's dead letters"},
	{"purge", cli_purge, "delete every message of a queue that is not leased"},
	{"load", cli_load, "generate load against the broker, HTTP, or a database directly"},
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: sluice COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-7s %s\n", commands[i].name, commands[i].what);
	fprintf(f, "\nEvery command takes -b/--broker URL, -c/--config FILE and --help.\n"
	           "The default broker is worker.broker of the configuration\n"
	           "(tcp://127.0.0.1:7450 by default).\n");
}

cli_env cli_global;

void
cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "sluice %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool
cli_common_opt(cli_env *e, int opt, const char *arg)
{
	switch (opt) {
	case 'b': e->broker = arg; return true;
	case 'c': e->config_path = arg; return true;
	case 'q': e->queue = arg; return true;
	default: return false;
	}
}

int
cli_env_load(cli_env *e)
{
	cfg_error err;
	if (cfg_load(e->config_path, &e->cfg, &err) != CFG_OK) {
		fprintf(stderr, "%s\n", err.message);
		return 2;
	}
	if (e->broker == NULL)
		e->broker = e->cfg->worker.broker;
	if (e->queue == NULL)
		e->queue = e->cfg->worker.queue;
	if (e->timeout_ms == 0)
		e->timeout_ms = 10000;
	return 0;
}

void
cli_env_fini(cli_env *e)
{
	cfg_free(e->cfg);
	e->cfg = NULL;
}

int
cli_connect(cli_env *e, sluice_client **out)
{
	sluice_opts o = {
		.timeout_ms = e->timeout_ms,
		.max_message_bytes = e->cfg->broker.max_message_bytes,
		.connect_now = true,
		.tls_ca = e->cfg->worker.tls_ca,
		.tls_cert_key = e->cfg->worker.tls_cert_key,
		.tls_server_name = e->cfg->worker.tls_server_name,
	};
	int rc = sluice_open(out, e->broker, &o);
	if (rc != 0) {
		fprintf(stderr, "sluice: cannot reach the broker at %s: %s\n"
		                "       (is sluice-broker running? -b URL or -c FILE picks another)\n",
		        e->broker, sluice_errmsg());
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONG,
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;
	/* global options stop at the subcommand's name */
	while ((opt = getopt_long(argc, argv, "+" CLI_COMMON_SHORT "h", opts, NULL)) != -1) {
		if (cli_common_opt(&cli_global, opt, optarg))
			continue;
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		usage(stderr);
		return 2;
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *name = argv[optind];
	if (strcmp(name, "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;
			optind = 0; /* the subcommand parses its own options, from scratch */
			return commands[i].fn(sub_argc, sub_argv);
		}
	}
	fprintf(stderr, "sluice: unknown command '%s'\n\n", name);
	usage(stderr);
	return 2;
}
