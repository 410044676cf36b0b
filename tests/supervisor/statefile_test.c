/* statefile_test: STATE.yaml written by supervisor/statefile.c and read by
 * config/state.c: the exact text, the round trip (a restarted supervisor
 * decides as if it had never stopped), the atomic replace, and each error
 * a hand-edited file can hold. */
#include "config.h"
#include "harness.h"
#include "policy.h"
#include "state.h"
#include "statefile.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

static sup_policy
v2_policy(void)
{
	static cfg_scale_policy up[] = {{CFG_POLICY_PODS, 4, 15000}, {CFG_POLICY_PERCENT, 100, 15000}};
	static cfg_scale_policy down[] = {{CFG_POLICY_PERCENT, 100, 15000}};
	cfg_supervisor c;
	memset(&c, 0, sizeof(c));
	c.mode = CFG_MODE_KEDA;
	c.max_replicas = 100;
	c.idle_replicas = -1;
	c.initial_replicas = -1;
	c.target_per_worker = 100;
	c.tolerance_up_ppm = c.tolerance_down_ppm = 100000;
	c.cooldown_ms = 300000;
	c.downscale_stabilization_ms = 300000;
	c.behavior_set = true;
	c.scale_up = (cfg_scale_rules){0, CFG_SELECT_MAX, up, 2};
	c.scale_down = (cfg_scale_rules){60000, CFG_SELECT_MAX, down, 1};
	c.guard_set = true;
	c.guard_max_commit_p99_ms = 200;
	c.guard_window_ms = 30000;
	sup_policy p;
	char err[256];
	if (sup_policy_from_cfg(&c, &p, err, sizeof(err)) != SUP_OK)
		th_fail(__FILE__, __LINE__, "%s", err);
	return p;
}

static sup_decision
poll_at(const sup_policy *p, sup_state *st, int64_t t_ms, int64_t depth, int64_t p99)
{
	sup_poll poll = SUP_POLL_INIT;
	sup_decision d;
	poll.ok = depth >= 0;
	poll.depth = depth >= 0 ? depth : 0;
	poll.sink_reported = p99 >= 0;
	poll.sink_commit_p99_ms = p99 >= 0 ? p99 : 0;
	CHECK_EQ(sup_decide(p, st, t_ms, &poll, &d), SUP_OK);
	return d;
}

static void
format_is_exact(void)
{
	sup_state st;
	sup_state_init(&st, 3, 1700000000000);
	st.has_last_active = true;
	st.last_active_ms = 1700000012500;
	st.failures = 2;
	CHECK_EQ(sup_state_add_recommendation(&st, 1700000010000, 3), SUP_OK);
	CHECK_EQ(sup_state_add_recommendation(&st, 1700000011001, 5), SUP_OK);
	CHECK_EQ(sup_state_add_event(&st, true, 1700000011001, 2), SUP_OK);
	char *text;
	size_t len;
	CHECK_EQ(sup_statefile_format(&st, &text, &len), SUP_OK);
	CHECK_STR(text, "# sluice-supervisor state; times in seconds. See docs/scaling.md.\n"
	                "t0: 1700000000\n"
	                "current: 3\n"
	                "last_active: 1700000012.5\n"
	                "failures: 2\n"
	                "recommendations:\n"
	                "  - [1700000010, 3]\n"
	                "  - [1700000011.001, 5]\n"
	                "scale_up_events:\n"
	                "  - [1700000011.001, 2]\n"
	                "scale_down_events: []\n"
	                "guard_since: null\n");
	CHECK_EQ(len, strlen(text));
	free(text);
	sup_state_fini(&st);

	/* no history yet: the key is left out, so a reader seeds */
	sup_state_init(&st, 0, 0);
	CHECK_EQ(sup_statefile_format(&st, &text, &len), SUP_OK);
	CHECK(strstr(text, "\nrecommendations") == NULL);
	CHECK_CONTAINS(text, "last_active: null\n");
	free(text);
	sup_state_fini(&st);
}

/* Two supervisors: one runs on, the other is "restarted" from the file at
 * each poll. They must decide alike, poll by poll. */
