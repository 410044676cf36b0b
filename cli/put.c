/* sluice put: enqueue messages given as arguments, or one per stdin line,
 * sent in batches; prints each acknowledged id on its own line. */
#include "cli.h"

#include "codec.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX 500
#define BATCH_BYTES (512 * 1024)

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: sluice put [-q QUEUE] [--key K] [--delay D] [--priority P] [MESSAGE...]\n"
	        "\n"
	        "Enqueues each MESSAGE, or without any, each line of standard input, in\n"
	        "batches. Prints the id of every acknowledged message, one per line, in\n"
	        "order; exits 1 if any was not acknowledged, after printing those that were.\n"
	        "\n"
	        "  -q, --queue QUEUE   queue (default: worker.queue, \"default\")\n"
	        "  -k, --key K         idempotency key; with several messages, the i-th\n"
	        "                      (from 1) gets K-i. A repeated key prints the first id.\n"
	        "      --delay D       invisible for D (e.g. 500ms, 10s)\n"
	        "      --priority P    higher is leased first (default 0)\n"
	        "  -b, --broker URL    -c, --config FILE    -h, --help\n");
}

typedef struct batch {
	sluice_msg_in msgs[BATCH_MAX];
	char *lines[BATCH_MAX]; /* owned, when read from stdin */
	char keys[BATCH_MAX][256];
	uint64_t ids[BATCH_MAX];
	size_t n;
	size_t bytes;
} batch;

typedef struct put_opts {
	const char *key;
	uint32_t delay_ms;
	int32_t priority;
	size_t seq; /* messages so far, for K-i keys */
	bool many;  /* more than one message: keys get a suffix */
} put_opts;

static void
add(batch *b, put_opts *o, const char *text, size_t len)
{
	sluice_msg_in *m = &b->msgs[b->n];
	memset(m, 0, sizeof(*m));
	m->payload = text;
	m->len = len;
	m->delay_ms = o->delay_ms;
	m->priority = o->priority;
	o->seq++;
	if (o->key != NULL) {
		int k = o->many ? snprintf(b->keys[b->n], sizeof(b->keys[b->n]), "%s-%zu", o->key, o->seq)
		                : snprintf(b->keys[b->n], sizeof(b->keys[b->n]), "%s", o->key);
		m->key = b->keys[b->n];
		m->keylen = k < 255 ? (size_t)k : 255;
	}
	b->bytes += len;
	b->n++;
}

/* Sends the batch and prints its ids; false (after saying why) if the
 * broker did not acknowledge it. */
static bool
flush(sluice_client *c, const char *queue, batch *b, size_t *acked)
{
	if (b->n == 0)
		return true;
	int rc = sluice_enqueue(c, queue, b->msgs, b->n, b->ids, NULL);
	if (rc != 0) {
		cli_error("put", "%zu message%s not acknowledged: %s (%s)%s", b->n, b->n == 1 ? "" : "s",
		          sluice_strerror(rc), sluice_errmsg(),
		          rc == PROTO_ERR_QUEUE_FULL ? "; retry later" : "");
		return false;
	}
	for (size_t i = 0; i < b->n; i++)
		printf("%llu\n", (unsigned long long)b->ids[i]);
	fflush(stdout);
	*acked += b->n;
	for (size_t i = 0; i < b->n; i++) {
		free(b->lines[i]);
		b->lines[i] = NULL;
	}
	b->n = 0;
	b->bytes = 0;
	return true;
}

int
cli_put(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONG,
		{"key", required_argument, NULL, 'k'},
		{"delay", required_argument, NULL, 'D'},
		{"priority", required_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	cli_env e = cli_global;
	put_opts o = {0};
	int opt, status = 0;
	int64_t v;

	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "k:h", opts, NULL)) != -1) {
		if (cli_common_opt(&e, opt, optarg))
			continue;
		switch (opt) {
		case 'k': o.key = optarg; break;
		case 'D':
			if (cfg_duration_parse(optarg, &v) != 0 || v < 0 || v > 0xFFFFFFFFLL) {
				cli_error("put", "bad --delay '%s' (e.g. 500ms, 10s, 5m)", optarg);
				return 2;
			}
			o.delay_ms = (uint32_t)v;
			break;
		case 'P': {
			char *end;
			long p = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || p < INT32_MIN || p > INT32_MAX) {
				cli_error("put", "bad --priority '%s' (a whole number)", optarg);
				return 2;
			}
			o.priority = (int32_t)p;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if ((status = cli_env_load(&e)) != 0)
		return status;
	if (!cfg_queue_name_valid(e.queue, strlen(e.queue))) {
		cli_error("put", "bad queue name '%s': use 1-128 of A-Z a-z 0-9 . _ -", e.queue);
		cli_env_fini(&e);
		return 2;
	}
	sluice_client *c;
	if (cli_connect(&e, &c) != 0) {
		cli_env_fini(&e);
		return 1;
	}
	batch *b = calloc(1, sizeof(*b));
	size_t acked = 0, total = 0;
	bool ok = b != NULL;
	if (b == NULL)
		cli_error("put", "out of memory");
	if (ok && optind < argc) {
		o.many = argc - optind > 1;
		for (int i = optind; i < argc && ok; i++) {
			size_t len = strlen(argv[i]);
			if (b->n == BATCH_MAX || (b->n > 0 && b->bytes + len > BATCH_BYTES))
				ok = flush(c, e.queue, b, &acked);
			add(b, &o, argv[i], len);
			total++;
		}
	} else if (ok) {
		o.many = true;
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;
		while (ok && (len = getline(&line, &cap, stdin)) >= 0) {
			if (len > 0 && line[len - 1] == '\n')
				line[--len] = '\0';
			if (b->n == BATCH_MAX || (b->n > 0 && b->bytes + (size_t)len > BATCH_BYTES))
				ok = flush(c, e.queue, b, &acked);
			if (!ok)
				break;
			b->lines[b->n] = line; /* the batch owns it now */
			add(b, &o, line, (size_t)len);
			total++;
			line = NULL;
			cap = 0;
		}
		free(line);
		if (ok && total == 1 && o.key != NULL) { /* one line: the key as given */
			snprintf(b->keys[0], sizeof(b->keys[0]), "%s", o.key);
			b->msgs[0].keylen = strlen(b->keys[0]);
		}
	}
	if (ok)
		ok = flush(c, e.queue, b, &acked);
	if (!ok) {
		/* count what is left on stdin, so the user knows how much was lost */
		if (optind >= argc) {
			char *line = NULL;
			size_t cap = 0;
			while (getline(&line, &cap, stdin) >= 0)
				total++;
			free(line);
		}
		cli_error("put", "%zu of %zu messages acknowledged", acked, total);
		status = 1;
	}
	if (b != NULL)
		for (size_t i = 0; i < b->n; i++)
			free(b->lines[i]);
	free(b);
	sluice_close(c);
	cli_env_fini(&e);
	return status;
}
