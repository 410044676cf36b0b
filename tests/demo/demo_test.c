/* demo_test: `sluice demo --quick` end to end, as a new user runs it. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

static int
count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; p != NULL && (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
quick_demo_protects_the_database_and_reports(void)
{
	char *out;
	int64_t t0 = th_now_ms();
	int rc = th_sh(&out, "%s demo --quick --dir %s 2>&1", th_bin("sluice"), th_path("run"));
	int64_t took = th_now_ms() - t0;
	printf("%s", out);
	printf("  demo --quick took %lld ms\n", (long long)took);
	CHECK_EQ(rc, 0);
	/* the Sluice phase: nothing failed, everything landed once */
	CHECK_CONTAINS(out, "every acknowledged message exactly once");
	const char *row = strstr(out, "failed requests");
	CHECK(row != NULL);
	long direct_failed, sluice_failed;
	CHECK(sscanf(row, "failed requests %ld %ld", &direct_failed, &sluice_failed) == 2);
	CHECK_EQ(sluice_failed, 0);
	/* the supervisor scaled up and back down */
	CHECK_CONTAINS(out, "scale: 0 -> ");
	CHECK_CONTAINS(out, "back down once the queue drained");
	/* a self-contained report with its charts */
	char *html = th_read(th_path("run/report.html"));
	CHECK(html != NULL);
	CHECK(count(html, "<svg") >= 4);
	CHECK_EQ(count(html, "<script"), 0);
	CHECK_EQ(count(html, "href=\"http"), 0);
	CHECK_CONTAINS(html, "through Sluice");
	/* and nothing left running: the broker's port is free again */
	char *cfg = th_read(th_path("run/sluice.yaml"));
	CHECK(cfg != NULL);
	const char *url = strstr(cfg, "tcp://127.0.0.1:");
	int port = 0;
	CHECK(url != NULL && sscanf(url, "tcp://127.0.0.1:%d", &port) == 1);
	char *err;
	CHECK(th_sh(&err, "%s -b tcp://127.0.0.1:%d stats 2>&1", th_bin("sluice"), port) == 1);
	CHECK_CONTAINS(err, "cannot reach the broker");
}

static const th_case cases[] = {
	TH_CASE(quick_demo_protects_the_database_and_reports),
	{NULL, NULL},
};

TH_MAIN(cases)