static void
round_trip_resumes(void)
{
	sup_policy p = v2_policy();
	sup_state a, b;
	const char *path = th_path("state.yaml");
	char err[256];
	cfg_error cerr;
	sup_state_init(&a, 1, 0);
	sup_state_init(&b, 1, 0);
	for (int i = 0; i < 200; i++) {
		int64_t t = (int64_t)i * 1500 + (i % 3); /* odd milliseconds too */
		int64_t depth = i % 17 == 5 ? -1 : (i * 37) % 2500;
		int64_t p99 = i % 40 < 10 ? 300 : (i % 40 < 20 ? -1 : 50);
		sup_decision da = poll_at(&p, &a, t, depth, p99);
		sup_decision db = poll_at(&p, &b, t, depth, p99);
		if (da.replicas != db.replicas || strcmp(da.reason, db.reason) != 0)
			th_fail(__FILE__, __LINE__, "poll %d: %d \"%s\" vs restarted %d \"%s\"", i, da.replicas,
			        da.reason, db.replicas, db.reason);
		CHECK_EQ(sup_statefile_write(path, &b, err, sizeof(err)), SUP_OK);
		sup_state_fini(&b);
		if (sup_statefile_load(path, &b, &cerr) != SUP_OK)
			th_fail(__FILE__, __LINE__, "poll %d: %s", i, cerr.message);
	}
	struct stat sb;
	CHECK(stat(path, &sb) == 0);
	CHECK_EQ(sb.st_mode & 0777, 0600);
	/* nothing but the state file is left in the directory */
	DIR *d = opendir(th_dir());
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			files++;
	closedir(d);
	CHECK_EQ(files, 1);
	sup_state_fini(&a);
	sup_state_fini(&b);
}

static void
write_fails_cleanly(void)
{
	sup_state st;
	char err[256];
	sup_state_init(&st, 1, 0);
	CHECK_EQ(sup_statefile_write(th_path("missing/state.yaml"), &st, err, sizeof(err)), SUP_E_IO);
	CHECK_CONTAINS(err, "missing/state.yaml: cannot create a temporary file: No such file");
	sup_state_fini(&st);
}

static void
reader_defaults_and_order(void)
{
	cfg_state *cs;
	cfg_error err;
	static const char text[] = "t0: 12.5\n"
	                           "current: 4\n"
	                           "recommendations: [[20, 3], [10, 5], [15.25, 4]]\n";
	CHECK_EQ(cfg_state_load_buffer("s.yaml", text, sizeof(text) - 1, &cs, &err), CFG_OK);
	CHECK_EQ(cs->t0_ms, 12500);
	CHECK_EQ(cs->current, 4);
	CHECK(!cs->has_last_active);
	CHECK_EQ(cs->failures, 0);
	CHECK(cs->has_recommendations);
	CHECK_EQ(cs->nrecommendations, 3);
	CHECK_EQ(cs->recommendations[2].t_ms, 15250);
	CHECK_EQ(cs->nscale_up_events, 0);
	CHECK(!cs->has_guard_since);

	sup_state st;
	CHECK_EQ(sup_state_from_cfg(cs, &st), SUP_OK);
	sup_sample v[8];
	/* sorted by time; (10, 5) dominates nothing older, (15.25, 4), (20, 3) */
	size_t n = sup_state_recommendations(&st, v, 8);
	CHECK_EQ(n, 3);
	CHECK_EQ(v[0].t_ms, 10000);
	CHECK_EQ(v[1].t_ms, 15250);
	CHECK_EQ(v[2].t_ms, 20000);
	sup_state_fini(&st);
	cfg_state_free(cs);

	/* omitted: seed on the first poll; []: an empty history */
	static const char omitted[] = "t0: 0\ncurrent: 2\nlast_active: null\n";
	CHECK_EQ(cfg_state_load_buffer("s.yaml", omitted, sizeof(omitted) - 1, &cs, &err), CFG_OK);
	CHECK_EQ(sup_state_from_cfg(cs, &st), SUP_OK);
	CHECK(!st.seeded);
	sup_state_fini(&st);
	cfg_state_free(cs);
	static const char empty[] = "t0: 0\ncurrent: 2\nrecommendations: []\nguard_since: 7\n";
	CHECK_EQ(cfg_state_load_buffer("s.yaml", empty, sizeof(empty) - 1, &cs, &err), CFG_OK);
	CHECK_EQ(sup_state_from_cfg(cs, &st), SUP_OK);
	CHECK(st.seeded);
	CHECK_EQ(sup_state_recommendations(&st, v, 8), 0);
	CHECK(st.guard_over);
	CHECK_EQ(st.guard_since_ms, 7000);
	sup_state_fini(&st);
	cfg_state_free(cs);
}

