/* replay_test: sluice-supervisor --replay, the real program on traces and
 * state files written to the scratch directory; output compared exactly.
 * Also its command line, its errors, and its speed on a million rows. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

static const char *
sup(void)
{
	return th_bin("sluice-supervisor");
}

/* Runs a replay; returns the exit status, stdout in *out, stderr in *err. */
static int
replay(const char *config, const char *trace, const char *state, char **out, char **err)
{
	th_write("sluice.yaml", config);
	th_write("trace.csv", trace);
	if (state != NULL)
		th_write("state.yaml", state);
	int rc = th_sh(out, "'%s' -c sluice.yaml --replay trace.csv %s 2>err.txt", sup(),
	               state ? "--state state.yaml" : "");
	*err = th_read(th_path("err.txt"));
	return rc;
}

#define EXPECT_REPLAY(config, trace, state, want)                                                  \
	do {                                                                                           \
		char *out_, *err_;                                                                         \
		int rc_ = replay((config), (trace), (state), &out_, &err_);                                \
		if (rc_ != 0)                                                                              \
			th_fail(__FILE__, __LINE__, "exit %d: %s", rc_, err_ ? err_ : "");                     \
		CHECK_STR(out_, (want));                                                                   \
	} while (0)

static const char example_trace[] = "t,depth,in_flight\n"
                                     "0,0,0\n"
                                     "10,350,0\n"
                                     "20,1200,50\n"
                                     "30,2000,400\n"
                                     "40,,\n"
                                     "50,900,300\n"
                                     "60,400,0\n"
                                     "70,0,0\n"
                                     "100,0,0\n"
                                     "131,0,0\n";

/* The worked example of docs/scaling.md, keep the two in step. */
static void
worked_example_keda(void)
{
	EXPECT_REPLAY(
		"supervisor:\n"
		"  mode: keda\n"
		"  max_replicas: 8\n"
		"  cooldown_period: 60s\n"
		"  downscale_stabilization: 30s\n",
		example_trace, NULL,
		"t,metric,replicas,reason\n"
		"0,0,0,\"hold: backlog 0 <= activation threshold 0, stay at 0\"\n"
		"10,350,1,\"scale up: backlog 350 > activation threshold 0, activate at 1\"\n"
		"20,1250,4,\"scale up: backlog 1250 / 100 per worker = 13, limited to 4 by the scale-up "
		"limit max(2 x 1, 4)\"\n"
		"30,2400,8,\"scale up: backlog 2400 / 100 per worker = 24, limited to 8 by max_replicas\"\n"
		"40,,8,hold: metric read failed (1 in a row)\n"
		"50,1200,8,\"hold: backlog 1200 / 100 per worker = 12, stabilized to 24 (max over 30s), "
		"limited to 8 by max_replicas\"\n"
		"60,400,8,\"hold: backlog 400 / 100 per worker = 4, stabilized to 12 (max over 30s), "
		"limited to 8 by max_replicas\"\n"
		"70,0,8,\"hold: backlog 0 / 100 per worker = 0, stabilized to 12 (max over 30s), limited "
		"to 8 by max_replicas; inactive: to 0 after 60s cooldown\"\n"
		"100,0,1,\"scale down: backlog 0 / 100 per worker = 0, kept at 1 until the cooldown "
		"ends\"\n"
		"131,0,0,\"scale down: backlog 0 <= activation threshold 0 past cooldown 60s, to "
		"min_replicas 0\"\n");
}

static void
worked_example_responsive(void)
{
	char *out, *err;
	CHECK_EQ(replay("supervisor:\n"
	                "  max_replicas: 8\n"
	                "  cooldown_period: 60s\n"
	                "  downscale_stabilization: 30s\n",
	                example_trace, NULL, &out, &err),
	         0);
	/* straight to 4 on activation, and to 8 one poll later */
	CHECK_CONTAINS(out, "\n10,350,4,\"scale up: backlog 350 > activation threshold 0, activate at "
	                    "350 / 100 per worker = 4\"\n");
	CHECK_CONTAINS(out, "\n20,1250,8,\"scale up: backlog 1250 / 100 per worker = 13, limited to 8 "
	                    "by max_replicas\"\n");
	CHECK_CONTAINS(out, "\n131,0,0,");
}

