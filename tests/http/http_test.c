/* http_test: the broker's HTTP API and /metrics, driven with curl against
 * the real broker: every endpoint and status, the batch form, the bearer
 * token, Prometheus' own checker, many concurrent clients and slow ones. */
#include "fixture.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

/* http://fx.http + path; lives until the case ends. */
static const char *
url(const char *path)
{
	return th_fmt("http://%s%s", fx.http, path);
}

/* Runs curl with args; returns the HTTP status (0: no answer). The body
 * goes to th_path("body.json"), the headers to th_path("headers.txt"). */
static int
curl(const char *args)
{
	char *out;
	int rc = th_sh(&out, "curl -s -m 20 -o body.json -D headers.txt -w '%%{http_code}' %s", args);
	if (rc != 0 && rc != 28 && rc != 52 && rc != 56 && rc != 7)
		th_fail(__FILE__, __LINE__, "curl %s: exit %d", args, rc);
	return atoi(out);
}

static const char *
body(void)
{
	const char *b = th_read(th_path("body.json"));
	return b ? b : "";
}

static const char *
headers(void)
{
	const char *h = th_read(th_path("headers.txt"));
	return h ? h : "";
}

/* Evaluates a Python expression over the JSON document d of file; returns
 * what it prints, without the newline. */
static const char *
json_at(const char *file, const char *expr)
{
	char *out;
	int rc = th_sh(&out, "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(%s)' %s",
	               expr, file);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "python3: %s on %s failed", expr, file);
	size_t n = strlen(out);
	while (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
	return out;
}

static const char *
json(const char *expr)
{
	return json_at(th_path("body.json"), expr);
}

static long
post(const char *queue, const char *data_file, const char *extra)
{
	return curl(th_fmt("-X POST --data-binary @%s %s '%s'", data_file, extra ? extra : "",
	                   url(th_fmt("/v1/queues/%s/messages", queue))));
}

static int
tcp_connect(void)
{
	int fd = th_dial_tcp(fx.http);
	CHECK(fd >= 0);
	return fd;
}

static void
close_fd(void *arg)
{
	close((int)(intptr_t)arg);
}

static pid_t
start(const fx_cfg *extra)
{
	fx_config(extra);
	return fx_broker("broker.log");
}

/* SIGTERM: the broker exits 0 (in the sanitizer build: no leak, either). */
static void
stop_clean(pid_t b)
{
	int status = th_stop(b, SIGTERM, 10000);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

/* ---- cases ---- */

static void
enqueue_answers_201_with_the_id(void)
{
	start(NULL);
	sluice_client *c = fx_client();
	/* any bytes: a NUL, a newline, invalid UTF-8 */
	th_sh(NULL, "printf 'a\\000b\\nc\\377' > msg.bin");
	CHECK_EQ(post("jobs", "msg.bin", NULL), 201);
	CHECK_CONTAINS(headers(), "Content-Type: application/json");
	long id = atol(json("d[\"id\"]"));
	CHECK(id > 0);
	CHECK_STR(json("\"duplicate\" in d"), "False");
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 1);

	sluice_batch *b;
	CHECK(sluice_lease(c, "jobs", 1, 30000, 0, &b) == 0);
	CHECK_EQ(b->count, 1);
	CHECK_EQ(b->msgs[0].id, id);
	CHECK_EQ(b->msgs[0].len, 6);
	CHECK(memcmp(b->msgs[0].payload, "a\0b\nc\377", 6) == 0);
	sluice_batch_free(b);

	/* an empty body is an empty message */
	CHECK_EQ(curl(th_fmt("-X POST '%s'", url("/v1/queues/jobs/messages"))), 201);
	CHECK(atol(json("d[\"id\"]")) > id);
}

static void
idempotency_key_answers_200_duplicate(void)
{
	start(NULL);
	sluice_client *c = fx_client();
	th_write("m.txt", "once");
	CHECK_EQ(post("jobs", "m.txt", "-H 'Idempotency-Key: order-17'"), 201);
	const char *id = json("d[\"id\"]");
	CHECK_EQ(post("jobs", "m.txt", "-H 'Idempotency-Key: order-17'"), 200);
	CHECK_STR(json("d[\"id\"]"), id);
	CHECK_STR(json("d[\"duplicate\"]"), "True");
	CHECK_EQ(post("jobs", "m.txt", "-H 'Idempotency-Key: order-18'"), 201);
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 2);
	/* a key of 256 bytes is refused */
	char key[300];
	memset(key, 'k', 256);
	key[256] = '\0';
	CHECK_EQ(post("jobs", "m.txt", th_fmt("-H 'Idempotency-Key: %s'", key)), 400);
}

