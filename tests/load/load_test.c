/* load_test: `sluice load` against a real broker (and a real SQLite file):
 * the JSON it writes, that what it reports is what the broker holds, the
 * busy path, the direct target, and its exit statuses. */
#include "fixture.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define Q "loadq"

/* ---- helpers ---- */

/* The number after "key": in json, searching from the first occurrence of
 * each anchor in turn (anchors NULL-terminated, may be empty). Fails the
 * case if absent. */
static double
jnum(const char *json, const char *const *anchors, const char *key)
{
	const char *p = json;
	for (int i = 0; anchors != NULL && anchors[i] != NULL; i++) {
		p = strstr(p, anchors[i]);
		if (p == NULL)
			th_fail(__FILE__, __LINE__, "no %s in the JSON", anchors[i]);
	}
	const char *k = th_fmt("\"%s\":", key);
	p = strstr(p, k);
	if (p == NULL)
		th_fail(__FILE__, __LINE__, "no %s in the JSON", k);
	return strtod(p + strlen(k), NULL);
}

static double
total(const char *json, const char *key)
{
	const char *const a[] = {"\"total\":", NULL};
	return jnum(json, a, key);
}

static double
total_error(const char *json, const char *kind)
{
	const char *const a[] = {"\"total\":", "\"errors\":", NULL};
	return jnum(json, a, kind);
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* Runs sluice -c CONFIG load ARGS; returns its exit status; *json the file
 * it wrote (NULL if none), *err its stderr. */
static int
load(const char *args, char **json, char **err)
{
	const char *jpath = th_path("load.json");
	unlink(jpath);
	int rc = th_sh(NULL, "'%s' -c '%s' load %s --json '%s' >'%s' 2>'%s'", th_bin("sluice"),
	               fx.config, args, jpath, th_path("load.out"), th_path("load.err"));
	if (json != NULL)
		*json = th_read(jpath);
	if (err != NULL)
		*err = th_read(th_path("load.err"));
	return rc;
}

static void
start_broker(const fx_cfg *extra)
{
	fx_config(extra);
	fx_broker("broker.log");
}

/* ---- cases ---- */

/* Stages ramp up and down; the JSON has every part; what is reported
 * acknowledged is what the broker holds. */
static void
stages_report_json(void)
{
	start_broker(NULL);
	char *json, *err;
	int rc = load("-q " Q " --stages 1s:20,1s:50,1s:0 --quiet", &json, &err);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "exit %d: %s", rc, err);
	CHECK(json != NULL);
	CHECK_STR(err, ""); /* --quiet: no progress lines */
	CHECK_CONTAINS(json, "\"target\":\"sluice\"");
	CHECK_CONTAINS(json, "\"stages\":[");
	CHECK_CONTAINS(json, "\"timeline\":[");
	CHECK_EQ(count(json, "\"from_vus\""), 4); /* 3 stages and the total */
	const char *const s2[] = {"\"stages\":[", "\"from_vus\":20", NULL};
	CHECK_EQ(jnum(json, s2, "to_vus"), 50);
	CHECK_EQ(jnum(json, s2, "max_vus"), 50);

	long requests = (long)total(json, "requests");
	long ok = (long)total(json, "ok");
	CHECK(requests > 100);
	CHECK_EQ(total(json, "failed"), 0);
	CHECK_EQ(ok, requests);
	CHECK_EQ(total(json, "messages"), ok);
	CHECK(total(json, "rps") > 0);
	const char *const lat[] = {"\"total\":", "\"latency_ms\":", NULL};
	double p50 = jnum(json, lat, "p50"), p99 = jnum(json, lat, "p99"), max = jnum(json, lat, "max");
	CHECK(p50 > 0);
	CHECK(p50 <= p99);
	CHECK(p99 <= max);
	CHECK(jnum(json, NULL, "user_s") >= 0);

	/* the timeline: one point per second, summing to the total */
	int points = count(json, "{\"t\":");
	CHECK(points >= 3 && points <= 5);
	long sum = 0;
	int max_vus = 0;
	const char *p = strstr(json, "\"timeline\":[");
	while ((p = strstr(p, "{\"t\":")) != NULL) {
		const char *r = strstr(p, "\"requests\":"), *v = strstr(p, "\"vus\":");
		sum += atol(r + 11);
		if (atoi(v + 6) > max_vus)
			max_vus = atoi(v + 6);
		p++;
	}
	CHECK_EQ(sum, requests);
	CHECK(max_vus >= 20);
	CHECK_EQ(fx_stat(fx_client(), Q, "depth"), ok);

	/* the human report went to stdout */
	char *out = th_read(th_path("load.out"));
	CHECK_CONTAINS(out, "generator CPU:");
	CHECK_CONTAINS(out, "total");
}

