/* sluice load: the command around cli_load_run (load_run.c): options and
 * defaults from the configuration, the live progress line, the final
 * report and the JSON file. */
#include "cli.h"
#include "load.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLAIN_EVERY_S 5 /* progress lines when stderr is not a terminal */

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: sluice load [--target sluice|http|direct] [--vus N --duration D | --stages S]\n"
	    "                   [OPTIONS]\n"
	    "\n"
	    "Closed-loop load: each virtual user (VU) sends a request, waits for its answer,\n"
	    "optionally thinks, and repeats. Reports requests, req/s, latency percentiles\n"
	    "and errors by kind, per stage and in total, and the generator's own CPU.\n"
	    "\n"
	    "Load shape:\n"
	    "  -u, --vus N           VUs for a flat run (default 10)\n"
	    "  -d, --duration D      length of a flat run (default 10s)\n"
	    "  -s, --stages S        k6-style ramps instead, from 0 VUs: DURATION:VUS,...\n"
	    "                        e.g. 10s:100,80s:2000,10s:0\n"
	    "      --think D         pause between an answer and the next request (default 0)\n"
	    "      --timeout D       per request (default 30s)\n"
	    "\n"
	    "Target:\n"
	    "  -t, --target T        sluice (default): ENQUEUE over NNG to the broker (-b, or\n"
	    "                        worker.broker); http: POST /v1/queues/Q/messages to the\n"
	    "                        broker's HTTP API; direct: one row per transaction straight\n"
	    "                        into the sink's database (SQLite or PostgreSQL), no buffer\n"
	    "                        in between\n"
	    "  -q, --queue QUEUE     queue (default: worker.queue)\n"
	    "      --batch N         sluice: messages per ENQUEUE (default 1)\n"
	    "      --size BYTES      payload size (default 200); each payload starts with a\n"
	    "                        unique PREFIX-SEQ, padded with '.'\n"
	    "      --prefix P        that prefix (default load-RANDOM)\n"
	    "      --no-keys         sluice, http: send no idempotency keys\n"
	    "      --connections N   sluice: REQ sockets (default one per 256 VUs);\n"
	    "                        http: keep-alive connections (default one per VU)\n"
	    "      --url URL         http: http://HOST:PORT (default: broker.http)\n"
	    "      --db PATH         direct: SQLite database (default worker.sink.path), or\n"
	    "                        'postgres' for PostgreSQL at --dsn (the default when\n"
	    "                        worker.sink.type is postgres)\n"
	    "      --dsn DSN         direct: PostgreSQL connection string or URI (implies --db\n"
	    "                        postgres; default worker.sink.dsn, with its password_file;\n"
	    "                        else the password comes from PGPASSWORD or PGPASSFILE)\n"
	    "      --table NAME      direct: table (default worker.sink.table); created if\n"
	    "                        missing; rows get negative ids, never the broker's\n"
	    "      --pool N          direct: connections, each served by a thread (default 50)\n"
	    "      --busy-timeout D  direct: SQLite busy timeout (default\n"
	    "                        worker.sink.busy_timeout, 5s)\n"
	    "\n"
	    "Output:\n"
	    "  -j, --json FILE       every figure as JSON ('-' for stdout; the report then goes\n"
	    "                        to stderr): target, options, stages[], total, first_errors,\n"
	    "                        cpu and a timeline[] of one-second points {t, vus,\n"
	    "                        requests, ok, errors{...}, p50_ms, p99_ms, max_ms}; each\n"
	    "                        stage and total has duration_s, requests, ok, messages,\n"
	    "                        failed, rps, ok_rps, mps, error_rate, errors{busy,\n"
	    "                        timeout, database, broker, transport}, latency_ms and\n"
	    "                        ok_latency_ms {count, p50, p95, p99, max, mean}\n"
	    "      --quiet           print only the final report\n"
	    "  -b, --broker URL    -c, --config FILE    -h, --help\n"
	    "\n"
	    "Errors: busy (QUEUE_FULL, HTTP 429), timeout, database (direct: busy, locked or\n"
	    "failing), broker (any other error reply, HTTP 4xx/5xx), transport (connection\n"
	    "refused, reset, closed). Failed requests are measurements: the exit status is 0\n"
	    "when the run completed, 1 when the target cannot be reached or setup fails, 2\n"
	    "for a usage error. Ctrl-C stops early and still reports.\n");
}

enum {
	OPT_THINK = 256,
	OPT_TIMEOUT,
	OPT_BATCH,
	OPT_SIZE,
	OPT_NO_KEYS,
	OPT_CONNECTIONS,
	OPT_URL,
	OPT_DB,
	OPT_DSN,
	OPT_TABLE,
	OPT_POOL,
	OPT_BUSY,
	OPT_PREFIX,
	OPT_QUIET,
};

static volatile sig_atomic_t interrupted;

static void
on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

typedef struct display {
	bool tty;
	bool quiet;
	bool shown; /* a \r line is on the terminal */
} display;