static void
delay_and_priority_parameters(void)
{
	start(NULL);
	sluice_client *c = fx_client();
	th_write("m.txt", "x");
	CHECK_EQ(curl(th_fmt("-X POST --data-binary @m.txt '%s'",
	                     url("/v1/queues/jobs/messages?delay=10s"))), 201);
	CHECK_EQ(curl(th_fmt("-X POST --data-binary @m.txt '%s'",
	                     url("/v1/queues/jobs/messages?delay=1"))), 201);
	CHECK_EQ(curl(th_fmt("-X POST --data-binary low '%s'", url("/v1/queues/jobs/messages"))), 201);
	CHECK_EQ(curl(th_fmt("-X POST --data-binary high '%s'",
	                     url("/v1/queues/jobs/messages?priority=5"))), 201);
	CHECK_EQ(fx_stat(c, "jobs", "delayed"), 2);
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 2);
	sluice_batch *b;
	CHECK(sluice_lease(c, "jobs", 1, 30000, 0, &b) == 0);
	CHECK_EQ(b->count, 1);
	CHECK(b->msgs[0].len == 4 && memcmp(b->msgs[0].payload, "high", 4) == 0);
	CHECK_EQ(b->msgs[0].priority, 5);
	sluice_batch_free(b);

	/* malformed parameters */
	static const char *const bad[] = {"delay=abc", "delay=-5s", "priority=x", "priority=99999999999",
	                                  "colour=red", "delay=%zz"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(curl(th_fmt("-X POST --data-binary @m.txt '%s'",
		                     url(th_fmt("/v1/queues/jobs/messages?%s", bad[i])))), 400);
		CHECK(strlen(json("d[\"error\"]")) > 0);
	}
	CHECK_EQ(fx_stat(c, "jobs", "enqueued_total"), 4);
}

static void
queue_full_answers_429_with_retry_after(void)
{
	start(&(fx_cfg){.queue_defaults = "max_depth: 3"});
	th_write("m.txt", "x");
	for (int i = 0; i < 3; i++)
		CHECK_EQ(post("small", "m.txt", NULL), 201);
	CHECK_EQ(post("small", "m.txt", NULL), 429);
	CHECK_CONTAINS(headers(), "Retry-After: 1");
	CHECK_CONTAINS(json("d[\"error\"]"), "full");
	/* a batch that would pass the limit is refused whole */
	CHECK_EQ(curl(th_fmt("-X POST --data-binary x '%s'", url("/v1/queues/other/messages:batch"))),
	         201);
	th_write("three.txt", "a\nb\nc\n");
	CHECK_EQ(curl(th_fmt("-X POST --data-binary @three.txt '%s'",
	                     url("/v1/queues/other/messages:batch"))), 429);
	CHECK_EQ(fx_stat(fx_client(), "other", "depth"), 1);
}

static void
bad_requests_get_4xx_in_json(void)
{
	pid_t broker = start(NULL);
	sluice_client *c = fx_client();
	th_write("m.txt", "x");
	/* a bad queue name, URL-decoded first */
	CHECK_EQ(post("bad%20name%21", "m.txt", NULL), 400);
	CHECK_CONTAINS(json("d[\"error\"]"), "bad queue name 'bad name!'");
	CHECK_CONTAINS(headers(), "Content-Type: application/json");
	CHECK_EQ(post("a%2Fb", "m.txt", NULL), 400);
	CHECK_EQ(post("bad%zzname", "m.txt", NULL), 400);
	char longname[200];
	memset(longname, 'q', 129);
	longname[129] = '\0';
	CHECK_EQ(post(longname, "m.txt", NULL), 400);
	/* an encoded good name is fine */
	CHECK_EQ(post("jo%62s", "m.txt", NULL), 201);
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 1);

	/* unknown paths and queues */
	CHECK_EQ(curl(th_fmt("'%s'", url("/nothing/here"))), 404);
	CHECK(strlen(json("d[\"error\"]")) > 0);
	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues/jobs/else"))), 404);
	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues/nope"))), 404);
	CHECK_CONTAINS(json("d[\"error\"]"), "nope");

	/* wrong methods */
	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues/jobs/messages"))), 405);
	CHECK_CONTAINS(headers(), "Allow: POST");
	CHECK_EQ(curl(th_fmt("-X DELETE '%s'", url("/v1/queues/jobs"))), 405);
	CHECK_CONTAINS(headers(), "Allow: GET, HEAD");
	CHECK_EQ(curl(th_fmt("-X POST --data-binary x '%s'", url("/metrics"))), 405);
	CHECK_EQ(curl(th_fmt("-X PUT '%s'", url("/healthz"))), 405);

	/* a body without a length */
	CHECK_EQ(curl(th_fmt("-X POST -H 'Transfer-Encoding: chunked' --data-binary @m.txt '%s'",
	                     url("/v1/queues/jobs/messages"))), 411);
	/* none of it hurt: the queue is as it was and the broker answers */
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 1);
	CHECK_EQ(post("jobs", "m.txt", NULL), 201);
	stop_clean(broker);
}

