/* config_test: the loader gives exactly the defaults of config/sluice.yaml,
 * reads every form of value, fills derived defaults, and refuses each kind
 * of bad file with one line naming the file, line, column and key. */
#include "config.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Configurations loaded by the current case. A failed CHECK leaves the case
 * at once, so they are freed by the next release() rather than by the case
 * itself, and a failure never adds a leak report to the run. */
static cfg *held[16];
static size_t nheld;

static void
release(void)
{
	while (nheld > 0)
		cfg_free(held[--nheld]);
}

static cfg *
hold(cfg *c)
{
	if (nheld == sizeof(held) / sizeof(held[0]))
		th_fail(__FILE__, __LINE__, "too many configurations held");
	held[nheld++] = c;
	return c;
}

static cfg *
load_text(const char *text)
{
	cfg *c = NULL;
	cfg_error e;
	int rc = cfg_load_buffer("t.yaml", text, strlen(text), &c, &e);
	if (rc != CFG_OK)
		th_fail(__FILE__, __LINE__, "load failed (%d): %s", rc, e.message);
	return hold(c);
}

/* Loads text expecting failure with return code rc; the error lives until
 * the next call. */
static const cfg_error *
load_bad(const char *text, int rc)
{
	static cfg_error e;
	cfg *c = (cfg *)&e; /* must be reset to NULL */
	int got = cfg_load_buffer("bad.yaml", text, strlen(text), &c, &e);
	if (got == CFG_OK)
		hold(c);
	if (got != rc)
		th_fail(__FILE__, __LINE__, "rc %d, expected %d: %s", got, rc, e.message);
	CHECK(c == NULL);
	CHECK(strchr(e.message, '\n') == NULL);
	return &e;
}

/* Expects exactly this one-line message. */
#define CHECK_BAD(text, msg) CHECK_STR(load_bad(text, CFG_E_INVALID)->message, msg)

#define SAME(f) CHECK_EQ(a->f, b->f)
#define SAME_STR(f)                                                                                \
	do {                                                                                       \
		if (a->f != NULL || b->f != NULL)                                                  \
			CHECK_STR(a->f, b->f);                                                     \
	} while (0)

static void
rules_same(const cfg_scale_rules *a, const cfg_scale_rules *b)
{
	SAME(window_ms);
	SAME(select);
	SAME(npolicies);
	for (size_t i = 0; i < a->npolicies; i++) {
		SAME(policies[i].type);
		SAME(policies[i].value);
		SAME(policies[i].period_ms);
	}
}

static void
queue_same(const cfg_queue *a, const cfg_queue *b)
{
	CHECK_STR(a->name, b->name);
	SAME(max_depth);
	SAME(max_attempts);
	SAME(visibility_ms);
	SAME(retry_base_ms);
	SAME(retry_max_ms);
	SAME(archive);
}

static void
broker_same(const cfg_broker *a, const cfg_broker *b)
{
	SAME(nlisten);
	for (size_t i = 0; i < a->nlisten; i++)
		SAME_STR(listen[i]);
	CHECK(a->listen[a->nlisten] == NULL && b->listen[b->nlisten] == NULL);
	SAME_STR(http);
	SAME_STR(http_token);
	SAME_STR(http_token_file);
	SAME_STR(data);
	SAME(durability);
	SAME(max_message_bytes);
	SAME(idempotency_window_ms);
	SAME(retry_key_window_ms);
	SAME(max_queues);
	SAME_STR(tls_cert);
	SAME_STR(tls_key);
	SAME_STR(tls_ca);
	SAME(tls_require_client_cert);
	SAME_STR(log_level);
}

static void
sink_same(const cfg_sink *a, const cfg_sink *b)
{
	SAME(type);
	SAME_STR(path);
	SAME_STR(table);
	SAME(busy_timeout_ms);
	SAME(synchronous);
	SAME(ncommand);
	for (size_t i = 0; i < a->ncommand; i++)
		SAME_STR(command[i]);
	SAME(timeout_ms);
	SAME(concurrency);
	SAME_STR(dsn);
	SAME_STR(password_file);
	SAME(statement_timeout_ms);
	SAME(format);
}

static void
worker_same(const cfg_worker *a, const cfg_worker *b)
{
	SAME_STR(broker);
	SAME_STR(queue);
	SAME(batch_size);
	SAME(linger_ms);
	SAME(visibility_ms);
	SAME(shutdown_grace_ms);
	SAME(breaker_base_ms);
	SAME(breaker_max_ms);
	SAME(report_interval_ms);
	sink_same(&a->sink, &b->sink);
}

static void
supervisor_same(const cfg_supervisor *a, const cfg_supervisor *b)
{
	SAME_STR(broker);
	SAME_STR(queue);
	SAME(mode);
	SAME(min_replicas);
	SAME(max_replicas);
	SAME(idle_replicas);
	SAME(initial_replicas);
	SAME(target_per_worker);
	SAME(metric_type);
	SAME(metric);
	SAME(activation_threshold);
	SAME(tolerance_up_ppm);
	SAME(tolerance_down_ppm);
	SAME(polling_interval_ms);
	SAME(cooldown_ms);
	SAME(initial_cooldown_ms);
	SAME(downscale_stabilization_ms);
	SAME(behavior_set);
	rules_same(&a->scale_up, &b->scale_up);
	rules_same(&a->scale_down, &b->scale_down);
	SAME(fallback_set);
	SAME(fallback_failure_threshold);
	SAME(fallback_replicas);
	SAME(fallback_behavior);
	SAME_STR(state_file);
	SAME(nworker_command);
	for (size_t i = 0; i < a->nworker_command; i++)
		SAME_STR(worker_command[i]);
	SAME(shutdown_grace_ms);
	SAME(restart_base_ms);
	SAME(restart_max_ms);
	SAME(crash_loop_count);
	SAME(crash_loop_window_ms);
	SAME(guard_set);
	SAME(guard_max_commit_p99_ms);
	CHECK(a->guard_max_failure_ratio == b->guard_max_failure_ratio);
	SAME(guard_window_ms);
}