static void
progress(const load_progress *p, void *arg)
{
	display *dp = arg;
	const load_second *s = p->last;
	if (dp->quiet)
		return;
	if (!dp->tty && s->t % PLAIN_EVERY_S != 0)
		return;
	double rate = p->requests ? 100.0 * (double)p->failed / (double)p->requests : 0;
	fprintf(stderr,
	        "%s%6.1fs  stage %d  VUs %5d  req/s %8llu  p99 %8.2f ms  errors %llu (%.2f%%)%s",
	        dp->tty ? "\r" : "", p->elapsed_s, p->stage + 1, p->vus,
	        (unsigned long long)s->requests, s->p99_ms, (unsigned long long)p->failed, rate,
	        dp->tty ? "\033[K" : "\n");
	fflush(stderr);
	dp->shown = dp->tty;
}

static bool
parse_int(const char *text, long min, long max, int *out)
{
	char *end;
	long v = strtol(text, &end, 10);
	if (*text == '\0' || *end != '\0' || v < min || v > max)
		return false;
	*out = (int)v;
	return true;
}

static bool
parse_ms(const char *text, bool zero_ok, int64_t *out)
{
	int64_t v;
	if (cfg_duration_parse(text, &v) != 0 || v < 0 || (!zero_ok && v == 0))
		return false;
	*out = v;
	return true;
}