static void
too_large_answers_413(void)
{
	pid_t broker = start(&(fx_cfg){.broker = "max_message_bytes: 1000"});
	sluice_client *c = fx_client();
	th_sh(NULL, "head -c 1000 /dev/zero > ok.bin; head -c 1001 /dev/zero > big.bin; "
	            "head -c 300000 /dev/zero > huge.bin");
	CHECK_EQ(post("jobs", "ok.bin", NULL), 201);
	CHECK_EQ(post("jobs", "big.bin", NULL), 413);
	CHECK_CONTAINS(json("d[\"error\"]"), "limit is 1000");
	/* with and without 100-continue */
	CHECK_EQ(post("jobs", "huge.bin", "-H 'Expect: 100-continue'"), 413);
	CHECK_EQ(post("jobs", "huge.bin", "-H 'Expect:'"), 413);
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 1);

	/* the oversized body is read and dropped: the same connection goes on */
	char *out;
	CHECK(th_sh(&out, "curl -s -m 20 -o /dev/null -w '%%{http_code} %%{num_connects}\\n' "
	                  "--data-binary @big.bin '%s' --next -o /dev/null -w '%%{http_code} %%{num_connects}\\n' "
	                  "--data-binary @ok.bin '%s'",
	            url("/v1/queues/jobs/messages"), url("/v1/queues/jobs/messages")) == 0);
	CHECK_STR(out, "413 1\n201 0\n");
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 2);
	stop_clean(broker);
}

static void
batch_returns_ids_in_order_all_or_none(void)
{
	pid_t broker = start(&(fx_cfg){.broker = "max_message_bytes: 1000"});
	sluice_client *c = fx_client();
	th_write("batch.txt", "first\nsecond\n\nfourth\n");
	CHECK_EQ(curl(th_fmt("-X POST --data-binary @batch.txt '%s'",
	                     url("/v1/queues/jobs/messages:batch"))), 201);
	CHECK_STR(json("len(d[\"ids\"])"), "4");
	CHECK_STR(json("d[\"ids\"] == sorted(d[\"ids\"]) and len(set(d[\"ids\"])) == 4"), "True");
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 4);
	sluice_batch *b;
	CHECK(sluice_peek(c, "jobs", 10, &b) == 0);
	CHECK_EQ(b->count, 4);
	CHECK(b->msgs[0].len == 5 && memcmp(b->msgs[0].payload, "first", 5) == 0);
	CHECK(b->msgs[1].len == 6 && memcmp(b->msgs[1].payload, "second", 6) == 0);
	CHECK_EQ(b->msgs[2].len, 0);
	CHECK(b->msgs[3].len == 6 && memcmp(b->msgs[3].payload, "fourth", 6) == 0);
	CHECK_EQ(b->msgs[0].id, atol(json("d[\"ids\"][0]")));
	CHECK_EQ(b->msgs[3].id, atol(json("d[\"ids\"][3]")));
	sluice_batch_free(b);

	/* without a trailing newline */
	CHECK_EQ(curl(th_fmt("-X POST --data-binary 'x\ny' '%s'", url("/v1/queues/jobs/messages:batch"))),
	         201);
	CHECK_STR(json("len(d[\"ids\"])"), "2");

	/* one payload too large: nothing stored */
	th_sh(NULL, "{ echo a; head -c 1001 /dev/zero | tr '\\0' z; echo; echo c; } > onebig.txt");
	CHECK_EQ(curl(th_fmt("-X POST --data-binary @onebig.txt '%s'",
	                     url("/v1/queues/jobs/messages:batch"))), 413);
	CHECK_CONTAINS(json("d[\"error\"]"), "message 2");
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 6);

	/* more items than one frame holds: 413, nothing stored */
	th_sh(NULL, "seq 1 20000 | sed s/.*/x/ > many.txt");
	CHECK_EQ(curl(th_fmt("-X POST --data-binary @many.txt '%s'",
	                     url("/v1/queues/jobs/messages:batch"))), 413);
	CHECK_CONTAINS(json("d[\"error\"]"), "smaller batches");
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 6);

	/* an empty batch is a bad request; a keyed batch is stored once */
	CHECK_EQ(curl(th_fmt("-X POST '%s'", url("/v1/queues/jobs/messages:batch"))), 400);
	th_write("two.txt", "p\nq\n");
	CHECK_EQ(curl(th_fmt("-X POST -H 'Idempotency-Key: b1' --data-binary @two.txt '%s'",
	                     url("/v1/queues/jobs/messages:batch"))), 201);
	const char *ids = json("d[\"ids\"]");
	CHECK_EQ(curl(th_fmt("-X POST -H 'Idempotency-Key: b1' --data-binary @two.txt '%s'",
	                     url("/v1/queues/jobs/messages:batch"))), 200);
	CHECK_STR(json("d[\"ids\"]"), ids);
	CHECK_EQ(fx_stat(c, "jobs", "depth"), 8);
	stop_clean(broker);
}