/* Every field of two configurations but path. */
static void
cfg_same(const cfg *a, const cfg *b)
{
	broker_same(&a->broker, &b->broker);
	queue_same(&a->queue_defaults, &b->queue_defaults);
	SAME(nqueues);
	for (size_t i = 0; i < a->nqueues; i++)
		queue_same(&a->queues[i], &b->queues[i]);
	worker_same(&a->worker, &b->worker);
	supervisor_same(&a->supervisor, &b->supervisor);
}

/* ---- defaults ---- */

static void
defaults_equal_file(void)
{
	cfg *d = NULL, *f = NULL;
	cfg_error e;
	const char *path = th_src("config/sluice.yaml");

	CHECK_EQ(cfg_load(NULL, &d, &e), CFG_OK);
	hold(d);
	if (cfg_load(path, &f, &e) != CFG_OK)
		th_fail(__FILE__, __LINE__, "%s", e.message);
	hold(f);
	CHECK(d->path == NULL);
	CHECK_STR(f->path, path);
	cfg_same(d, f);
	release();
}

static void
defaults_values(void)
{
	cfg *c = NULL;
	cfg_error e;

	CHECK_EQ(cfg_load(NULL, &c, &e), CFG_OK);
	hold(c);
	CHECK_EQ(c->broker.nlisten, 1);
	CHECK_STR(c->broker.listen[0], "tcp://127.0.0.1:7450");
	CHECK_STR(c->broker.http, "127.0.0.1:7451");
	CHECK(c->broker.http_token == NULL && c->broker.tls_cert == NULL);
	CHECK_STR(c->broker.data, "sluice-data/broker.db");
	CHECK_EQ(c->broker.max_message_bytes, 1 << 20);
	CHECK_EQ(c->broker.idempotency_window_ms, 24LL * 3600 * 1000);
	CHECK_EQ(c->broker.retry_key_window_ms, 120000);
	CHECK_STR(c->broker.log_level, "info");
	CHECK_EQ(c->queue_defaults.max_depth, 1000000);
	CHECK_EQ(c->queue_defaults.max_attempts, 5);
	CHECK_EQ(c->queue_defaults.visibility_ms, 30000);
	CHECK_EQ(c->queue_defaults.retry_base_ms, 1000);
	CHECK_EQ(c->queue_defaults.retry_max_ms, 300000);
	CHECK_EQ(c->nqueues, 0);
	CHECK_STR(c->worker.broker, "tcp://127.0.0.1:7450");
	CHECK_STR(c->worker.queue, "default");
	CHECK_EQ(c->worker.batch_size, 500);
	CHECK_EQ(c->worker.linger_ms, 50);
	CHECK_EQ(c->worker.breaker_base_ms, 500);
	CHECK_EQ(c->worker.sink.type, CFG_SINK_SQLITE);
	CHECK_STR(c->worker.sink.path, "sluice-data/app.db");
	CHECK_STR(c->worker.sink.table, "events");
	CHECK(c->worker.sink.command == NULL && c->worker.sink.ncommand == 0);
	CHECK_STR(c->supervisor.broker, "tcp://127.0.0.1:7450");
	CHECK_STR(c->supervisor.queue, "default");
	CHECK_EQ(c->supervisor.max_replicas, 100);
	CHECK_EQ(c->supervisor.idle_replicas, -1);
	CHECK_EQ(c->supervisor.initial_replicas, -1);
	CHECK_EQ(c->supervisor.tolerance_up_ppm, 100000);
	CHECK_EQ(c->supervisor.tolerance_down_ppm, 100000);
	CHECK_EQ(c->supervisor.cooldown_ms, 300000);
	CHECK(!c->supervisor.behavior_set && !c->supervisor.fallback_set &&
	      !c->supervisor.guard_set);
	CHECK(c->supervisor.worker_command == NULL);
	CHECK_EQ(c->supervisor.guard_window_ms, 30000);
	CHECK_EQ(c->supervisor.restart_max_ms, 60000);
	CHECK_EQ(c->supervisor.scale_down.window_ms, 300000);
	release();
}

static void
empty_file_is_defaults(void)
{
	static const char *const texts[] = {
		"", "# only a comment\n", "~\n", "---\n", "queues:\nbroker:\n", "broker: {}\n",
	};
	cfg *d = NULL;
	cfg_error e;

	CHECK_EQ(cfg_load(NULL, &d, &e), CFG_OK);
	hold(d);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		cfg_same(d, load_text(texts[i]));
	/* an empty file on disk too */
	cfg *c = NULL;
	CHECK_EQ(cfg_load(th_write("empty.yaml", ""), &c, &e), CFG_OK);
	cfg_same(d, hold(c));
	release();
}

static void
subset_keeps_other_defaults(void)
{
	cfg *c = load_text("supervisor:\n  max_replicas: 7\n  mode: keda\n");
	CHECK_EQ(c->supervisor.max_replicas, 7);
	CHECK_EQ(c->supervisor.mode, CFG_MODE_KEDA);
	CHECK_EQ(c->supervisor.min_replicas, 0);
	CHECK_EQ(c->worker.batch_size, 500);
	CHECK_STR(c->broker.listen[0], "tcp://127.0.0.1:7450");
	/* null values are the same as absent keys */
	c = load_text("worker:\n  batch_size:\n  queue: ~\n");
	CHECK_EQ(c->worker.batch_size, 500);
	CHECK_STR(c->worker.queue, "default");
	release();
}

/* ---- values ---- */