/* --batch 10 enqueues ten messages per request. */
static void
batch_enqueues_tenfold(void)
{
	start_broker(NULL);
	char *json, *err;
	int rc = load("-q " Q " --vus 4 --duration 1s --batch 10 --size 64 --quiet", &json, &err);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "exit %d: %s", rc, err);
	long ok = (long)total(json, "ok");
	CHECK(ok > 0);
	CHECK_EQ(total(json, "failed"), 0);
	CHECK_EQ(total(json, "messages"), ok * 10);
	CHECK_EQ(fx_stat(fx_client(), Q, "depth"), ok * 10);
}

/* A full queue answers QUEUE_FULL at once: busy errors, not timeouts. */
static void
full_queue_is_busy(void)
{
	fx_cfg x = {.queue_defaults = "max_depth: 50"};
	start_broker(&x);
	char *json, *err;
	int rc = load("-q " Q " --vus 8 --duration 1s --timeout 5s --quiet", &json, &err);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "exit %d: %s", rc, err);
	CHECK_EQ(total(json, "ok"), 50);
	CHECK(total_error(json, "busy") > 0);
	CHECK_EQ(total_error(json, "timeout"), 0);
	CHECK_EQ(total_error(json, "transport"), 0);
	CHECK_EQ(total_error(json, "broker"), 0);
	CHECK_CONTAINS(json, "\"first_errors\":{\"busy\":");
	CHECK_EQ(fx_stat(fx_client(), Q, "depth"), 50);
	char *out = th_read(th_path("load.out"));
	CHECK_CONTAINS(out, "busy");
}

/* direct: every acknowledged request is one row, with its payload; the
 * broker is not involved. */
static void
direct_writes_rows(void)
{
	fx_config(NULL);
	char *json, *err;
	int rc = load("--target direct --prefix dr --size 100 --vus 10 --duration 1s --pool 4 --quiet",
	              &json, &err);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "exit %d: %s", rc, err);
	CHECK_CONTAINS(json, "\"target\":\"direct\"");
	long ok = (long)total(json, "ok"), requests = (long)total(json, "requests");
	CHECK(ok > 0);
	long rows, distinct;
	fx_sink_count(fx.sink, "events", &rows, &distinct);
	CHECK_EQ(rows, ok);
	CHECK_EQ(distinct, ok);
	if (ok == requests) { /* no failure: payloads dr-0 .. dr-(n-1), once each */
		long missing, duplicated;
		fx_sink_audit(fx.sink, "events", "dr", 0, ok, &missing, &duplicated);
		CHECK_EQ(missing, 0);
		CHECK_EQ(duplicated, 0);
	}

	/* a second run goes on below the first one's ids */
	rc = load("--target direct --vus 2 --duration 500ms --quiet", &json, &err);
	CHECK_EQ(rc, 0);
	long ok2 = (long)total(json, "ok");
	fx_sink_count(fx.sink, "events", &rows, &distinct);
	CHECK_EQ(rows, ok + ok2);
	CHECK_EQ(distinct, ok + ok2);
}

/* direct under contention: many writers, no patience: database errors,
 * counted, and the run still completes. */
static void
direct_contention_fails_requests(void)
{
	fx_config(NULL);
	char *json, *err;
	int rc = load("--target direct --table contended --vus 40 --duration 1500ms --pool 8 "
	              "--busy-timeout 0 --quiet",
	              &json, &err);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "exit %d: %s", rc, err);
	CHECK(total_error(json, "database") > 0);
	CHECK_CONTAINS(json, "\"database\":\"insert: database is locked\"");
	long rows, distinct;
	fx_sink_count(fx.sink, "contended", &rows, &distinct);
	CHECK_EQ(rows, (long)total(json, "ok"));
	char *out = th_read(th_path("load.out"));
	CHECK_CONTAINS(out, "database");
}

/* direct: a request that waits too long for a pool connection times out. */
static void
direct_pool_wait_times_out(void)
{
	fx_config(NULL);
	char *json, *err;
	int rc = load("--target direct --vus 200 --duration 1s --pool 1 --timeout 20ms --quiet",
	              &json, &err);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "exit %d: %s", rc, err);
	CHECK(total_error(json, "timeout") > 0);
	CHECK_CONTAINS(json, "no free connection within 20 ms");
}