static void
stats_json_has_the_documented_fields(void)
{
	pid_t broker = start(&(fx_cfg){.queue_defaults = "max_depth: 100"});
	sluice_client *c = fx_client();
	CHECK_EQ(fx_put(c, "jobs", "m", 0, 5, 5), 5);
	CHECK_EQ(fx_put(c, "mail", "m", 0, 1, 1), 1);
	sluice_batch *b;
	CHECK(sluice_lease(c, "jobs", 2, 30000, 0, &b) == 0);
	CHECK_EQ(b->count, 2);
	sluice_batch_free(b);

	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues/jobs"))), 200);
	CHECK_CONTAINS(headers(), "Content-Type: application/json");
	CHECK_STR(json("[k for k in (\"name\", \"depth\", \"in_flight\", \"delayed\", \"dead\", "
	               "\"backlog\", \"oldest_ready_age_seconds\", \"max_depth\", \"enqueued_total\", "
	               "\"acked_total\", \"nacked_total\", \"expired_total\", \"dead_lettered_total\") "
	               "if k not in d]"),
	          "[]");
	CHECK_STR(json("d[\"name\"]"), "jobs");
	CHECK_STR(json("d[\"depth\"]"), "3");
	CHECK_STR(json("d[\"in_flight\"]"), "2");
	CHECK_STR(json("d[\"backlog\"] == d[\"depth\"] + d[\"in_flight\"]"), "True");
	CHECK_STR(json("d[\"backlog\"]"), "5");
	CHECK_STR(json("d[\"max_depth\"]"), "100");
	CHECK_STR(json("d[\"enqueued_total\"]"), "5");

	/* the supervisor's and workers' figures once they report */
	sluice_field sup[] = {{"desired_workers", 4}, {"current_workers", 3}, {"restarts", 1},
	                      {"guard_holds", 2}};
	CHECK(sluice_report(c, "jobs", sup, 4) == 0);
	sluice_field wk[] = {{"worker", 4242}, {"sink_commit_p99_us", 1500}, {"sink_batches", 10},
	                     {"sink_failures", 1}, {"sink_breaker", 0}};
	CHECK(sluice_report(c, "jobs", wk, 5) == 0);
	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues/jobs"))), 200);
	CHECK_STR(json("(d[\"workers_desired\"], d[\"workers_current\"], d[\"workers_restarts\"], "
	               "d[\"guard_holds\"])"), "(4, 3, 1, 2)");
	CHECK_STR(json("(d[\"sink_commit_p99_us\"], d[\"sink_batches\"], d[\"sink_failures\"])"),
	          "(1500, 10, 1)");

	/* every queue */
	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues"))), 200);
	CHECK_STR(json("sorted(q[\"name\"] for q in d[\"queues\"])"), "['jobs', 'mail']");
	CHECK_STR(json("all(q[\"backlog\"] == q[\"depth\"] + q[\"in_flight\"] for q in d[\"queues\"])"),
	          "True");
	/* HEAD: the headers only (curl -I writes them where the body would go) */
	CHECK_EQ(curl(th_fmt("-I '%s'", url("/v1/queues"))), 200);
	CHECK(strstr(body(), "queues") == NULL);
	CHECK_CONTAINS(body(), "Content-Length: ");
	stop_clean(broker);
}