static void
durations(void)
{
	static const struct {
		const char *text;
		int64_t ms;
	} good[] = {
		{"250ms", 250},  {"30s", 30000},
		{"1.5s", 1500},  {"5m", 300000},
		{"2h", 7200000}, {"1d", 86400000},
		{"0", 0},        {"7", 7000},
		{"0.25", 250},   {".5s", 500},
		{"0s", 0},       {"1.000s", 1000},
		{"0.001", 1},    {"3650d", 3650LL * 86400000},
	};
	static const char *const bad[] = {
		"",   "s",    "ms",  "1.5ms", "0.0001s", "-1s",   "+1s",   "1 s",
		"1S", "1sec", "1e3", "1..2s", ".",       "1.2.3", "3651d", "99999999999999999999s",
		"1w", "five",
	};
	int64_t ms;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = -1;
		if (cfg_duration_parse(good[i].text, &ms) != 0 || ms != good[i].ms)
			th_fail(__FILE__, __LINE__, "'%s' -> %lld", good[i].text, (long long)ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = -1;
		if (cfg_duration_parse(bad[i], &ms) == 0)
			th_fail(__FILE__, __LINE__, "'%s' accepted as %lld", bad[i], (long long)ms);
		CHECK_EQ(ms, -1); /* untouched */
	}
	/* YAML ints and floats are seconds */
	cfg *c =
		load_text("worker:\n  linger: 2\n  shutdown_grace: 1.5\n  breaker: {base: 0.25}\n");
	CHECK_EQ(c->worker.linger_ms, 2000);
	CHECK_EQ(c->worker.shutdown_grace_ms, 1500);
	CHECK_EQ(c->worker.breaker_base_ms, 250);
	CHECK_BAD("worker:\n  linger: soon\n",
	          "bad.yaml:2:11: worker.linger: expected a duration like 250ms, 30s, 1.5s, 5m, 2h "
	          "or 1d, got 'soon'");
	CHECK_BAD("worker:\n  linger: -5s\n",
	          "bad.yaml:2:11: worker.linger: must not be negative, got '-5s'");
	CHECK_BAD("worker:\n  linger: 0.1ms\n",
	          "bad.yaml:2:11: worker.linger: '0.1ms' is not a whole number of milliseconds");
	CHECK_BAD("worker:\n  visibility_timeout: 0s\n",
	          "bad.yaml:2:23: worker.visibility_timeout: must be at least 1ms, got '0s'");
	CHECK_BAD(
		"queue_defaults:\n  visibility_timeout: 13h\n",
		"bad.yaml:2:23: queue_defaults.visibility_timeout: must be at most 12h, got '13h'");
	release();
}

static void
sizes(void)
{
	static const struct {
		const char *text;
		int64_t bytes;
	} good[] = {
		{"512", 512},         {"0", 0},           {"64KiB", 65536}, {"1MiB", 1048576},
		{"1GiB", 1073741824}, {"1KB", 1000},      {"1MB", 1000000}, {"2GB", 2000000000},
		{"1.5KiB", 1536},     {"0.5MiB", 524288}, {"10B", 10},      {"1TiB", 1099511627776},
	};
	static const char *const bad[] = {
		"",      "KiB", "1kib", "1 KiB",          "1.5", "0.1KiB", "-1",
		"1KiBs", "1K",  "lots", "99999999999TiB",
	};
	int64_t bytes;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		bytes = -1;
		if (cfg_size_parse(good[i].text, &bytes) != 0 || bytes != good[i].bytes)
			th_fail(__FILE__, __LINE__, "'%s' -> %lld", good[i].text, (long long)bytes);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cfg_size_parse(bad[i], &bytes) == 0)
			th_fail(__FILE__, __LINE__, "'%s' accepted as %lld", bad[i],
			        (long long)bytes);
	cfg *c = load_text("broker:\n  max_message_bytes: 64MiB\n");
	CHECK_EQ(c->broker.max_message_bytes, 64 << 20);
	c = load_text("broker:\n  max_message_bytes: 4096\n");
	CHECK_EQ(c->broker.max_message_bytes, 4096);
	CHECK_BAD("broker:\n  max_message_bytes: 65MiB\n",
	          "bad.yaml:2:22: broker.max_message_bytes: must be at most 64MiB, got '65MiB'");
	CHECK_BAD("broker:\n  max_message_bytes: 1 MiB\n",
	          "bad.yaml:2:22: broker.max_message_bytes: expected a size like 512, 64KiB or "
	          "1MiB, got '1 MiB'");
	CHECK_BAD("broker:\n  max_message_bytes: 0\n",
	          "bad.yaml:2:22: broker.max_message_bytes: must be at least 1, got '0'");
	release();
}

static void
tolerance_ppm_exact(void)
{
	static const struct {
		const char *text;
		int64_t ppm;
	} good[] = {
		{"0.1", 100000},  {"0.05", 50000}, {"0.3", 300000},          {"0.7", 700000},
		{"1", 1000000},   {"0", 0},        {"0.000001", 1},          {"2.5", 2500000},
		{"0.10", 100000}, {".2", 200000},  {"0.1000000000", 100000},
	};
	char text[128];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "supervisor:\n  tolerance: %s\n", good[i].text);
		cfg *c = load_text(text);
		if (c->supervisor.tolerance_up_ppm != good[i].ppm ||
		    c->supervisor.tolerance_down_ppm != good[i].ppm)
			th_fail(__FILE__, __LINE__, "'%s' -> %lld/%lld", good[i].text,
			        (long long)c->supervisor.tolerance_up_ppm,
			        (long long)c->supervisor.tolerance_down_ppm);
	}
	cfg *c = load_text("supervisor:\n  tolerance: {up: 0.2, down: 0.05}\n");
	CHECK_EQ(c->supervisor.tolerance_up_ppm, 200000);
	CHECK_EQ(c->supervisor.tolerance_down_ppm, 50000);
	c = load_text("supervisor:\n  tolerance:\n    down: 0.3\n");
	CHECK_EQ(c->supervisor.tolerance_up_ppm, 100000); /* the default */
	CHECK_EQ(c->supervisor.tolerance_down_ppm, 300000);
	CHECK_BAD("supervisor:\n  tolerance: -0.1\n",
	          "bad.yaml:2:14: supervisor.tolerance: must not be negative, got '-0.1'");
	CHECK_BAD(
		"supervisor:\n  tolerance: 0.1234567\n",
		"bad.yaml:2:14: supervisor.tolerance: '0.1234567' has more than 6 decimal places");
	CHECK_BAD("supervisor:\n  tolerance: 10%\n",
	          "bad.yaml:2:14: supervisor.tolerance: expected a decimal number like 0.1, got "
	          "'10%'");
	CHECK_BAD("supervisor:\n  tolerance: {up: 0.1, dwn: 0.1}\n",
	          "bad.yaml:2:24: supervisor.tolerance.dwn: unknown key (did you mean 'down'?)");
	CHECK_BAD("supervisor:\n  tolerance: [0.1]\n",
	          "bad.yaml:2:14: supervisor.tolerance: expected a number or {up: .., down: ..}, "
	          "got a list");
	release();
}

