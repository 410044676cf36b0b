/*
 * sluice-broker: wires the configuration, the writer (store + index), the
 * NNG server and the HTTP API, waits for SIGTERM or SIGINT, then tears down
 * in reverse: refuse new work, finish and answer what is in hand,
 * checkpoint, exit 0.
 */
#include "config.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "writer.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHUTDOWN_WATCHDOG_S 2

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: sluice-broker [-c FILE] [--listen URL]... [--http ADDR] [--data PATH] [-v]\n"
	        "\n"
	        "Serves durable named queues over NNG (and HTTP), storing every message in\n"
	        "SQLite before acknowledging it.\n"
	        "\n"
	        "  -c, --config FILE   configuration (default: the built-in defaults,\n"
	        "                      as in config/sluice.yaml)\n"
	        "  -l, --listen URL    serve on URL instead of broker.listen (repeatable)\n"
	        "      --http ADDR     HTTP API address (\"\" disables it)\n"
	        "  -d, --data PATH     database file instead of broker.data\n"
	        "  -v, --verbose       log debug detail\n"
	        "  -h, --help          this text\n");
}

/* NNG's close can hang in 1.5 on shutdown; by then everything is durable,
 * so after a grace period the process just exits. */
static void *
watchdog(void *arg)
{
	(void)arg;
	sleep(SHUTDOWN_WATCHDOG_S);
	log_warn("SHUTDOWN-WATCHDOG", "closing sockets took over %d s; exiting anyway (all data is "
	         "stored)", SHUTDOWN_WATCHDOG_S);
	_exit(0);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"http", required_argument, NULL, 'H'},
		{"data", required_argument, NULL, 'd'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *http = NULL, *data = NULL;
	char *listen[16];
	size_t nlisten = 0;
	bool verbose = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:l:d:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'l':
			if (nlisten == sizeof(listen) / sizeof(listen[0])) {
				fprintf(stderr, "sluice-broker: at most 16 --listen URLs\n");
				return 2;
			}
			listen[nlisten++] = optarg;
			break;
		case 'H': http = optarg; break;
		case 'd': data = optarg; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluice-broker: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	cfg *c;
	cfg_error cerr;
	if (cfg_load(config_path, &c, &cerr) != CFG_OK) {
		fprintf(stderr, "%s\n", cerr.message);
		return 2;
	}
	/* command-line overrides: the strings stay owned by argv */
	if (nlisten > 0) {
		c->broker.listen = listen;
		c->broker.nlisten = nlisten;
	}
	if (http != NULL)
		c->broker.http = (char *)http;
	if (data != NULL)
		c->broker.data = (char *)data;
	int level = log_level_parse(c->broker.log_level ? c->broker.log_level : "info");
	log_init("broker", verbose ? LOG_LEVEL_DEBUG : level < 0 ? LOG_LEVEL_INFO : level);

	/* every thread created from here on inherits this mask; main alone
	 * takes the signals, with sigwait */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* past RLIMIT_FSIZE a write fails with EFBIG, which the store answers
	 * as a storage error, instead of the signal killing the broker */
	signal(SIGXFSZ, SIG_IGN);

	char err[512];
	static brk_counters counters; /* outlives the writer, the server and the API */
	brk_writer *w = NULL;
	brk_server *srv = NULL;
	brk_http *api = NULL;
	int status = 1;
	brk_store_set_quota(c->broker.max_db_size);
	if (brk_writer_open(c, &counters, &w, err, sizeof(err)) != 0) {
		log_error("STORE-FAILED", "%s", err);
		fprintf(stderr, "sluice-broker: %s\n", err);
		goto out;
	}
	/* HTTP first: a client that got an answer over SP may use the HTTP API
	 * at once, and a broker that cannot listen on it exits before it
	 * answered anyone */
	if (c->broker.http != NULL && c->broker.http[0] != '\0' &&
	    brk_http_open(c, w, &api, err, sizeof(err)) != 0) {
		log_error("HTTP-FAILED", "%s", err);
		fprintf(stderr, "sluice-broker: %s\n", err);
		goto out;
	}
	if (brk_server_open(c, w, &srv, err, sizeof(err)) != 0) {
		log_error("LISTEN-FAILED", "%s", err);
		fprintf(stderr, "sluice-broker: %s\n", err);
		goto out;
	}
	log_info("READY", "pid %ld, data %s, durability %s", (long)getpid(), c->broker.data,
	         c->broker.durability == CFG_DURABILITY_FULL ? "full" : "fast");

	int sig;
	sigwait(&sigs, &sig);
	log_info("SHUTDOWN", "%s: finishing requests in hand", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	status = 0;
out:
	brk_http_drain(api);
	brk_server_drain(srv);
	brk_writer_close(w); /* answers what is in hand, checkpoints, closes the store */
	if (srv != NULL || api != NULL) {
		pthread_t t;
		if (pthread_create(&t, NULL, watchdog, NULL) == 0)
			pthread_detach(t);
	}
	brk_http_close(api);
	brk_server_close(srv);
	if (status == 0)
		log_info("STOPPED", "clean shutdown");
	if (nlisten > 0)
		c->broker.listen = NULL, c->broker.nlisten = 0;
	if (http != NULL)
		c->broker.http = NULL;
	if (data != NULL)
		c->broker.data = NULL;
	cfg_free(c);
	return status;
}