static void
metrics_pass_promtool(void)
{
	pid_t broker = start(&(fx_cfg){.queue_defaults = "max_depth: 50"});
	sluice_client *c = fx_client();
	CHECK_EQ(fx_put(c, "jobs", "m", 0, 20, 4), 20);
	CHECK_EQ(fx_put(c, "weird.name-1_x", "m", 0, 3, 1), 3);
	sluice_batch *b;
	CHECK(sluice_lease(c, "jobs", 5, 30000, 0, &b) == 0);
	uint64_t ids[5];
	for (size_t i = 0; i < b->count; i++)
		ids[i] = b->msgs[i].id;
	CHECK(sluice_ack(c, "jobs", b->token, ids, b->count, NULL, 0, NULL) == 0);
	sluice_batch_free(b);
	th_write("m.txt", "x");
	CHECK_EQ(post("jobs", "m.txt", NULL), 201);
	CHECK_EQ(post("bad%20name", "m.txt", NULL), 400);
	sluice_field sup[] = {{"desired_workers", 2}, {"current_workers", 2}, {"restarts", 0},
	                      {"guard_holds", 0}};
	CHECK(sluice_report(c, "jobs", sup, 4) == 0);
	sluice_field wk[] = {{"worker", 99}, {"sink_commit_p99_us", 2500}, {"sink_batches", 3},
	                     {"sink_failures", 0}, {"sink_breaker", 0}};
	CHECK(sluice_report(c, "jobs", wk, 5) == 0);

	CHECK_EQ(curl(th_fmt("'%s'", url("/metrics"))), 200);
	CHECK_CONTAINS(headers(), "Content-Type: text/plain; version=0.0.4");
	char *out;
	int rc = th_sh(&out, "promtool check metrics < body.json 2>&1");
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "promtool check metrics: %s", out);
	const char *m = body();
	static const char *const families[] = {
		"sluice_queue_depth", "sluice_queue_in_flight", "sluice_queue_delayed", "sluice_queue_dead",
		"sluice_queue_enqueued_total", "sluice_queue_acked_total", "sluice_queue_nacked_total",
		"sluice_queue_expired_total", "sluice_queue_dead_lettered_total",
		"sluice_ack_latency_seconds", "sluice_commit_duration_seconds",
		"sluice_commit_batch_requests", "sluice_commits_total", "sluice_fsyncs_total",
		"sluice_bad_frames_total", "sluice_http_requests_total", "sluice_connections",
		"sluice_database_bytes", "sluice_workers_desired", "sluice_workers_current",
		"sluice_workers_restarts", "sluice_guard_holds", "sluice_sink_commit_p99_seconds",
	};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		CHECK_CONTAINS(m, th_fmt("# HELP %s ", families[i]));
		CHECK_CONTAINS(m, th_fmt("# TYPE %s ", families[i]));
	}
	CHECK_CONTAINS(m, "sluice_queue_depth{queue=\"jobs\"} 16\n");
	CHECK_CONTAINS(m, "sluice_queue_acked_total{queue=\"jobs\"} 5\n");
	CHECK_CONTAINS(m, "sluice_queue_enqueued_total{queue=\"weird.name-1_x\"} 3\n");
	CHECK_CONTAINS(m, "sluice_ack_latency_seconds_count 5\n");
	CHECK_CONTAINS(m, "sluice_workers_desired{queue=\"jobs\"} 2\n");
	CHECK_CONTAINS(m, "sluice_sink_commit_p99_seconds{queue=\"jobs\"} 0.0025");
	CHECK_CONTAINS(m, "sluice_http_responses_total{code=\"400\"} 1\n");
	CHECK_CONTAINS(m, "sluice_commit_duration_seconds_bucket{le=\"+Inf\"}");
	/* each family's samples together, once */
	rc = th_sh(&out, "grep '^# TYPE' body.json | awk '{print $3}' | sort | uniq -d");
	CHECK_STR(out, "");
	stop_clean(broker);
}