static void
booleans_and_enums(void)
{
	cfg *c = load_text(
		"queue_defaults:\n  archive: yes\nbroker:\n  durability: fast\n"
		"  tls: {cert: c.pem, key: k.pem, ca: ca.pem, require_client_cert: true}\n"
		"  log_level: debug\n");
	CHECK(c->queue_defaults.archive);
	CHECK_EQ(c->broker.durability, CFG_DURABILITY_FAST);
	CHECK_STR(c->broker.tls_cert, "c.pem");
	CHECK_STR(c->broker.tls_ca, "ca.pem");
	CHECK(c->broker.tls_require_client_cert);
	CHECK_STR(c->broker.log_level, "debug");
	c = load_text("queue_defaults:\n  archive: no\nworker:\n  sink:\n    synchronous: off\n"
	              "    format: json\nsupervisor:\n  metric: depth\n  metric_type: value\n");
	CHECK(!c->queue_defaults.archive);
	CHECK_EQ(c->worker.sink.synchronous, CFG_SYNC_OFF);
	CHECK_EQ(c->worker.sink.format, CFG_FORMAT_JSON);
	CHECK_EQ(c->supervisor.metric, CFG_METRIC_DEPTH);
	CHECK_EQ(c->supervisor.metric_type, CFG_METRIC_VALUE);
	CHECK_BAD("queue_defaults:\n  archive: maybe\n",
	          "bad.yaml:2:12: queue_defaults.archive: expected true or false, got 'maybe'");
	CHECK_BAD(
		"supervisor:\n  mode: kedaa\n",
		"bad.yaml:2:9: supervisor.mode: expected one of responsive, keda, got 'kedaa' (did "
		"you mean 'keda'?)");
	CHECK_BAD("broker:\n  durability: paranoid\n",
	          "bad.yaml:2:15: broker.durability: expected one of full, fast, got 'paranoid'");
	CHECK_BAD("broker:\n  tls: {require_client_cert: true}\n",
	          "bad.yaml:2:9: broker.tls.require_client_cert: needs tls.ca, the CA that client "
	          "certificates are checked against");
	CHECK_BAD("broker:\n  listen: tls+tcp://0.0.0.0:7450\n",
	          "bad.yaml:2:3: broker.listen: tls+tcp://0.0.0.0:7450 needs tls.cert and tls.key");
	release();
}

static void
lists_null_terminated(void)
{
	cfg *c = load_text(
		"worker:\n  sink:\n    type: exec\n    command: [/bin/handle, --flag, x]\n"
		"supervisor:\n  worker_command:\n    - /usr/bin/sluice-worker\n"
		"    - -c\n    - /etc/sluice.yaml\n");
	CHECK_EQ(c->worker.sink.type, CFG_SINK_EXEC);
	CHECK_EQ(c->worker.sink.ncommand, 3);
	CHECK_STR(c->worker.sink.command[0], "/bin/handle");
	CHECK_STR(c->worker.sink.command[2], "x");
	CHECK(c->worker.sink.command[3] == NULL);
	CHECK_EQ(c->supervisor.nworker_command, 3);
	CHECK_STR(c->supervisor.worker_command[1], "-c");
	CHECK(c->supervisor.worker_command[3] == NULL);
	/* listen takes one string too */
	c = load_text("broker:\n  listen: ipc:///tmp/s.ipc\n");
	CHECK_EQ(c->broker.nlisten, 1);
	CHECK_STR(c->broker.listen[0], "ipc:///tmp/s.ipc");
	CHECK(c->broker.listen[1] == NULL);
	CHECK_BAD("broker:\n  listen: []\n",
	          "bad.yaml:2:11: broker.listen: must not be an empty list");
	CHECK_BAD("broker:\n  listen: [tcp://127.0.0.1:1, localhost]\n",
	          "bad.yaml:2:31: broker.listen[1]: expected an address like tcp://HOST:PORT or "
	          "ipc:///PATH, got 'localhost'");
	CHECK_BAD("worker:\n  sink:\n    command: /bin/handle\n",
	          "bad.yaml:3:14: worker.sink.command: expected a list of strings, got "
	          "'/bin/handle'");
	CHECK_BAD("worker:\n  sink:\n    command: [a, [b]]\n",
	          "bad.yaml:3:18: worker.sink.command[1]: expected a string, got a list");
	release();
}

/* ---- queues ---- */

static void
queues_inherit_in_either_order(void)
{
	static const char *const defaults =
		"queue_defaults:\n  max_attempts: 9\n  retry:\n    max: 10m\n  archive: true\n";
	static const char *const queues = "queues:\n  emails:\n    max_depth: 10\n"
					  "    retry: {base: 2s}\n  thumbs.v2:\n";
	char text[512];

	for (int order = 0; order < 2; order++) {
		snprintf(text, sizeof(text), "%s%s", order == 0 ? defaults : queues,
		         order == 0 ? queues : defaults);
		cfg *c = load_text(text);
		CHECK_EQ(c->nqueues, 2);
		const cfg_queue *q = &c->queues[0];
		CHECK_STR(q->name, "emails");
		CHECK_EQ(q->max_depth, 10);
		CHECK_EQ(q->max_attempts, 9);
		CHECK_EQ(q->retry_base_ms, 2000);
		CHECK_EQ(q->retry_max_ms, 600000);
		CHECK(q->archive);
		CHECK_EQ(q->visibility_ms, 30000);
		q = &c->queues[1];
		CHECK_STR(q->name, "thumbs.v2");
		CHECK_EQ(q->max_depth, 1000000);
		CHECK_EQ(q->max_attempts, 9);
		CHECK(cfg_queue_for(c, "emails") == &c->queues[0]);
		CHECK(cfg_queue_for(c, "thumbs.v2") == &c->queues[1]);
		CHECK(cfg_queue_for(c, "other") == &c->queue_defaults);
		CHECK_STR(cfg_queue_for(c, "other")->name, "");
	}
	release();
}