static void
usage_errors_exit_2(void)
{
	fx_config(NULL);
	char *err;
	CHECK_EQ(load("--stages 1s:20,x:5", NULL, &err), 2);
	CHECK_CONTAINS(err, "stage 2 ('x:5'): bad duration 'x'");
	CHECK_EQ(load("--stages 1s:20,2s", NULL, &err), 2);
	CHECK_CONTAINS(err, "stage 2 ('2s'): expected DURATION:VUS");
	CHECK_EQ(load("--stages 1s:many", NULL, &err), 2);
	CHECK_CONTAINS(err, "bad VU count 'many'");
	CHECK_EQ(load("--stages 1s:5 --vus 3", NULL, &err), 2);
	CHECK_EQ(load("--no-such-option", NULL, &err), 2);
	CHECK_EQ(load("--target carrier-pigeon", NULL, &err), 2);
	CHECK_CONTAINS(err, "bad --target");
	CHECK_EQ(load("--vus 0", NULL, &err), 2);
	CHECK_EQ(load("--duration soon", NULL, &err), 2);
	CHECK_EQ(load("-q 'bad name' --vus 1 --duration 1s", NULL, &err), 2);
	CHECK_CONTAINS(err, "bad queue name");
	CHECK_EQ(load("--target http --batch 10", NULL, &err), 2);
	char *out;
	CHECK_EQ(th_sh(&out, "'%s' load --help", th_bin("sluice")), 0);
	CHECK_CONTAINS(out, "--stages");
	CHECK_CONTAINS(out, "--target");
}

static void
unreachable_exits_1(void)
{
	fx_config(NULL); /* no broker started */
	char *err, *json;
	CHECK_EQ(load("--vus 2 --duration 1s", &json, &err), 1);
	CHECK_CONTAINS(err, "cannot reach the broker at");
	CHECK(json == NULL);
	CHECK_EQ(load("--target http --vus 2 --duration 1s", NULL, &err), 1);
	CHECK_CONTAINS(err, "cannot reach the HTTP API at");
	CHECK_EQ(load("--target direct --db /nonexistent-dir/app.db --vus 2 --duration 1s", NULL, &err),
	         1);
	CHECK_CONTAINS(err, "cannot use the database");
}

/* POSTs one message to fx.http; returns the HTTP status, 0 if nothing
 * listens there. */
static int
http_probe(void)
{
	int port = atoi(strrchr(fx.http, ':') + 1);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return 0;
	}
	const char *req = th_fmt("POST /v1/queues/probe/messages HTTP/1.1\r\nHost: %s\r\n"
	                         "Content-Length: 5\r\nConnection: close\r\n\r\nhello",
	                         fx.http);
	CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
	char buf[256] = {0};
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 12 && strncmp(buf, "HTTP/1.", 7) == 0 ? atoi(buf + 9) : 0;
}

/* http: keep-alive connections to the broker's HTTP API. */
static void
http_target(void)
{
	start_broker(NULL);
	int status = http_probe();
	if (status != 201) {
		printf("  note: skipped: POST /v1/queues/q/messages on the test broker answers %d%s\n",
		       status, status == 0 ? " (nothing listens on broker.http)" : "");
		return;
	}
	char *json, *err;
	int rc = load("-q " Q " --target http --stages 500ms:10,1s:30 --quiet", &json, &err);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "exit %d: %s", rc, err);
	CHECK_CONTAINS(json, "\"target\":\"http\"");
	long ok = (long)total(json, "ok");
	CHECK(ok > 0);
	CHECK_EQ(total(json, "failed"), 0);
	CHECK_EQ(fx_stat(fx_client(), Q, "depth"), ok);

	/* fewer connections than VUs: VUs wait their turn */
	rc = load("-q " Q "2 --target http --vus 20 --connections 3 --duration 1s --quiet", &json,
	          &err);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "exit %d: %s", rc, err);
	CHECK_EQ(total(json, "failed"), 0);
	CHECK_EQ(fx_stat(fx_client(), Q "2", "depth"), (long)total(json, "ok"));
}

/* Without --quiet and without a terminal: plain progress lines every 5 s. */
static void
progress_lines_when_not_a_terminal(void)
{
	start_broker(NULL);
	char *err;
	int rc = load("-q " Q " --vus 2 --duration 5500ms --think 5ms", NULL, &err);
	CHECK_EQ(rc, 0);
	CHECK_EQ(count(err, "\n"), 1);
	CHECK_CONTAINS(err, "5.0s");
	CHECK_CONTAINS(err, "VUs");
	CHECK(strchr(err, '\r') == NULL);
}

static const th_case cases[] = {
	TH_CASE(stages_report_json),
	TH_CASE(batch_enqueues_tenfold),
	TH_CASE(full_queue_is_busy),
	TH_CASE(direct_writes_rows),
	TH_CASE(direct_contention_fails_requests),
	TH_CASE(direct_pool_wait_times_out),
	TH_CASE(usage_errors_exit_2),
	TH_CASE(unreachable_exits_1),
	TH_CASE(http_target),
	TH_CASE(progress_lines_when_not_a_terminal),
	{NULL, NULL},
};

TH_MAIN(cases)