static void
health_and_readiness(void)
{
	start(NULL);
	CHECK_EQ(curl(th_fmt("'%s'", url("/healthz"))), 200);
	CHECK_STR(body(), "ok\n");
	CHECK_EQ(curl(th_fmt("'%s'", url("/readyz"))), 200);
	CHECK_STR(body(), "ok\n");
}

static void
bearer_token_is_required(void)
{
	start(&(fx_cfg){.broker = "http_token: s3cret-Token"});
	th_write("m.txt", "x");
	const char *q = url("/v1/queues/jobs/messages");
	CHECK_EQ(curl(th_fmt("-X POST --data-binary @m.txt '%s'", q)), 401);
	CHECK_CONTAINS(headers(), "WWW-Authenticate: Bearer");
	CHECK(strlen(json("d[\"error\"]")) > 0);
	CHECK_EQ(curl(th_fmt("-X POST -H 'Authorization: Bearer wrong' --data-binary @m.txt '%s'", q)),
	         401);
	CHECK_EQ(curl(th_fmt("-X POST -H 'Authorization: Bearer s3cret-Tokenx' --data-binary @m.txt '%s'",
	                     q)), 401);
	CHECK_EQ(curl(th_fmt("-X POST -H 'Authorization: Bearer s3cret-Toke' --data-binary @m.txt '%s'",
	                     q)), 401);
	CHECK_EQ(curl(th_fmt("-H 'Authorization: Basic czNjcmV0LVRva2Vu' '%s'", url("/metrics"))), 401);
	CHECK_EQ(curl(th_fmt("-X POST -H 'Authorization: Bearer s3cret-Token' --data-binary @m.txt '%s'",
	                     q)), 201);
	CHECK_EQ(curl(th_fmt("'%s'", url("/metrics"))), 401);
	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues"))), 401);
	CHECK_EQ(curl(th_fmt("'%s'", url("/readyz"))), 401);
	CHECK_EQ(curl(th_fmt("-H 'Authorization: Bearer s3cret-Token' '%s'", url("/v1/queues/jobs"))),
	         200);
	CHECK_STR(json("d[\"depth\"]"), "1");
	CHECK_EQ(curl(th_fmt("'%s'", url("/healthz"))), 200);
	/* the token is never logged */
	char *out;
	CHECK(th_sh(&out, "grep -c s3cret broker.log") == 1);
}

static void
bearer_token_from_a_file(void)
{
	const char *tf = th_write("token", "from-a-file\n");
	start(&(fx_cfg){.broker = th_fmt("http_token_file: %s", tf)});
	const char *q = url("/v1/queues");
	CHECK_EQ(curl(th_fmt("'%s'", q)), 401);
	CHECK_EQ(curl(th_fmt("-H 'Authorization: Bearer from-a-file' '%s'", q)), 200);
}

static void
concurrent_enqueues_are_all_acknowledged(void)
{
	start(NULL);
	sluice_client *c = fx_client();
	char *out;
	int rc = th_sh(&out,
	               "seq 1 1000 | xargs -P 64 -I{} curl -s -m 60 -o /dev/null -w '%%{http_code}\\n' "
	               "-X POST --data-binary 'message-{}' '%s' | sort | uniq -c | awk '{print $2\"=\"$1}'",
	               url("/v1/queues/many/messages"));
	CHECK_EQ(rc, 0);
	CHECK_STR(out, "201=1000\n");
	CHECK_EQ(fx_stat(c, "many", "depth"), 1000);
	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues/many"))), 200);
	CHECK_STR(json("d[\"enqueued_total\"]"), "1000");
}