static void
queue_names(void)
{
	char name[130];

	CHECK(cfg_queue_name_valid("a", 1));
	CHECK(cfg_queue_name_valid("Jobs_v1.dead-x", 14));
	CHECK(!cfg_queue_name_valid("", 0));
	CHECK(!cfg_queue_name_valid("a b", 3));
	CHECK(!cfg_queue_name_valid("a/b", 3));
	CHECK(!cfg_queue_name_valid("é", strlen("é")));
	memset(name, 'q', sizeof(name));
	CHECK(cfg_queue_name_valid(name, 128));
	CHECK(!cfg_queue_name_valid(name, 129));
	CHECK(cfg_queue_name_valid("ab\0c", 2));
	CHECK(!cfg_queue_name_valid("ab\0c", 4));
	CHECK_BAD("queues:\n  ok: {}\n  \"a b\":\n    max_depth: 1\n",
	          "bad.yaml:3:3: queues.a b: 'a b' is not a valid queue name (1-128 of A-Z a-z 0-9 "
	          ". _ -)");
	CHECK_BAD("worker:\n  queue: \"x/y\"\n",
	          "bad.yaml:2:10: worker.queue: 'x/y' is not a valid queue name (1-128 of A-Z a-z "
	          "0-9 . _ -)");
	CHECK_BAD("queues:\n  a:\n  b: {}\n  a: {max_depth: 1}\n",
	          "bad.yaml:4:3: queues.a: duplicate key (first at line 2)");
	CHECK_BAD("queues:\n  a:\n    max_dept: 1\n",
	          "bad.yaml:3:5: queues.a.max_dept: unknown key (did you mean 'max_depth'?)");
	CHECK_BAD(
		"queues: [a, b]\n",
		"bad.yaml:1:9: queues: expected a mapping of queue names to settings, got a list");
	release();
}

static void
many_queues(void)
{
	/* a file listing many queues loads quickly and keeps file order */
	size_t n = 5000, cap = n * 40 + 16, o = 0;
	char *text = malloc(cap);
	CHECK(text != NULL);
	o += (size_t)snprintf(text + o, cap - o, "queues:\n");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(text + o, cap - o, "  q%zu: {max_depth: %zu}\n", n - i, i);
	cfg *c = NULL;
	cfg_error e;
	int64_t t0 = th_now_ms();
	int rc = cfg_load_buffer("many.yaml", text, o, &c, &e);
	free(text);
	CHECK_EQ(rc, CFG_OK);
	hold(c);
	CHECK(th_now_ms() - t0 < 5000);
	CHECK_EQ(c->nqueues, n);
	CHECK_STR(c->queues[0].name, "q5000");
	CHECK_EQ(cfg_queue_for(c, "q1")->max_depth, 4999);
	release();
}

/* ---- supervisor ---- */

static void
behavior_defaults(void)
{
	cfg *c = load_text("supervisor:\n  behavior: {}\n  downscale_stabilization: 120s\n");
	const cfg_supervisor *s = &c->supervisor;
	CHECK(s->behavior_set);
	CHECK_EQ(s->scale_up.window_ms, 0);
	CHECK_EQ(s->scale_up.select, CFG_SELECT_MAX);
	CHECK_EQ(s->scale_up.npolicies, 2);
	CHECK_EQ(s->scale_up.policies[0].type, CFG_POLICY_PODS);
	CHECK_EQ(s->scale_up.policies[0].value, 4);
	CHECK_EQ(s->scale_up.policies[0].period_ms, 15000);
	CHECK_EQ(s->scale_up.policies[1].type, CFG_POLICY_PERCENT);
	CHECK_EQ(s->scale_up.policies[1].value, 100);
	CHECK_EQ(s->scale_up.policies[1].period_ms, 15000);
	/* the scale-down window follows downscale_stabilization, written after */
	CHECK_EQ(s->scale_down.window_ms, 120000);
	CHECK_EQ(s->scale_down.select, CFG_SELECT_MAX);
	CHECK_EQ(s->scale_down.npolicies, 1);
	CHECK_EQ(s->scale_down.policies[0].type, CFG_POLICY_PERCENT);
	CHECK_EQ(s->scale_down.policies[0].value, 100);
	CHECK_EQ(s->scale_down.policies[0].period_ms, 15000);
	/* behavior: with nothing is the same as no behavior */
	c = load_text("supervisor:\n  behavior:\n");
	CHECK(!c->supervisor.behavior_set);
	release();
}

static void
behavior_policies_replace(void)
{
	cfg *c = load_text(
		"supervisor:\n  behavior:\n    scale_up:\n      stabilization_window: 30s\n"
		"      select_policy: min\n      policies: [{type: percent, value: 50, period: "
		"1m}]\n"
		"    scale_down:\n      stabilization_window: 10s\n      select_policy: disabled\n"
		"      policies: []\n");
	const cfg_supervisor *s = &c->supervisor;
	CHECK(s->behavior_set);
	CHECK_EQ(s->scale_up.window_ms, 30000);
	CHECK_EQ(s->scale_up.select, CFG_SELECT_MIN);
	CHECK_EQ(s->scale_up.npolicies, 1);
	CHECK_EQ(s->scale_up.policies[0].type, CFG_POLICY_PERCENT);
	CHECK_EQ(s->scale_up.policies[0].value, 50);
	CHECK_EQ(s->scale_up.policies[0].period_ms, 60000);
	CHECK_EQ(s->scale_down.window_ms, 10000);
	CHECK_EQ(s->scale_down.select, CFG_SELECT_DISABLED);
	CHECK_EQ(s->scale_down.npolicies, 0);
	CHECK_BAD("supervisor:\n  behavior: {scale_up: {policies: []}}\n",
	          "bad.yaml:2:25: supervisor.behavior.scale_up.policies: must list at least one "
	          "policy (or set select_policy: disabled)");
	CHECK_BAD("supervisor:\n  behavior:\n    scale_down:\n      policies:\n"
	          "        - {type: pods, value: 1}\n",
	          "bad.yaml:5:11: supervisor.behavior.scale_down.policies[0]: missing period");
	CHECK_BAD("supervisor:\n  behavior:\n    scale_down:\n      policies:\n"
	          "        - {type: pods, value: ~, period: 1s}\n",
	          "bad.yaml:5:11: supervisor.behavior.scale_down.policies[0]: missing value");
	CHECK_BAD("supervisor:\n  behavior:\n    scale_down:\n      policies:\n"
	          "        - {type: pod, value: 1, period: 1s}\n",
	          "bad.yaml:5:18: supervisor.behavior.scale_down.policies[0].type: expected one of "
	          "pods, percent, got 'pod' (did you mean 'pods'?)");
	CHECK_BAD(
		"supervisor:\n  behavior:\n    scale_up:\n      stabilization_window: 2h\n",
		"bad.yaml:4:29: supervisor.behavior.scale_up.stabilization_window: must be at most "
		"1h, got '2h'");
	release();
}