int
cli_load(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONG,
		{"target", required_argument, NULL, 't'},
		{"vus", required_argument, NULL, 'u'},
		{"duration", required_argument, NULL, 'd'},
		{"stages", required_argument, NULL, 's'},
		{"json", required_argument, NULL, 'j'},
		{"think", required_argument, NULL, OPT_THINK},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"batch", required_argument, NULL, OPT_BATCH},
		{"size", required_argument, NULL, OPT_SIZE},
		{"no-keys", no_argument, NULL, OPT_NO_KEYS},
		{"connections", required_argument, NULL, OPT_CONNECTIONS},
		{"url", required_argument, NULL, OPT_URL},
		{"db", required_argument, NULL, OPT_DB},
		{"dsn", required_argument, NULL, OPT_DSN},
		{"table", required_argument, NULL, OPT_TABLE},
		{"pool", required_argument, NULL, OPT_POOL},
		{"busy-timeout", required_argument, NULL, OPT_BUSY},
		{"prefix", required_argument, NULL, OPT_PREFIX},
		{"quiet", no_argument, NULL, OPT_QUIET},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	cli_env e = cli_global;
	load_opts o = {.target = LOAD_TARGET_SLUICE, .timeout_ms = 30000, .batch = 1, .size = 200,
	               .pool = 50, .busy_timeout_ms = -1};
	const char *stages = NULL, *json = NULL;
	int vus = -1;
	int64_t duration_ms = -1, v64;
	display dp = {0};
	int opt;

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "t:u:d:s:j:h", opts, NULL)) != -1) {
		if (cli_common_opt(&e, opt, optarg))
			continue;
		switch (opt) {
		case 't':
			if (strcmp(optarg, "sluice") == 0)
				o.target = LOAD_TARGET_SLUICE;
			else if (strcmp(optarg, "http") == 0)
				o.target = LOAD_TARGET_HTTP;
			else if (strcmp(optarg, "direct") == 0)
				o.target = LOAD_TARGET_DIRECT;
			else {
				cli_error("load", "bad --target '%s' (sluice, http or direct)", optarg);
				return 2;
			}
			break;
		case 'u':
			if (!parse_int(optarg, 1, 1000000, &vus)) {
				cli_error("load", "bad --vus '%s' (1 to 1000000)", optarg);
				return 2;
			}
			break;
		case 'd':
			if (!parse_ms(optarg, false, &duration_ms)) {
				cli_error("load", "bad --duration '%s' (e.g. 30s, 2m)", optarg);
				return 2;
			}
			break;
		case 's': stages = optarg; break;
		case 'j': json = optarg; break;
		case OPT_THINK:
			if (!parse_ms(optarg, true, &o.think_ms)) {
				cli_error("load", "bad --think '%s' (e.g. 100ms, 1s)", optarg);
				return 2;
			}
			break;
		case OPT_TIMEOUT:
			if (!parse_ms(optarg, false, &o.timeout_ms)) {
				cli_error("load", "bad --timeout '%s' (e.g. 5s, 30s)", optarg);
				return 2;
			}
			break;
		case OPT_BATCH:
			if (!parse_int(optarg, 1, 100000, &o.batch)) {
				cli_error("load", "bad --batch '%s' (1 to 100000)", optarg);
				return 2;
			}
			break;
		case OPT_SIZE:
			if (cfg_size_parse(optarg, &v64) != 0 || v64 < 0 || v64 > 64 * 1024 * 1024) {
				cli_error("load", "bad --size '%s' (bytes, e.g. 200, 4KiB; at most 64MiB)", optarg);
				return 2;
			}
			o.size = (size_t)v64;
			break;
		case OPT_NO_KEYS: o.no_keys = true; break;
		case OPT_CONNECTIONS:
			if (!parse_int(optarg, 1, 1000000, &o.connections)) {
				cli_error("load", "bad --connections '%s' (1 or more)", optarg);
				return 2;
			}
			break;
		case OPT_URL: o.url = optarg; break;
		case OPT_DB: o.db = optarg; break;
		case OPT_DSN: o.dsn = optarg; break;
		case OPT_TABLE: o.table = optarg; break;
		case OPT_POOL:
			if (!parse_int(optarg, 1, 4096, &o.pool)) {
				cli_error("load", "bad --pool '%s' (1 to 4096)", optarg);
				return 2;
			}
			break;
		case OPT_BUSY:
			if (!parse_ms(optarg, true, &o.busy_timeout_ms)) {
				cli_error("load", "bad --busy-timeout '%s' (e.g. 0, 100ms, 5s)", optarg);
				return 2;
			}
			break;
		case OPT_PREFIX: o.prefix = optarg; break;
		case OPT_QUIET: dp.quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		cli_error("load", "unexpected argument '%s'", argv[optind]);
		return 2;
	}

	load_stage flat, *st = NULL;
	if (stages != NULL) {
		char err[256];
		if (vus >= 0 || duration_ms >= 0) {
			cli_error("load", "give --stages, or --vus and --duration, not both");
			return 2;
		}
		if (cli_load_stages_parse(stages, &st, &o.nstages, err, sizeof(err)) != 0) {
			cli_error("load", "bad --stages: %s", err);
			return 2;
		}
		o.stages = st;
	} else {
		flat.target_vus = vus > 0 ? vus : 10;
		flat.duration_ms = duration_ms > 0 ? duration_ms : 10000;
		o.start_vus = flat.target_vus;
		o.stages = &flat;
		o.nstages = 1;
	}

	int status = cli_env_load(&e);
	if (status != 0) {
		free(st);
		return status;
	}
	o.queue = e.queue;
	o.broker = e.broker;
	char url[300];
	if (o.url == NULL && e.cfg->broker.http != NULL && e.cfg->broker.http[0] != '\0') {
		snprintf(url, sizeof(url), "http://%s", e.cfg->broker.http);
		o.url = url;
	}
	/* PostgreSQL: --dsn, --db postgres, or a postgres sink and no --db */
	const cfg_sink *sink = &e.cfg->worker.sink;
	bool pg_sink = sink->type == CFG_SINK_POSTGRES;
	if (o.dsn != NULL || (o.db != NULL && strcmp(o.db, "postgres") == 0) ||
	    (o.db == NULL && pg_sink)) {
		if (o.db != NULL && strcmp(o.db, "postgres") != 0) {
			cli_error("load", "--dsn goes with --db postgres, not a SQLite file");
			free(st);
			cli_env_fini(&e);
			return 2;
		}
		if (o.dsn == NULL && pg_sink) {
			o.dsn = sink->dsn;
			o.password_file = sink->password_file;
		}
		if (o.dsn == NULL) {
			cli_error("load", "--db postgres needs --dsn DSN (or a postgres worker.sink)");
			free(st);
			cli_env_fini(&e);
			return 2;
		}
		o.db = "postgres"; /* what the report shows: never the DSN, which may hold a password */
	}
	if (o.db == NULL)
		o.db = sink->path;
	if (o.table == NULL)
		o.table = e.cfg->worker.sink.table;
	if (o.busy_timeout_ms < 0)
		o.busy_timeout_ms = e.cfg->worker.sink.busy_timeout_ms;

	dp.tty = isatty(STDERR_FILENO);
	o.progress = progress;
	o.progress_arg = &dp;
	o.cancel = &interrupted;
	struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESETHAND}, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	load_result r;
	int rc = cli_load_run(&o, &r);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (dp.shown)
		fputc('\n', stderr);
	if (rc != LOAD_OK) {
		cli_error("load", "%s", r.error);
		status = rc == LOAD_E_INVALID ? 2 : 1;
		goto out;
	}
	bool json_stdout = json != NULL && strcmp(json, "-") == 0;
	cli_load_report(json_stdout ? stderr : stdout, &o, &r);
	if (json != NULL) {
		jbuf b;
		jbuf_init(&b);
		cli_load_json(&b, &o, &r);
		FILE *f = json_stdout ? stdout : fopen(json, "w");
		bool ok = !b.oom && f != NULL && fwrite(b.p, 1, b.len, f) == b.len;
		if (f != NULL && !json_stdout)
			ok = fclose(f) == 0 && ok;
		if (!ok) {
			cli_error("load", "cannot write %s", json);
			status = 1;
		}
		jbuf_fini(&b);
	}
out:
	cli_load_result_fini(&r);
	free(st);
	cli_env_fini(&e);
	return status;
}