static void
reader_errors_say_where(void)
{
	static const struct {
		const char *text;
		const char *message;
	} bad[] = {
		{"t0: 0\ncurrent: 1\ncurent: 2\n", "s.yaml:3:1: curent: unknown key (did you mean 'current'?)"},
		{"t0: 0\ncurrent: 1\nbogus: 2\n", "s.yaml:3:1: bogus: unknown key"},
		{"t0: 0\ncurrent: 1\ncurrent: 2\n", "s.yaml:3:1: current: duplicate key"},
		{"current: 1\n", "s.yaml:1:1: t0: missing"},
		{"t0: 0\n", "s.yaml:1:1: current: missing"},
		{"", "s.yaml:1:1: t0: missing (the state file is empty)"},
		{"t0: -1\ncurrent: 1\n", "s.yaml:1:5: t0: expected seconds"},
		{"t0: 1.2345\ncurrent: 1\n", "s.yaml:1:5: t0: expected seconds"},
		{"t0: 0\ncurrent: many\n", "s.yaml:2:10: current: expected a whole number from 0 to 1000000"},
		{"t0: 0\ncurrent: 1000001\n", "s.yaml:2:10: current: expected a whole number"},
		{"t0: 0\ncurrent: 1\nrecommendations: 5\n",
		 "s.yaml:3:18: recommendations: expected a list of [t, n] pairs, or []"},
		{"t0: 0\ncurrent: 1\nrecommendations:\n  - [1, 2]\n  - [3]\n",
		 "s.yaml:5:5: recommendations[1]: expected a pair [t, n]"},
		{"t0: 0\ncurrent: 1\nscale_up_events: [[1, x]]\n",
		 "s.yaml:3:23: scale_up_events[0]: expected a whole number"},
		{"t0: 0\ncurrent: [1\n", "s.yaml:3:1: malformed YAML"},
		{"- 1\n- 2\n", "s.yaml:1:1: state: expected a mapping of keys"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg_state *cs = (cfg_state *)1;
		cfg_error err;
		int rc = cfg_state_load_buffer("s.yaml", bad[i].text, strlen(bad[i].text), &cs, &err);
		if (rc == CFG_OK || cs != NULL || strncmp(err.message, bad[i].message, strlen(bad[i].message)) != 0)
			th_fail(__FILE__, __LINE__, "case %zu: rc %d, \"%s\", want \"%s...\"", i, rc, err.message,
			        bad[i].message);
	}
	cfg_error err;
	sup_state st;
	CHECK_EQ(sup_statefile_load(th_path("none.yaml"), &st, &err), SUP_E_IO);
	CHECK_CONTAINS(err.message, "none.yaml: cannot read: No such file");
	sup_state_fini(&st);
}

static void
seconds_parse(void)
{
	int64_t ms;
	CHECK_EQ(cfg_seconds_parse("0", &ms), 0);
	CHECK_EQ(ms, 0);
	CHECK_EQ(cfg_seconds_parse("12.5", &ms), 0);
	CHECK_EQ(ms, 12500);
	CHECK_EQ(cfg_seconds_parse("0.001", &ms), 0);
	CHECK_EQ(ms, 1);
	CHECK_EQ(cfg_seconds_parse("1700000000.123", &ms), 0);
	CHECK_EQ(ms, INT64_C(1700000000123));
	CHECK_EQ(cfg_seconds_parse("1.", &ms), -1);
	CHECK_EQ(cfg_seconds_parse(".5", &ms), -1);
	CHECK_EQ(cfg_seconds_parse("1e3", &ms), -1);
	CHECK_EQ(cfg_seconds_parse("", &ms), -1);
	CHECK_EQ(cfg_seconds_parse("1000000000001", &ms), -1);
}

static const th_case cases[] = {
	TH_CASE(format_is_exact),
	TH_CASE(round_trip_resumes),
	TH_CASE(write_fails_cleanly),
	TH_CASE(reader_defaults_and_order),
	TH_CASE(reader_errors_say_where),
	TH_CASE(seconds_parse),
	{NULL, NULL},
};

TH_MAIN(cases)