static void
fallback_and_guard(void)
{
	cfg *c = load_text("supervisor:\n  fallback: {failure_threshold: 3, replicas: 2}\n"
	                   "  guard:\n    max_commit_p99: 200ms\n    max_failure_ratio: 0.05\n");
	const cfg_supervisor *s = &c->supervisor;
	CHECK(s->fallback_set);
	CHECK_EQ(s->fallback_failure_threshold, 3);
	CHECK_EQ(s->fallback_replicas, 2);
	CHECK_EQ(s->fallback_behavior, CFG_FALLBACK_STATIC);
	CHECK(s->guard_set);
	CHECK_EQ(s->guard_max_commit_p99_ms, 200);
	CHECK(s->guard_max_failure_ratio == 0.05);
	CHECK_EQ(s->guard_window_ms, 30000);
	c = load_text("supervisor:\n  fallback:\n    failure_threshold: 0\n    replicas: 5\n"
	              "    behavior: current_replicas_if_lower\n  guard: {}\n");
	CHECK_EQ(c->supervisor.fallback_behavior, CFG_FALLBACK_CURRENT_IF_LOWER);
	CHECK(c->supervisor.guard_set);
	CHECK(c->supervisor.guard_max_failure_ratio == 0);
	CHECK_BAD("supervisor:\n  fallback:\n    replicas: 2\n",
	          "bad.yaml:3:5: supervisor.fallback: missing failure_threshold");
	CHECK_BAD("supervisor:\n  fallback: {failure_threshold: 3}\n",
	          "bad.yaml:2:13: supervisor.fallback: missing replicas");
	/* null is the same as left out */
	CHECK_BAD("supervisor:\n  fallback: {failure_threshold: 3, replicas: ~}\n",
	          "bad.yaml:2:13: supervisor.fallback: missing replicas");
	CHECK_BAD(
		"supervisor:\n  guard: {max_failure_ratio: 1.5}\n",
		"bad.yaml:2:30: supervisor.guard.max_failure_ratio: must be at most 1, got '1.5'");
	release();
}

static void
derived_broker_and_queue(void)
{
	cfg *c = load_text("worker:\n  queue: jobs\nbroker:\n"
	                   "  listen: [ipc:///tmp/a.ipc, tcp://0.0.0.0:1]\n");
	CHECK_STR(c->worker.broker, "ipc:///tmp/a.ipc");
	CHECK_STR(c->supervisor.broker, "ipc:///tmp/a.ipc");
	CHECK_STR(c->supervisor.queue, "jobs");
	c = load_text("supervisor:\n  queue: other\nworker:\n  broker: tcp://10.0.0.1:7450\n");
	CHECK_STR(c->worker.broker, "tcp://10.0.0.1:7450");
	CHECK_STR(c->supervisor.broker, "tcp://10.0.0.1:7450");
	CHECK_STR(c->supervisor.queue, "other");
	CHECK_STR(c->worker.queue, "default");
	c = load_text("supervisor:\n  broker: tcp://b:2\nworker:\n  broker: tcp://a:1\n");
	CHECK_STR(c->supervisor.broker, "tcp://b:2");
	release();
}

/* ---- errors ---- */

static void
error_unknown_key(void)
{
	const cfg_error *e = load_bad("broker:\n  listne: [tcp://127.0.0.1:1]\n", CFG_E_INVALID);
	CHECK_STR(e->message, "bad.yaml:2:3: broker.listne: unknown key (did you mean 'listen'?)");
	CHECK_EQ(e->line, 2);
	CHECK_EQ(e->column, 3);
	CHECK_STR(e->key, "broker.listne");
	CHECK_BAD("supervisor:\n  restart:\n    crash_loop_windw: 1m\n",
	          "bad.yaml:3:5: supervisor.restart.crash_loop_windw: unknown key (did you mean "
	          "'crash_loop_window'?)");
	CHECK_BAD("brokr: {}\n", "bad.yaml:1:1: brokr: unknown key (did you mean 'broker'?)");
	CHECK_BAD("worker:\n  colour: blue\n", "bad.yaml:2:3: worker.colour: unknown key");
	CHECK_BAD("worker:\n  \"a\\nb\": 1\n", "bad.yaml:2:3: worker.a\\x0ab: unknown key");
	CHECK_BAD("base: &b {batch_size: 1}\nworker:\n  <<: *b\n",
	          "bad.yaml:1:1: base: unknown key");
	CHECK_BAD("worker:\n  <<: {batch_size: 1}\n",
	          "bad.yaml:2:3: worker.<<: merge keys (<<) are not supported");
	release();
}

static void
error_wrong_type(void)
{
	const cfg_error *e = load_bad("supervisor:\n  max_replicas: many\n", CFG_E_INVALID);
	CHECK_STR(e->message,
	          "bad.yaml:2:17: supervisor.max_replicas: expected a whole number, got 'many'");
	CHECK_EQ(e->line, 2);
	CHECK_EQ(e->column, 17);
	CHECK_STR(e->key, "supervisor.max_replicas");
	CHECK_BAD("supervisor:\n  max_replicas: 2.5\n",
	          "bad.yaml:2:17: supervisor.max_replicas: expected a whole number, got '2.5'");
	CHECK_BAD("supervisor:\n  max_replicas: [1]\n",
	          "bad.yaml:2:17: supervisor.max_replicas: expected a whole number, got a list");
	CHECK_BAD("broker: [a]\n", "bad.yaml:1:9: broker: expected a mapping, got a list");
	CHECK_BAD("broker:\n  data: {a: 1}\n",
	          "bad.yaml:2:9: broker.data: expected a string, got a mapping");
	CHECK_BAD("broker:\n  data: \"\"\n", "bad.yaml:2:9: broker.data: must not be empty");
	CHECK_BAD("broker:\n  data: \"a\\0b\"\n",
	          "bad.yaml:2:9: broker.data: must not contain a NUL character");
	CHECK_BAD("broker:\n  [a]: 1\n", "bad.yaml:2:3: broker: expected a key name, got a list");
	/* a long value is cut in the message */
	e = load_bad("worker:\n  batch_size: "
	             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
	             CFG_E_INVALID);
	CHECK_CONTAINS(e->message, "xxx...'");
	release();
}