/* behavior present: the v2 path and its rate policies */
static void
v2_behavior(void)
{
	EXPECT_REPLAY("supervisor:\n"
	              "  mode: keda\n"
	              "  min_replicas: 1\n"
	              "  behavior:\n"
	              "    scale_down:\n"
	              "      stabilization_window: 10s\n"
	              "      policies: [{type: pods, value: 1, period: 5s}]\n",
	              "t,depth,in_flight\n"
	              "0,3000,0\n"
	              "1,3000,0\n"
	              "15,3000,0\n"
	              "16,0,0\n"
	              "26,0,0\n"
	              "27,0,0\n"
	              "31,0,0\n",
	              NULL,
	              "t,metric,replicas,reason\n"
	              "0,3000,5,\"scale up: backlog 3000 / 100 per worker = 30, limited to 5 by "
	              "scale-up policy pods 4 per 15s\"\n"
	              "1,3000,5,\"hold: backlog 3000 / 100 per worker = 30, limited to 5 by scale-up "
	              "policy pods 4 per 15s\"\n"
	              "15,3000,10,\"scale up: backlog 3000 / 100 per worker = 30, limited to 10 by "
	              "scale-up policy percent 100 per 15s\"\n"
	              "16,0,10,\"hold: backlog 0 / 100 per worker = 0, held at 10 by scale-down "
	              "stabilization (max over 10s)\"\n"
	              "26,0,9,\"scale down: backlog 0 / 100 per worker = 0, limited to 9 by scale-down "
	              "policy pods 1 per 5s\"\n"
	              "27,0,9,\"hold: backlog 0 / 100 per worker = 0, limited to 9 by scale-down policy "
	              "pods 1 per 5s\"\n"
	              "31,0,8,\"scale down: backlog 0 / 100 per worker = 0, limited to 8 by scale-down "
	              "policy pods 1 per 5s\"\n");
}

/* optional columns, in any order; an empty cell is "not given" */
static void
columns_by_name(void)
{
	EXPECT_REPLAY("supervisor:\n"
	              "  mode: keda\n"
	              "  metric_type: value\n"
	              "  downscale_stabilization: 0s\n",
	              "t,depth,in_flight,ready,current\n"
	              "0,0,0,,\n"
	              "1.5,250,0,2,4\n"
	              "2.25,250,0,,\n",
	              NULL,
	              "t,metric,replicas,reason\n"
	              "0,0,0,\"hold: backlog 0 <= activation threshold 0, stay at 0\"\n"
	              "1.5,250,5,scale up: backlog 250 / 100 x 2 ready = 5\n"
	              "2.25,250,10,\"scale up: backlog 250 / 100 x 5 ready = 13, limited to 10 by the "
	              "scale-up limit max(2 x 5, 4)\"\n");
}

/* a fallback poll prints its metric; the guard reads sink columns */
static void
fallback_and_guard_columns(void)
{
	EXPECT_REPLAY("supervisor:\n"
	              "  mode: keda\n"
	              "  min_replicas: 1\n"
	              "  downscale_stabilization: 0s\n"
	              "  fallback: {failure_threshold: 1, replicas: 3}\n"
	              "  guard: {max_commit_p99: 200ms, window: 10s}\n",
	              "t,depth,in_flight,sink_commit_p99_ms,sink_failure_ratio\n"
	              "0,100,0,,\n"
	              "1,,,,\n"
	              "2,,,,\n"
	              "3,900,0,250,\n"
	              "13,900,0,250,0.01\n"
	              "14,900,0,,\n",
	              NULL,
	              "t,metric,replicas,reason\n"
	              "0,100,1,hold: backlog 100 / 100 per worker = 1\n"
	              "1,,1,hold: metric read failed (1 in a row)\n"
	              "2,300,3,scale up: fallback after 2 failed reads (static 3): backlog 300 / 100 "
	              "per worker = 3\n"
	              "3,900,3,\"hold: sink commit p99 250ms over guard limit 200ms, not scaling up to 6\"\n"
	              "13,900,2,\"scale down: sink commit p99 250ms over guard limit 200ms for 10s, 3 -> 2\"\n"
	              "14,900,4,\"scale up: backlog 900 / 100 per worker = 9, limited to 4 by the scale-up "
	              "limit max(2 x 2, 4)\"\n");
}

/* --state: the tail of the worked example, resumed from what the
 * supervisor knew after t=60 */
