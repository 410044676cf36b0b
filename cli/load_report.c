/* load_report: a load_result as a human report and as JSON. Prints only:
 * nothing here measures. */
#include "load.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *
target_name(int t)
{
	return t == LOAD_TARGET_HTTP ? "http" : t == LOAD_TARGET_DIRECT ? "direct" : "sluice";
}

/* 1234567 -> "1,234,567" into buf (at least 32 bytes). */
static const char *
commas(uint64_t v, char *buf)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
	int o = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

static void
row(FILE *f, const char *name, const load_figures *s, bool total)
{
	char vus[32], req[32];
	if (total)
		snprintf(vus, sizeof(vus), "max %d", s->max_vus);
	else
		snprintf(vus, sizeof(vus), "%d->%d", s->from_vus, s->to_vus);
	fprintf(f, "%-6s %7.1fs %-11s %11s %9.1f %9.1f %8.2f %8.2f %8.2f %8.2f %9" PRIu64 " %6.2f%%\n",
	        name, s->duration_s, vus, commas(s->requests, req), s->rps, s->mps, s->latency.p50_ms,
	        s->latency.p95_ms, s->latency.p99_ms, s->latency.max_ms, s->failed,
	        100.0 * s->error_rate);
}

void
cli_load_report(FILE *f, const load_opts *o, const load_result *r)
{
	char b1[32], b2[32];
	fprintf(f, "sluice load: %s %s, queue %s", target_name(o->target), r->address, o->queue);
	if (o->target == LOAD_TARGET_SLUICE)
		fprintf(f, ", batch %d", o->batch > 0 ? o->batch : 1);
	if (o->target == LOAD_TARGET_DIRECT)
		fprintf(f, ", table %s, pool %d", o->table ? o->table : "events", o->pool);
	fprintf(f, ", %zu-byte payloads %s-N", o->size, r->prefix);
	if (o->target != LOAD_TARGET_DIRECT)
		fprintf(f, ", keys %s", o->no_keys ? "off" : "on");
	fprintf(f, "%s\n\n", r->cancelled ? " (interrupted)" : "");
	fprintf(f, "%-6s %8s %-11s %11s %9s %9s %8s %8s %8s %8s %9s %7s\n", "stage", "time", "VUs",
	        "requests", "req/s", "msgs/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "failed",
	        "rate");
	for (size_t i = 0; i < r->nstages; i++) {
		char name[24];
		snprintf(name, sizeof(name), "%zu", i + 1);
		row(f, name, &r->stages[i], false);
	}
	row(f, "total", &r->total, true);

	const load_figures *t = &r->total;
	fprintf(f, "\nok: %s requests (%s messages), %.1f/s", commas(t->ok, b1),
	        commas(t->messages, b2), t->ok_rps);
	if (t->ok_latency.count > 0)
		fprintf(f, "; latency p50 %.2f, p95 %.2f, p99 %.2f, max %.2f ms", t->ok_latency.p50_ms,
		        t->ok_latency.p95_ms, t->ok_latency.p99_ms, t->ok_latency.max_ms);
	fprintf(f, "\nfailed: %s (%.2f%%)", commas(t->failed, b1), 100.0 * t->error_rate);
	for (int k = 1; k < LOAD_NKINDS; k++)
		fprintf(f, "%s %s %" PRIu64, k == 1 ? ":" : ",", cli_load_kind_name(k), t->errors[k]);
	fputc('\n', f);
	for (int k = 1; k < LOAD_NKINDS; k++)
		if (t->errors[k] > 0 && r->first_error[k][0] != '\0')
			fprintf(f, "  first %s error: %s\n", cli_load_kind_name(k), r->first_error[k]);
	double cpu = r->cpu_user_s + r->cpu_sys_s;
	fprintf(f, "generator CPU: %.2f s user+sys for %s requests", cpu, commas(t->requests, b1));
	if (t->requests > 0)
		fprintf(f, " (%.1f us per request, %.0f%% of one core)", cpu * 1e6 / (double)t->requests,
		        t->duration_s > 0 ? 100.0 * cpu / t->duration_s : 0.0);
	fputc('\n', f);
}