static void
slow_client_does_not_stop_others(void)
{
	pid_t broker = start(NULL);
	sluice_client *c = fx_client();
	/* one sends half its headers, one half its body; both then wait */
	int half_head = tcp_connect();
	th_defer(close_fd, (void *)(intptr_t)half_head);
	const char *h1 = "POST /v1/queues/slow/messages HTTP/1.1\r\nHost: x\r\nContent-Le";
	CHECK(send(half_head, h1, strlen(h1), 0) == (ssize_t)strlen(h1));
	int half_body = tcp_connect();
	th_defer(close_fd, (void *)(intptr_t)half_body);
	const char *h2 = "POST /v1/queues/slow/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
	                 "01234";
	CHECK(send(half_body, h2, strlen(h2), 0) == (ssize_t)strlen(h2));
	usleep(200000);

	int64_t t0 = th_now_ms();
	th_write("m.txt", "quick");
	CHECK_EQ(post("fast", "m.txt", NULL), 201);
	CHECK_EQ(curl(th_fmt("'%s'", url("/v1/queues/fast"))), 200);
	CHECK(th_now_ms() - t0 < 3000);
	CHECK_EQ(fx_stat(c, "slow", "depth"), -1); /* nothing of the slow ones yet */

	/* the half body completes: it is stored and answered */
	CHECK(send(half_body, "56789", 5, 0) == 5);
	char buf[512];
	ssize_t n = recv(half_body, buf, sizeof(buf) - 1, 0);
	CHECK(n > 0);
	buf[n] = '\0';
	CHECK_CONTAINS(buf, "HTTP/1.1 201");
	CHECK_EQ(fx_stat(c, "slow", "depth"), 1);

	/* a body still coming at shutdown does not hold the broker up */
	CHECK(send(half_body, h2, strlen(h2), 0) == (ssize_t)strlen(h2));
	usleep(100000);
	int64_t t1 = th_now_ms();
	stop_clean(broker);
	CHECK(th_now_ms() - t1 < 4000);
}

static void
acknowledged_enqueues_survive_shutdown(void)
{
	fx_config(NULL);
	pid_t b = fx_broker("broker.log");
	/* many clients, then SIGTERM in the middle of them */
	th_sh(NULL, "( seq 1 400 | xargs -P 32 -I{} curl -s -m 20 -o /dev/null -w '%%{http_code}\\n' "
	            "-X POST --data-binary 'm-{}' '%s' > codes.txt; echo done > done.txt ) "
	            ">/dev/null 2>&1 &", url("/v1/queues/jobs/messages"));
	usleep(400000);
	int status = th_stop(b, SIGTERM, 10000);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK(th_wait_file(th_path("done.txt"), "done", 60000));
	char *out;
	/* each got an answer or no connection: 201, 503, or 000 */
	CHECK(th_sh(&out, "grep -cv -e '^201$' -e '^503$' -e '^000$' codes.txt") == 1);
	CHECK(th_sh(&out, "grep -c '^201$' codes.txt") == 0);
	long acked = atol(out);
	CHECK(acked > 0);

	fx_broker("broker2.log");
	sluice_client *c = fx_client();
	CHECK(fx_stat(c, "jobs", "depth") >= acked);
}

/* Sends req on a new connection and reads the answer to the close. */
static const char *
exchange(const char *req, size_t len, bool half_close)
{
	int fd = tcp_connect();
	CHECK(send(fd, req, len, MSG_NOSIGNAL) == (ssize_t)len);
	if (half_close)
		shutdown(fd, SHUT_WR);
	const char *out = th_recv_all(fd);
	close(fd);
	return out;
}