static void
resume_from_state(void)
{
	EXPECT_REPLAY("supervisor:\n"
	              "  mode: keda\n"
	              "  max_replicas: 8\n"
	              "  cooldown_period: 60s\n"
	              "  downscale_stabilization: 30s\n",
	              "t,depth,in_flight\n"
	              "70,0,0\n"
	              "100,0,0\n"
	              "131,0,0\n",
	              "t0: 0\n"
	              "current: 8\n"
	              "last_active: 60\n"
	              "failures: 0\n"
	              "recommendations: [[50, 12], [60, 4]]\n"
	              "scale_up_events: []\n"
	              "scale_down_events: []\n",
	              "t,metric,replicas,reason\n"
	              "70,0,8,\"hold: backlog 0 / 100 per worker = 0, stabilized to 12 (max over 30s), "
	              "limited to 8 by max_replicas; inactive: to 0 after 60s cooldown\"\n"
	              "100,0,1,\"scale down: backlog 0 / 100 per worker = 0, kept at 1 until the "
	              "cooldown ends\"\n"
	              "131,0,0,\"scale down: backlog 0 <= activation threshold 0 past cooldown 60s, to "
	              "min_replicas 0\"\n");

	/* no state: current = initial_replicas; omitted recommendations seed */
	EXPECT_REPLAY("supervisor:\n"
	              "  mode: keda\n"
	              "  initial_replicas: 6\n",
	              "t,depth,in_flight\n"
	              "5,100,0\n",
	              NULL,
	              "t,metric,replicas,reason\n"
	              "5,100,6,\"hold: backlog 100 / 100 per worker = 1, held at 6 by scale-down "
	              "stabilization (max over 300s)\"\n");
	EXPECT_REPLAY("supervisor:\n"
	              "  mode: keda\n",
	              "t,depth,in_flight\n"
	              "5,100,0\n",
	              "t0: 0\ncurrent: 6\nrecommendations: []\n",
	              "t,metric,replicas,reason\n"
	              "5,100,1,scale down: backlog 100 / 100 per worker = 1\n");
}

