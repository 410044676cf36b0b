/* sluice stats: a table (or JSON) of every queue's figures; --watch
 * refreshes it and shows rates. */
#include "cli.h"

#include "clock.h"
#include "jbuf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: sluice stats [-q QUEUE] [--json] [--watch [SECONDS]]\n"
	        "\n"
	        "Shows each queue: ready (depth), delayed, in flight, dead letters, backlog\n"
	        "(ready + in flight), age of the oldest ready message, totals, and what the\n"
	        "workers and the supervisor last reported.\n"
	        "\n"
	        "  -q, --queue QUEUE   one queue only (default: all)\n"
	        "  -j, --json          JSON instead of a table\n"
	        "  -w, --watch [S]     refresh every S seconds (default 1), with rates\n"
	        "  -b, --broker URL    -c, --config FILE    -h, --help\n");
}

static int64_t
val(const sluice_queue_stats *q, const char *key)
{
	return sluice_stat_value(q->fields, q->nfields, key, -1);
}



/* {"broker":{...},"queues":[{"name":"q","depth":1,...},...]} */
static void
cli_stats_json(const sluice_stats *s, jbuf *out)
{
	jbuf_put(out, "{\"broker\":{", 11);
	for (size_t i = 0; i < s->nbroker; i++)
		jbuf_printf(out, "%s\"%s\":%lld", i ? "," : "", s->broker[i].key,
		            (long long)s->broker[i].value);
	jbuf_put(out, "},\"queues\":[", 12);
	for (size_t i = 0; i < s->nqueues; i++) {
		const sluice_queue_stats *q = &s->queues[i];
		jbuf_printf(out, "%s{\"name\":", i ? "," : "");
		jbuf_json_str(out, q->name, strlen(q->name));
		for (size_t k = 0; k < q->nfields; k++)
			jbuf_printf(out, ",\"%s\":%lld", q->fields[k].key, (long long)q->fields[k].value);
		int64_t age = val(q, "oldest_ready_age_ms");
		if (age >= 0)
			jbuf_printf(out, ",\"oldest_ready_age_seconds\":%.3f", (double)age / 1000.0);
		jbuf_put(out, "}", 1);
	}
	jbuf_put(out, "]}\n", 3);
}

static void
fmt_num(char *buf, size_t n, int64_t v)
{
	if (v < 0)
		snprintf(buf, n, "-");
	else if (v < 100000)
		snprintf(buf, n, "%lld", (long long)v);
	else if (v < 100000000)
		snprintf(buf, n, "%.1fk", (double)v / 1e3);
	else
		snprintf(buf, n, "%.1fM", (double)v / 1e6);
}

static void
print_table(const sluice_stats *s, const sluice_stats *prev, double secs)
{
	printf("%-24s %8s %8s %9s %7s %8s %8s %9s %9s %8s\n", "QUEUE", "READY", "DELAYED",
	       "IN_FLIGHT", "DEAD", "BACKLOG", "OLDEST", prev ? "ENQ/s" : "ENQUEUED",
	       prev ? "ACK/s" : "ACKED", "WORKERS");
	for (size_t i = 0; i < s->nqueues; i++) {
		const sluice_queue_stats *q = &s->queues[i];
		char f[10][48];
		fmt_num(f[0], 48, val(q, "depth"));
		fmt_num(f[1], 48, val(q, "delayed"));
		fmt_num(f[2], 48, val(q, "in_flight"));
		fmt_num(f[3], 48, val(q, "dead"));
		fmt_num(f[4], 48, val(q, "backlog"));
		int64_t age = val(q, "oldest_ready_age_ms");
		snprintf(f[5], 48, age <= 0 ? "-" : "%.1fs", (double)age / 1000.0);
		int64_t enq = val(q, "enqueued_total"), ack = val(q, "acked_total");
		const sluice_queue_stats *p = prev ? sluice_stats_queue(prev, q->name) : NULL;
		if (prev != NULL) {
			int64_t pe = p ? val(p, "enqueued_total") : 0, pa = p ? val(p, "acked_total") : 0;
			fmt_num(f[6], 48, (int64_t)((double)(enq - pe) / secs + 0.5));
			fmt_num(f[7], 48, (int64_t)((double)(ack - pa) / secs + 0.5));
		} else {
			fmt_num(f[6], 48, enq);
			fmt_num(f[7], 48, ack);
		}
		int64_t cur = val(q, "workers_current"), want = val(q, "workers_desired");
		if (cur >= 0)
			snprintf(f[8], 48, "%lld/%lld", (long long)cur, (long long)want);
		else
			fmt_num(f[8], 48, val(q, "sink_workers"));
		printf("%-24s %8s %8s %9s %7s %8s %8s %9s %9s %8s\n", q->name, f[0], f[1], f[2], f[3],
		       f[4], f[5], f[6], f[7], f[8]);
	}
	if (s->nqueues == 0)
		printf("(no queues yet)\n");
}

int
cli_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONG,
		{"json", no_argument, NULL, 'j'},
		{"watch", optional_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	cli_env e = cli_global;
	bool json = false, watch = false;
	double every = 1.0;
	int opt, status;

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "jw::h", opts, NULL)) != -1) {
		if (cli_common_opt(&e, opt, optarg))
			continue;
		switch (opt) {
		case 'j': json = true; break;
		case 'w':
			watch = true;
			if (optarg != NULL && (every = atof(optarg)) <= 0) {
				cli_error("stats", "bad --watch interval '%s'", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		cli_error("stats", "unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return 2;
	}
	const char *only = e.queue; /* stats shows every queue unless -q */
	if ((status = cli_env_load(&e)) != 0)
		return status;
	sluice_client *c;
	if (cli_connect(&e, &c) != 0) {
		cli_env_fini(&e);
		return 1;
	}
	sluice_stats *prev = NULL;
	int64_t prev_ms = 0;
	bool tty = isatty(STDOUT_FILENO);
	status = 0;
	do {
		sluice_stats *s;
		int rc = sluice_stats_get(c, only, &s);
		if (rc != 0) {
			cli_error("stats", "%s: %s", sluice_strerror(rc), sluice_errmsg());
			status = 1;
			break;
		}
		int64_t now = clk_mono_ms();
		if (json) {
			jbuf out;
			jbuf_init(&out);
			cli_stats_json(s, &out);
			fwrite(out.p, 1, out.len, stdout);
			jbuf_fini(&out);
		} else {
			if (watch && tty)
				printf("\033[H\033[2J");
			print_table(s, prev, prev ? (double)(now - prev_ms) / 1000.0 : 1.0);
		}
		fflush(stdout);
		sluice_stats_free(prev);
		prev = s;
		prev_ms = now;
		if (watch)
			clk_sleep_ms((int64_t)(every * 1000));
	} while (watch);
	sluice_stats_free(prev);
	sluice_close(c);
	cli_env_fini(&e);
	return status;
}