static void
error_out_of_range(void)
{
	CHECK_BAD("worker:\n  batch_size: 0\n",
	          "bad.yaml:2:15: worker.batch_size: must be at least 1, got '0'");
	CHECK_BAD("supervisor:\n  min_replicas: -1\n",
	          "bad.yaml:2:17: supervisor.min_replicas: must not be negative, got '-1'");
	CHECK_BAD("queue_defaults:\n  max_depth: -5\n",
	          "bad.yaml:2:14: queue_defaults.max_depth: must not be negative, got '-5'");
	CHECK_BAD(
		"queue_defaults:\n  max_depth: 99999999999999999999\n",
		"bad.yaml:2:14: queue_defaults.max_depth: '99999999999999999999' is out of range");
	CHECK_BAD("supervisor:\n  max_replicas: 99999999999999999999\n",
	          "bad.yaml:2:17: supervisor.max_replicas: must be at most 100000, got "
	          "'99999999999999999999'");
	CHECK_BAD("supervisor:\n  target_per_worker: 0\n",
	          "bad.yaml:2:22: supervisor.target_per_worker: must be at least 1, got '0'");
	release();
}

static void
error_cross_field(void)
{
	const cfg_error *e =
		load_bad("supervisor:\n  min_replicas: 5\n  max_replicas: 2\n", CFG_E_INVALID);
	CHECK_STR(e->message,
	          "bad.yaml:3:3: supervisor.max_replicas: 2 is less than min_replicas (5)");
	CHECK_STR(e->key, "supervisor.max_replicas");
	CHECK_BAD("supervisor:\n  max_replicas: 2\n  min_replicas: 5\n",
	          "bad.yaml:3:3: supervisor.min_replicas: 5 is more than max_replicas (2)");
	CHECK_BAD("supervisor:\n  min_replicas: 101\n",
	          "bad.yaml:2:3: supervisor.min_replicas: 101 is more than max_replicas (100)");
	CHECK_BAD("supervisor:\n  initial_replicas: 9\n  max_replicas: 8\n",
	          "bad.yaml:3:3: supervisor.max_replicas: 8 is less than initial_replicas (9)");
	CHECK_BAD("supervisor:\n  min_replicas: 2\n  idle_replicas: 2\n",
	          "bad.yaml:3:3: supervisor.idle_replicas: 2 must be less than min_replicas (2)");
	CHECK_BAD("supervisor:\n  idle_replicas: 3\n  min_replicas: 1\n",
	          "bad.yaml:3:3: supervisor.min_replicas: 1 must be more than idle_replicas (3)");
	cfg *c = load_text("supervisor:\n  min_replicas: 2\n  idle_replicas: 0\n");
	CHECK_EQ(c->supervisor.idle_replicas, 0);
	c = load_text("supervisor:\n  idle_replicas: 0\n");
	CHECK_EQ(c->supervisor.idle_replicas, 0);
	CHECK_BAD("queue_defaults:\n  retry:\n    base: 10m\n",
	          "bad.yaml:3:5: queue_defaults.retry.base: 10m is more than retry.max (5m)");
	/* a queue breaks the rule with a value it inherits */
	CHECK_BAD("queues:\n  q:\n    retry: {max: 100ms}\n",
	          "bad.yaml:3:13: queues.q.retry.max: 100ms is less than retry.base (1s)");
	CHECK_BAD("worker:\n  breaker: {max: 1s, base: 2s}\n",
	          "bad.yaml:2:22: worker.breaker.base: 2s is more than breaker.max (1s)");
	CHECK_BAD("supervisor:\n  restart:\n    max: 500ms\n",
	          "bad.yaml:3:5: supervisor.restart.max: 500ms is less than restart.base (1s)");
	CHECK_BAD("worker:\n  sink:\n    type: exec\n",
	          "bad.yaml:3:5: worker.sink.type: exec needs sink.command, the program to run per "
	          "message");
	CHECK_BAD(
		"worker:\n  sink:\n    type: postgres\n    path: x.db\n",
		"bad.yaml:3:5: worker.sink.type: postgres needs sink.dsn, the database to connect "
		"to");
	c = load_text("worker:\n  sink:\n    type: postgres\n    dsn: \"dbname=app\"\n");
	CHECK_STR(c->worker.sink.dsn, "dbname=app");
	CHECK_BAD("broker:\n  http_token: a\n  http_token_file: /f\n",
	          "bad.yaml:3:3: broker.http_token_file: give http_token or http_token_file, not "
	          "both");
	release();
}

static void
error_duplicate_key(void)
{
	const cfg_error *e = load_bad("broker:\n  data: a.db\n  data: b.db\n", CFG_E_INVALID);
	CHECK_STR(e->message, "bad.yaml:3:3: broker.data: duplicate key (first at line 2)");
	CHECK_EQ(e->line, 3);
	CHECK_STR(e->key, "broker.data");
	CHECK_BAD("worker: {}\nbroker: {}\nworker: {}\n",
	          "bad.yaml:3:1: worker: duplicate key (first at line 1)");
	CHECK_BAD("supervisor:\n  tolerance: {up: 0.1, up: 0.2}\n",
	          "bad.yaml:2:24: supervisor.tolerance.up: duplicate key (first at line 2)");
	/* even when the first value was null */
	CHECK_BAD("broker:\n  data:\n  data: b.db\n",
	          "bad.yaml:3:3: broker.data: duplicate key (first at line 2)");
	release();
}