static void
bad_traces(void)
{
	static const struct {
		const char *trace;
		const char *message;
	} bad[] = {
		{"", "trace.csv:1: no header (expected t,depth,in_flight)\n"},
		{"time,depth,in_flight\n", "trace.csv:1: the header must start with t,depth,in_flight\n"},
		{"t,depth,in_flight,cur\n",
		 "trace.csv:1: unknown column 'cur' (known: current, ready, leases, sink_commit_p99_ms, "
		 "sink_failure_ratio)\n"},
		{"t,depth,in_flight,ready,ready\n", "trace.csv:1: column 'ready' appears twice\n"},
		{"t,depth,in_flight\n1,2,3\n5,1\n", "trace.csv:3: expected 3 fields, found 2\n"},
		{"t,depth,in_flight\n5,abc,0\n",
		 "trace.csv:2: depth: 'abc' is not a whole number from 0 to 1e15\n"},
		{"t,depth,in_flight\n5,-1,0\n",
		 "trace.csv:2: depth: '-1' is not a whole number from 0 to 1e15\n"},
		{"t,depth,in_flight\n5,1,0\n4,1,0\n", "trace.csv:3: t: 4 is earlier than the row before\n"},
		{"t,depth,in_flight\n5,1,\n",
		 "trace.csv:2: in_flight: empty, but depth is given (leave depth empty for a failed "
		 "poll)\n"},
		{"t,depth,in_flight\n1.2345,1,0\n",
		 "trace.csv:2: t: '1.2345' is not seconds (e.g. 12 or 12.5, at most 3 decimals)\n"},
		{"t,depth,in_flight,current\n1,1,0,x\n",
		 "trace.csv:2: current: 'x' is not a whole number from 0 to 1000000\n"},
		{"t,depth,in_flight,sink_failure_ratio\n1,1,0,-0.5\n",
		 "trace.csv:2: sink_failure_ratio: '-0.5' is not a ratio from 0 to 1\n"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out, *err;
		int rc = replay("supervisor:\n  mode: keda\n", bad[i].trace, NULL, &out, &err);
		if (rc != 2 || err == NULL || strcmp(err, bad[i].message) != 0)
			th_fail(__FILE__, __LINE__, "case %zu: exit %d, stderr \"%s\", want \"%s\"", i, rc,
			        err ? err : "", bad[i].message);
	}
	/* CRLF line ends and blank lines are fine */
	EXPECT_REPLAY("supervisor:\n  mode: keda\n", "t,depth,in_flight\r\n\r\n0, 0 ,0\r\n", NULL,
	              "t,metric,replicas,reason\n"
	              "0,0,0,\"hold: backlog 0 <= activation threshold 0, stay at 0\"\n");
}

static void
command_line(void)
{
	char *out;
	th_write("ok.yaml", "supervisor:\n  mode: keda\n");
	CHECK_EQ(th_sh(&out, "'%s' -h", sup()), 0);
	CHECK_CONTAINS(out, "usage: sluice-supervisor");
	CHECK_EQ(th_sh(&out, "'%s' --help", sup()), 0);
	CHECK_CONTAINS(out, "--replay");

	CHECK_EQ(th_sh(&out, "'%s' --bogus 2>&1", sup()), 2);
	CHECK_CONTAINS(out, "unknown option --bogus");
	CHECK_CONTAINS(out, "usage: sluice-supervisor");
	CHECK_EQ(th_sh(&out, "'%s' -c 2>&1", sup()), 2);
	CHECK_CONTAINS(out, "missing the argument of -c");
	CHECK_EQ(th_sh(&out, "'%s' -c ok.yaml --replay 2>&1", sup()), 2);
	CHECK_CONTAINS(out, "missing the argument of --replay");
	CHECK_EQ(th_sh(&out, "'%s' -c ok.yaml --state s.yaml 2>&1", sup()), 2);
	CHECK_CONTAINS(out, "--state goes with --replay");
	CHECK_EQ(th_sh(&out, "'%s' -c ok.yaml extra 2>&1", sup()), 2);
	CHECK_CONTAINS(out, "unexpected argument extra");

	th_write("bad.yaml", "supervisor:\n  max_replicas: many\n");
	CHECK_EQ(th_sh(&out, "'%s' -c bad.yaml --replay none.csv 2>&1", sup()), 2);
	CHECK_CONTAINS(out, "bad.yaml:2:");
	CHECK_CONTAINS(out, "supervisor.max_replicas");
	CHECK_EQ(th_sh(&out, "'%s' -c ok.yaml --replay none.csv 2>&1", sup()), 2);
	CHECK_CONTAINS(out, "none.csv: cannot open: No such file");
	th_write("t.csv", "t,depth,in_flight\n");
	CHECK_EQ(th_sh(&out, "'%s' -c ok.yaml --replay t.csv --state none.yaml 2>&1", sup()), 2);
	CHECK_CONTAINS(out, "none.yaml: cannot read: No such file");
	/* without --replay the supervisor runs live: tests/supervisor/live_test.c */
}

/* A million polls: measured and printed; the bound is generous because CI
 * machines are shared (docs/scaling.md records a real figure). */
static void
million_rows(void)
{
	long rows = th_scaled(1000000);
	FILE *f = fopen(th_path("big.csv"), "w");
	CHECK(f != NULL);
	fputs("t,depth,in_flight\n", f);
	long depth = 0;
	for (long i = 0; i < rows; i++) {
		depth += (i * 7919) % 601 - 300; /* a walk that wanders up and down */
		if (depth < 0)
			depth = 0;
		if (i % 997 == 0)
			fprintf(f, "%ld,,\n", i);
		else
			fprintf(f, "%ld,%ld,%ld\n", i, depth, (i * 31) % 500);
	}
	CHECK(fclose(f) == 0);
	th_write("sluice.yaml", "supervisor:\n  mode: keda\n");

	char *out;
	int64_t t0 = th_now_ms();
	CHECK_EQ(th_sh(&out, "'%s' -c sluice.yaml --replay big.csv > out.csv", sup()), 0);
	int64_t took = th_now_ms() - t0;
	printf("replay: %ld rows in %lld ms\n", rows, (long long)took);
	CHECK_EQ(th_sh(&out, "wc -l < out.csv"), 0);
	CHECK_EQ(atol(out), rows + 1);
	CHECK(took < 10000 * rows / 1000000 + 1000);
}

static const th_case cases[] = {
	TH_CASE(worked_example_keda),
	TH_CASE(worked_example_responsive),
	TH_CASE(v2_behavior),
	TH_CASE(columns_by_name),
	TH_CASE(fallback_and_guard_columns),
	TH_CASE(resume_from_state),
	TH_CASE(bad_traces),
	TH_CASE(command_line),
	TH_CASE(million_rows),
	{NULL, NULL},
};

TH_MAIN(cases)
