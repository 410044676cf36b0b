/* sluice peek, dlq and purge: looking at and cleaning up queues. */
#include "cli.h"

#include "codec.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One line per message: id, attempt, enqueue time, payload (escaped). */
static void
print_msgs(const sluice_batch *b)
{
	for (size_t i = 0; i < b->count; i++) {
		const sluice_msg *m = &b->msgs[i];
		time_t t = (time_t)(m->enqueued_ms / 1000);
		struct tm tm;
		char when[32];
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%llu\tattempt %u\t%s\t", (unsigned long long)m->id, m->attempt, when);
		size_t shown = m->len > 200 ? 200 : m->len;
		for (size_t k = 0; k < shown; k++) {
			unsigned char ch = m->payload[k];
			if (isprint(ch) && ch != '\\')
				putchar(ch);
			else
				printf("\\x%02x", ch);
		}
		if (shown < m->len)
			printf("... (%zu bytes)", m->len);
		putchar('\n');
	}
}

/* Parses the options shared by these commands; returns the index of the
 * first operand, or -1 (status in *status). */
static int
parse(cli_env *e, int argc, char **argv, long *count, const char *usage_text, int *status)
{
	static const struct option opts[] = {
		CLI_COMMON_LONG,
		{"count", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "n:h", opts, NULL)) != -1) {
		if (cli_common_opt(e, opt, optarg))
			continue;
		switch (opt) {
		case 'n': {
			char *end;
			*count = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || *count < 0 || *count > 1000) {
				cli_error(argv[0], "bad -n '%s' (0-1000)", optarg);
				*status = 2;
				return -1;
			}
			break;
		}
		case 'h': fputs(usage_text, stdout); *status = 0; return -1;
		default: fputs(usage_text, stderr); *status = 2; return -1;
		}
	}
	if ((*status = cli_env_load(e)) != 0)
		return -1;
	return optind;
}

static const char peek_usage[] =
	"usage: sluice peek [QUEUE] [-n N]\n"
	"\n"
	"Shows the next N (default 10) ready messages of QUEUE (default: -q or\n"
	"worker.queue) in the order they would be leased, without leasing them.\n"
	"Use QUEUE.dead for its dead letters.\n"
	"  -b, --broker URL    -c, --config FILE    -h, --help\n";

static int
peek_queue(cli_env *e, const char *cmd, const char *queue, long n)
{
	sluice_client *c;
	sluice_batch *b;
	if (cli_connect(e, &c) != 0)
		return 1;
	int rc = sluice_peek(c, queue, (uint32_t)n, &b);
	if (rc == PROTO_ERR_UNKNOWN_QUEUE && strcmp(cmd, "dlq") == 0) {
		sluice_close(c); /* no dead-letter queue yet: nothing to list */
		return 0;
	}
	if (rc != 0) {
		cli_error(cmd, "%s: %s", sluice_strerror(rc), sluice_errmsg());
		sluice_close(c);
		return 1;
	}
	print_msgs(b);
	sluice_batch_free(b);
	sluice_close(c);
	return 0;
}

int
cli_peek(int argc, char **argv)
{
	cli_env e = cli_global;
	long n = 10;
	int status, first = parse(&e, argc, argv, &n, peek_usage, &status);
	if (first < 0)
		return status;
	if (argc - first > 1) {
		cli_error("peek", "one queue at most");
		fputs(peek_usage, stderr);
		cli_env_fini(&e);
		return 2;
	}
	status = peek_queue(&e, "peek", first < argc ? argv[first] : e.queue, n);
	cli_env_fini(&e);
	return status;
}

static const char dlq_usage[] =
	"usage: sluice dlq list|requeue|purge QUEUE [-n N]\n"
	"\n"
	"  list      show up to N (default 10) dead letters of QUEUE (its QUEUE.dead)\n"
	"  requeue   move them back to QUEUE, ready at once, attempts reset\n"
	"            (all of them, or N with -n)\n"
	"  purge     delete every dead letter of QUEUE\n"
	"  -b, --broker URL    -c, --config FILE    -h, --help\n";

int
cli_dlq(int argc, char **argv)
{
	cli_env e = cli_global;
	long n = -1;
	int status, first = parse(&e, argc, argv, &n, dlq_usage, &status);
	if (first < 0)
		return status;
	if (argc - first != 2) {
		cli_error("dlq", argc - first < 2 ? "missing %s" : "too many arguments%s",
		          argc - first == 0 ? "action and queue" : argc - first == 1 ? "queue" : "");
		fputs(dlq_usage, stderr);
		cli_env_fini(&e);
		return 2;
	}
	const char *action = argv[first], *queue = argv[first + 1];
	char dead[160];
	snprintf(dead, sizeof(dead), "%s.dead", queue);
	sluice_client *c = NULL;
	uint64_t count;
	int rc;
	if (strcmp(action, "list") == 0) {
		status = peek_queue(&e, "dlq", dead, n < 0 ? 10 : n);
	} else if (strcmp(action, "requeue") == 0 || strcmp(action, "purge") == 0) {
		if (cli_connect(&e, &c) != 0) {
			status = 1;
		} else {
			bool requeue = action[0] == 'r';
			rc = requeue ? sluice_requeue(c, queue, n < 0 ? 0 : (uint32_t)n, &count)
			             : sluice_purge(c, dead, &count);
			if (rc == PROTO_ERR_UNKNOWN_QUEUE && !requeue) {
				rc = 0; /* no dead-letter queue: nothing to purge */
				count = 0;
			}
			if (rc != 0) {
				cli_error("dlq", "%s: %s", sluice_strerror(rc), sluice_errmsg());
				status = 1;
			} else {
				printf("%s %llu dead letter%s of %s\n", requeue ? "requeued" : "purged",
				       (unsigned long long)count, count == 1 ? "" : "s", queue);
			}
		}
	} else {
		cli_error("dlq", "unknown action '%s' (list, requeue or purge)", action);
		fputs(dlq_usage, stderr);
		status = 2;
	}
	sluice_close(c);
	cli_env_fini(&e);
	return status;
}

static const char purge_usage[] =
	"usage: sluice purge QUEUE\n"
	"\n"
	"Deletes every message of QUEUE that is not leased (ready and delayed).\n"
	"  -b, --broker URL    -c, --config FILE    -h, --help\n";

int
cli_purge(int argc, char **argv)
{
	cli_env e = cli_global;
	long n = 0;
	int status, first = parse(&e, argc, argv, &n, purge_usage, &status);
	if (first < 0)
		return status;
	if (argc - first != 1) {
		cli_error("purge", argc == first ? "missing queue" : "one queue at most");
		fputs(purge_usage, stderr);
		cli_env_fini(&e);
		return 2;
	}
	sluice_client *c;
	uint64_t count;
	if (cli_connect(&e, &c) != 0) {
		cli_env_fini(&e);
		return 1;
	}
	int rc = sluice_purge(c, argv[first], &count);
	if (rc != 0) {
		cli_error("purge", "%s: %s", sluice_strerror(rc), sluice_errmsg());
		status = 1;
	} else {
		printf("purged %llu message%s of %s\n", (unsigned long long)count, count == 1 ? "" : "s",
		       argv[first]);
	}
	sluice_close(c);
	cli_env_fini(&e);
	return status;
}
