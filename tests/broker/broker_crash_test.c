/* broker_crash_test: producers keep enqueuing while the broker is killed
 * with SIGKILL (or stopped with SIGTERM) and restarted; every message a
 * producer saw acknowledged must be there exactly once. */
#include "fixture.h"
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define Q "crash"
#define PRODUCERS 8
#define MAX_PER 200000

typedef struct producer {
	int index;
	volatile int *stop;
	long sent;        /* messages acknowledged, 0..sent-1 */
	long retries;
} producer;

/* Each message has a user key equal to its payload, and a failed enqueue is
 * retried with the same key until it is acknowledged: across broker
 * crashes, every message ends up stored exactly once. */
static void *
produce(void *arg)
{
	producer *p = arg;
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 3000};
	if (sluice_open(&c, fx.url, &o) != 0)
		return NULL;
	while (!*p->stop && p->sent < MAX_PER) {
		char text[64];
		int len = snprintf(text, sizeof(text), "t%d-%ld", p->index, p->sent);
		sluice_msg_in m = {.payload = text, .len = (size_t)len, .key = text, .keylen = (size_t)len};
		uint64_t id;
		if (sluice_enqueue(c, Q, &m, 1, &id, NULL) == 0) {
			p->sent++;
		} else {
			p->retries++;
			usleep(20000);
		}
	}
	/* the last message may be mid-retry: finish it */
	while (p->sent < MAX_PER) {
		char text[64];
		int len = snprintf(text, sizeof(text), "t%d-%ld", p->index, p->sent);
		sluice_msg_in m = {.payload = text, .len = (size_t)len, .key = text, .keylen = (size_t)len};
		uint64_t id;
		if (sluice_enqueue(c, Q, &m, 1, &id, NULL) == 0) {
			p->sent++;
			break;
		}
		usleep(50000);
		if (*p->stop > 1)
			break;
	}
	sluice_close(c);
	return NULL;
}

/* Leases everything and checks every acknowledged payload is there once. */
static void
audit(producer *ps, int n)
{
	sluice_client *c = fx_client();
	long *seen[PRODUCERS];
	long total = 0, extra = 0, dups = 0, missing = 0;
	for (int i = 0; i < n; i++)
		seen[i] = calloc((size_t)ps[i].sent + 1, sizeof(long));
	for (;;) {
		sluice_batch *b;
		CHECK(sluice_lease(c, Q, 5000, 600000, 0, &b) == 0);
		if (b->count == 0) {
			sluice_batch_free(b);
			break;
		}
		for (size_t k = 0; k < b->count; k++) {
			int t;
			long j;
			char text[64];
			snprintf(text, sizeof(text), "%.*s", (int)b->msgs[k].len, (const char *)b->msgs[k].payload);
			if (sscanf(text, "t%d-%ld", &t, &j) != 2 || t < 0 || t >= n) {
				extra++;
				continue;
			}
			if (j >= ps[t].sent)
				extra++; /* stored but never acknowledged: allowed, once */
			else
				seen[t][j]++;
			total++;
		}
		sluice_batch_free(b);
	}
	long acked = 0;
	for (int i = 0; i < n; i++) {
		acked += ps[i].sent;
		for (long j = 0; j < ps[i].sent; j++) {
			if (seen[i][j] == 0)
				missing++;
			else if (seen[i][j] > 1)
				dups++;
		}
		free(seen[i]);
	}
	printf("  acknowledged %ld, stored %ld, missing %ld, duplicated %ld, unacknowledged extra %ld\n",
	       acked, total, missing, dups, extra);
	CHECK(acked > 0);
	CHECK_EQ(missing, 0);
	CHECK_EQ(dups, 0);
	CHECK(extra <= n); /* at most the one in flight per producer */
}

static void
run(int sig, int cycles)
{
	fx_config(NULL);
	pid_t b = fx_broker("broker.log");
	volatile int stop = 0;
	producer ps[PRODUCERS];
	pthread_t t[PRODUCERS];
	for (int i = 0; i < PRODUCERS; i++) {
		ps[i] = (producer){.index = i, .stop = &stop};
		pthread_create(&t[i], NULL, produce, &ps[i]);
	}
	for (int k = 0; k < cycles; k++) {
		usleep(300000 + (useconds_t)(rand() % 700) * 1000);
		int64_t t0 = th_now_ms();
		int status = th_stop(b, sig, 15000);
		if (sig == SIGTERM) {
			CHECK(WIFEXITED(status));
			CHECK_EQ(WEXITSTATUS(status), 0);
			printf("  SIGTERM: clean exit in %lld ms\n", (long long)(th_now_ms() - t0));
		}
		b = fx_broker(th_fmt("broker%d.log", k + 1));
	}
	usleep(500000);
	stop = 1;
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);
	long retries = 0;
	for (int i = 0; i < PRODUCERS; i++)
		retries += ps[i].retries;
	printf("  %d restarts, %ld retried enqueues\n", cycles, retries);
	audit(ps, PRODUCERS);
}

static void
kill9_under_load_loses_nothing(void)
{
	run(SIGKILL, (int)th_scaled(5));
}

static void
sigterm_under_load_is_clean(void)
{
	run(SIGTERM, 2);
}

static const th_case cases[] = {
	TH_CASE(kill9_under_load_loses_nothing),
	TH_CASE(sigterm_under_load_is_clean),
	{NULL, NULL},
};

TH_MAIN(cases)