static void
json_latency(jbuf *b, const char *name, const load_latency *l)
{
	jbuf_printf(b,
	            "\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,"
	            "\"max\":%.3f,\"mean\":%.3f}",
	            name, l->count, l->p50_ms, l->p95_ms, l->p99_ms, l->max_ms, l->mean_ms);
}

static void
json_errors(jbuf *b, const uint64_t *e)
{
	jbuf_printf(b, "\"errors\":{");
	for (int k = 1; k < LOAD_NKINDS; k++)
		jbuf_printf(b, "%s\"%s\":%" PRIu64, k == 1 ? "" : ",", cli_load_kind_name(k), e[k]);
	jbuf_printf(b, "}");
}

static void
json_figures(jbuf *b, const load_figures *s)
{
	jbuf_printf(b,
	            "{\"duration_s\":%.3f,\"from_vus\":%d,\"to_vus\":%d,\"max_vus\":%d,"
	            "\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"messages\":%" PRIu64
	            ",\"failed\":%" PRIu64 ",\"rps\":%.2f,\"ok_rps\":%.2f,\"mps\":%.2f,"
	            "\"error_rate\":%.6f,",
	            s->duration_s, s->from_vus, s->to_vus, s->max_vus, s->requests, s->ok, s->messages,
	            s->failed, s->rps, s->ok_rps, s->mps, s->error_rate);
	json_errors(b, s->errors);
	jbuf_printf(b, ",");
	json_latency(b, "latency_ms", &s->latency);
	jbuf_printf(b, ",");
	json_latency(b, "ok_latency_ms", &s->ok_latency);
	jbuf_printf(b, "}");
}

static void
json_str(jbuf *b, const char *s)
{
	jbuf_json_str(b, s ? s : "", s ? strlen(s) : 0);
}

void
cli_load_json(jbuf *b, const load_opts *o, const load_result *r)
{
	jbuf_printf(b, "{\"target\":\"%s\",\"address\":", target_name(o->target));
	json_str(b, r->address);
	jbuf_printf(b, ",\"queue\":");
	json_str(b, o->queue);
	jbuf_printf(b, ",\"batch\":%d,\"size\":%zu,\"keys\":%s,\"prefix\":",
	            o->batch > 0 ? o->batch : 1, o->size, o->no_keys ? "false" : "true");
	json_str(b, r->prefix);
	jbuf_printf(b, ",\"think_ms\":%lld,\"timeout_ms\":%lld", (long long)o->think_ms,
	            (long long)o->timeout_ms);
	if (o->target == LOAD_TARGET_DIRECT) {
		jbuf_printf(b, ",\"table\":");
		json_str(b, o->table ? o->table : "events");
		jbuf_printf(b, ",\"pool\":%d,\"busy_timeout_ms\":%lld", o->pool,
		            (long long)o->busy_timeout_ms);
	}
	jbuf_printf(b, ",\"cancelled\":%s,\"stages\":[", r->cancelled ? "true" : "false");
	for (size_t i = 0; i < r->nstages; i++) {
		if (i > 0)
			jbuf_printf(b, ",");
		json_figures(b, &r->stages[i]);
	}
	jbuf_printf(b, "],\"total\":");
	json_figures(b, &r->total);
	jbuf_printf(b, ",\"first_errors\":{");
	bool first = true;
	for (int k = 1; k < LOAD_NKINDS; k++) {
		if (r->first_error[k][0] == '\0')
			continue;
		jbuf_printf(b, "%s\"%s\":", first ? "" : ",", cli_load_kind_name(k));
		json_str(b, r->first_error[k]);
		first = false;
	}
	double cpu = r->cpu_user_s + r->cpu_sys_s;
	jbuf_printf(b,
	            "},\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"us_per_request\":%.3f},"
	            "\"timeline\":[",
	            r->cpu_user_s, r->cpu_sys_s,
	            r->total.requests ? cpu * 1e6 / (double)r->total.requests : 0.0);
	for (size_t i = 0; i < r->nseconds; i++) {
		const load_second *s = &r->timeline[i];
		jbuf_printf(b,
		            "%s{\"t\":%d,\"vus\":%d,\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",",
		            i ? "," : "", s->t, s->vus, s->requests, s->ok);
		json_errors(b, s->errors);
		jbuf_printf(b, ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}", s->p50_ms, s->p99_ms,
		            s->max_ms);
	}
	jbuf_printf(b, "]}\n");
}