static void
error_malformed_yaml(void)
{
	const cfg_error *e = load_bad("broker:\n  listen: [tcp://x\n", CFG_E_SYNTAX);
	CHECK_CONTAINS(e->message,
	               "bad.yaml:3:1: malformed YAML: did not find expected ',' or ']'");
	CHECK_EQ(e->line, 3);
	CHECK_STR(e->key, "");
	e = load_bad("a: b: c\n", CFG_E_SYNTAX);
	CHECK_CONTAINS(e->message, "bad.yaml:1:5: malformed YAML: mapping values are not allowed");
	e = load_bad("broker:\n  data: \"x\n", CFG_E_SYNTAX);
	CHECK_CONTAINS(e->message, "malformed YAML: found unexpected end of stream");
	e = load_bad("worker:\n\tbatch_size: 1\n", CFG_E_SYNTAX);
	CHECK_CONTAINS(e->message,
	               "bad.yaml:2:1: malformed YAML: found character that cannot start");
	e = load_bad("broker:\n  data: \xff\n", CFG_E_SYNTAX);
	CHECK_STR(e->message, "bad.yaml:2:9: malformed YAML: invalid leading UTF-8 octet");
	e = load_bad("worker: *nope\n", CFG_E_SYNTAX);
	CHECK_CONTAINS(e->message, "bad.yaml:1:9: malformed YAML: found undefined alias");
	/* the top level must be a mapping */
	CHECK_BAD("- broker\n", "bad.yaml:1:1: expected a mapping of sections (broker, "
	                        "queue_defaults, queues, worker, supervisor) at the top level, got "
	                        "a list");
	CHECK_BAD("hello\n",
	          "bad.yaml:1:1: expected a mapping of sections (broker, queue_defaults, "
	          "queues, worker, supervisor) at the top level, got 'hello'");
	CHECK_BAD("broker: {}\n---\nworker: {}\n",
	          "bad.yaml:3:1: a second YAML document; the configuration is one document");
	release();
}

static void
error_io(void)
{
	cfg *c = (cfg *)&c;
	cfg_error e;
	const char *path = th_path("missing.yaml");

	CHECK_EQ(cfg_load(path, &c, &e), CFG_E_IO);
	CHECK(c == NULL);
	CHECK_STR(e.message, th_fmt("%s: cannot read: No such file or directory", path));
	CHECK_EQ(cfg_load(th_dir(), &c, &e), CFG_E_IO);
	CHECK_STR(e.message, th_fmt("%s: cannot read: Is a directory", th_dir()));
	/* a file's errors carry its path as given */
	path = th_write("bad.yaml", "worker:\n  batch_size: none\n");
	CHECK_EQ(cfg_load(path, &c, &e), CFG_E_INVALID);
	CHECK_STR(e.message, th_fmt("%s:2:15: worker.batch_size: expected a whole number, got "
	                            "'none'",
	                            path));
	if (geteuid() != 0) { /* root reads anything */
		path = th_write("secret.yaml", "");
		CHECK(chmod(path, 0) == 0);
		CHECK_EQ(cfg_load(path, &c, &e), CFG_E_IO);
		CHECK_CONTAINS(e.message, "cannot read: Permission denied");
	}
}

static void
null_arguments(void)
{
	cfg *c = NULL;

	cfg_free(NULL);
	/* no error struct and no name: still loads, still fails cleanly */
	CHECK_EQ(cfg_load_buffer(NULL, "worker: {}\n", 11, &c, NULL), CFG_OK);
	CHECK(c != NULL && c->path != NULL);
	hold(c);
	CHECK_EQ(cfg_load_buffer(NULL, "worker: 1\n", 10, &c, NULL), CFG_E_INVALID);
	CHECK(c == NULL);
	CHECK_EQ(cfg_load(th_path("none.yaml"), &c, NULL), CFG_E_IO);
	/* length, not NUL, ends the text */
	CHECK_EQ(cfg_load_buffer("x", "worker: {}\nbogus: 1\n", 11, &c, NULL), CFG_OK);
	hold(c);
	CHECK_EQ(cfg_load_buffer("x", NULL, 0, &c, NULL), CFG_OK);
	hold(c);
	release();
}

/* Every bad file in this table fails with a one-line message that starts
 * with the file name and a position, and leaks nothing (under ASan). */
static void
errors_are_one_line(void)
{
	static const char *const bad[] = {
		"broker:\n  listne: 1\n",
		"supervisor:\n  max_replicas: many\n",
		"broker:\n  data: a\n  data: b\n",
		"broker:\n  listen: [tcp://x\n",
		"queues:\n  \"\\t\": {}\n",
		"worker:\n  sink:\n    command: [a, ~]\n",
		"supervisor:\n  behavior:\n    scale_up:\n      policies: [1]\n",
		"supervisor:\n  behavior:\n    scale_up:\n      policies: [{type: pods}]\n",
		"supervisor:\n  fallback: {replicas: 1, behavior: sometimes}\n",
		"queues:\n  a: {}\n  b: {retry: {base: 1h}}\n",
		"\"\\u2028\": 1\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg *c = NULL;
		cfg_error e;
		int rc = cfg_load_buffer("bad.yaml", bad[i], strlen(bad[i]), &c, &e);
		if (rc == CFG_OK)
			th_fail(__FILE__, __LINE__, "accepted: %s", bad[i]);
		CHECK(c == NULL);
		CHECK(strncmp(e.message, "bad.yaml:", 9) == 0);
		CHECK(e.line >= 1 && e.column >= 1);
		CHECK(strchr(e.message, '\n') == NULL);
	}
}

static const th_case cases[] = {
	TH_CASE(defaults_equal_file),
	TH_CASE(defaults_values),
	TH_CASE(empty_file_is_defaults),
	TH_CASE(subset_keeps_other_defaults),
	TH_CASE(durations),
	TH_CASE(sizes),
	TH_CASE(tolerance_ppm_exact),
	TH_CASE(booleans_and_enums),
	TH_CASE(lists_null_terminated),
	TH_CASE(queues_inherit_in_either_order),
	TH_CASE(queue_names),
	TH_CASE(many_queues),
	TH_CASE(behavior_defaults),
	TH_CASE(behavior_policies_replace),
	TH_CASE(fallback_and_guard),
	TH_CASE(derived_broker_and_queue),
	TH_CASE(error_unknown_key),
	TH_CASE(error_wrong_type),
	TH_CASE(error_out_of_range),
	TH_CASE(error_cross_field),
	TH_CASE(error_duplicate_key),
	TH_CASE(error_malformed_yaml),
	TH_CASE(error_io),
	TH_CASE(null_arguments),
	TH_CASE(errors_are_one_line),
	{NULL, NULL},
};

TH_MAIN(cases)
