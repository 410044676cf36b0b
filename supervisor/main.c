/*
 * sluice-supervisor: wires the configuration to either the live supervisor
 * (live.c) or a replay of a recorded trace (replay.c). Exit status: 0 done,
 * 1 failed while running, 2 bad usage, configuration, state or trace.
 */
#include "config.h"
#include "live.h"
#include "log.h"
#include "policy.h"
#include "replay.h"
#include "statefile.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
	"usage: sluice-supervisor [-c FILE] [--replay TRACE.csv [--state STATE.yaml]]\n"
	"\n"
	"Starts and stops sluice-worker processes as the queue's backlog asks\n"
	"(section `supervisor` of the configuration; see docs/scaling.md).\n"
	"\n"
	"  -c, --config FILE      configuration file (default: the built-in defaults)\n"
	"      --replay TRACE     decide poll by poll over a recorded trace\n"
	"                         (CSV: t,depth,in_flight[,current][,ready]...) and\n"
	"                         print t,metric,replicas,reason; starts nothing\n"
	"      --state STATE      start the replay from this state file\n"
	"  -h, --help             show this help\n";

/* Bad usage: what was wrong, then the usage, on stderr; exit status 2. */
static int
usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "sluice-supervisor: %s %s\n%s", what, arg, usage_text);
	return 2;
}

static int
run_replay(const cfg *c, const char *config_path, const char *trace_path, const char *state_path)
{
	sup_policy policy;
	sup_state st;
	char err[512];
	FILE *trace;
	int rc;

	if (sup_policy_from_cfg(&c->supervisor, &policy, err, sizeof(err)) != SUP_OK) {
		fprintf(stderr, "%s: %s\n", config_path ? config_path : "built-in configuration", err);
		return 2;
	}
	if (state_path != NULL) {
		cfg_error cerr;
		if ((rc = sup_statefile_load(state_path, &st, &cerr)) != SUP_OK) {
			fprintf(stderr, "%s\n", cerr.message);
			sup_state_fini(&st);
			return rc == SUP_E_NOMEM ? 1 : 2;
		}
	} else {
		int initial = c->supervisor.initial_replicas >= 0 ? c->supervisor.initial_replicas
		                                                 : c->supervisor.min_replicas;
		sup_state_init(&st, initial, 0);
	}
	if ((trace = fopen(trace_path, "r")) == NULL) {
		fprintf(stderr, "%s: cannot open: %s\n", trace_path, strerror(errno));
		sup_state_fini(&st);
		return 2;
	}

	static char outbuf[1 << 20];
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	rc = sup_replay(&policy, &st, trace, trace_path, stdout, err, sizeof(err));
	fclose(trace);
	sup_state_fini(&st);
	if (rc != SUP_OK) {
		fflush(stdout);
		fprintf(stderr, "%s\n", err);
		return rc == SUP_E_TRACE ? 2 : 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"replay", required_argument, NULL, 'r'},
		{"state", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *replay = NULL, *state = NULL;
	cfg *c = NULL;
	cfg_error cerr;
	int opt, rc;

	log_init("supervisor", LOG_LEVEL_INFO);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'r':
			replay = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case ':':
			return usage_error("missing the argument of", argv[optind - 1]);
		default:
			return usage_error("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (state != NULL && replay == NULL)
		return usage_error("--state goes with", "--replay");

	if (cfg_load(config_path, &c, &cerr) != CFG_OK) {
		fprintf(stderr, "%s\n", cerr.message);
		return 2;
	}
	if (replay != NULL)
		rc = run_replay(c, config_path, replay, state);
	else
		rc = sup_run_live(c, config_path);
	cfg_free(c);
	return rc;
}