static int
count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
connections_frame_requests_like_http_1_1(void)
{
	pid_t broker = start(NULL);
	sluice_client *c = fx_client();
	/* pipelined: three requests in one write, answered in order */
	const char *three = "POST /v1/queues/pipe/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
	                    "POST /v1/queues/pipe/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
	                    "GET /v1/queues/pipe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	const char *out = exchange(three, strlen(three), false);
	CHECK_EQ(count_of(out, "HTTP/1.1 201 Created\r\n"), 2);
	CHECK_EQ(count_of(out, "HTTP/1.1 200 OK\r\n"), 1);
	CHECK(strstr(out, "HTTP/1.1 200") > strstr(out, "HTTP/1.1 201"));
	CHECK_CONTAINS(out, "\"depth\":2");
	CHECK_CONTAINS(out, "Connection: close");

	/* a request a byte at a time, then another on the same connection */
	int fd = tcp_connect();
	th_defer(close_fd, (void *)(intptr_t)fd);
	const char *slow = "POST /v1/queues/pipe/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nslow";
	for (const char *p = slow; *p; p++) {
		CHECK(send(fd, p, 1, MSG_NOSIGNAL) == 1);
		usleep(1000);
	}
	char buf[1024];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_CONTAINS(buf, "HTTP/1.1 201");
	CHECK(send(fd, slow, strlen(slow), MSG_NOSIGNAL) == (ssize_t)strlen(slow));
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_CONTAINS(buf, "HTTP/1.1 201");
	CHECK_EQ(fx_stat(c, "pipe", "depth"), 4);

	/* a client that shuts its side after the request still gets the answer */
	const char *one = "POST /v1/queues/pipe/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nhalf";
	CHECK_CONTAINS(exchange(one, strlen(one), true), "HTTP/1.1 201");
	CHECK_EQ(fx_stat(c, "pipe", "depth"), 5);

	/* HEAD: the length of the GET, no body */
	const char *head = "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	out = exchange(head, strlen(head), false);
	CHECK_CONTAINS(out, "Content-Length: 3\r\n");
	CHECK(strstr(out, "\r\n\r\n") != NULL && strstr(out, "\r\n\r\n")[4] == '\0');

	/* what cannot be parsed: a JSON error and the connection closes */
	const char *v2 = "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n";
	out = exchange(v2, strlen(v2), false);
	CHECK_CONTAINS(out, "HTTP/1.1 505");
	CHECK_CONTAINS(out, "{\"error\":");
	out = exchange("GARBAGE\r\n\r\n", 11, false);
	CHECK_CONTAINS(out, "HTTP/1.1 400");
	CHECK_CONTAINS(out, "Connection: close");
	char *big = malloc(20000);
	CHECK(big != NULL);
	strcpy(big, "GET /healthz HTTP/1.1\r\nX-Big: ");
	size_t bl = strlen(big);
	memset(big + bl, 'a', 19000);
	strcpy(big + bl + 19000, "\r\n\r\n");
	out = exchange(big, strlen(big), false);
	free(big);
	CHECK_CONTAINS(out, "HTTP/1.1 431");
	const char *two_cl = "POST /v1/queues/pipe/messages HTTP/1.1\r\nContent-Length: 1\r\n"
	                     "Content-Length: 2\r\n\r\nab";
	CHECK_CONTAINS(exchange(two_cl, strlen(two_cl), false), "HTTP/1.1 400");

	/* none of it hurt */
	CHECK_EQ(fx_stat(c, "pipe", "depth"), 5);
	th_write("m.txt", "x");
	CHECK_EQ(post("pipe", "m.txt", NULL), 201);
	stop_clean(broker);
}

static void
a_bad_http_address_is_named(void)
{
	char *out;
	fx_config(NULL);
	/* not host:port */
	CHECK(th_sh(&out, "%s -c %s --http nonsense 2>&1", th_bin("sluice-broker"), fx.config) != 0);
	CHECK_CONTAINS(out, "broker.http");
	CHECK_CONTAINS(out, "use host:port");
	/* taken by another broker */
	fx_broker("broker.log");
	CHECK(th_sh(&out, "%s -c %s --data other.db --listen tcp://127.0.0.1:%d --http %s 2>&1",
	            th_bin("sluice-broker"), fx.config, th_port(), fx.http) != 0);
	CHECK_CONTAINS(out, "broker.http");
	CHECK_CONTAINS(out, "cannot listen on");
}

static const th_case cases[] = {
	TH_CASE(enqueue_answers_201_with_the_id),
	TH_CASE(idempotency_key_answers_200_duplicate),
	TH_CASE(delay_and_priority_parameters),
	TH_CASE(queue_full_answers_429_with_retry_after),
	TH_CASE(bad_requests_get_4xx_in_json),
	TH_CASE(too_large_answers_413),
	TH_CASE(batch_returns_ids_in_order_all_or_none),
	TH_CASE(stats_json_has_the_documented_fields),
	TH_CASE(metrics_pass_promtool),
	TH_CASE(health_and_readiness),
	TH_CASE(bearer_token_is_required),
	TH_CASE(bearer_token_from_a_file),
	TH_CASE(concurrent_enqueues_are_all_acknowledged),
	TH_CASE(slow_client_does_not_stop_others),
	TH_CASE(connections_frame_requests_like_http_1_1),
	TH_CASE(a_bad_http_address_is_named),
	TH_CASE(acknowledged_enqueues_survive_shutdown),
	{NULL, NULL},
};

TH_MAIN(cases)
