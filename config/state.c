/*
 * state: the supervisor's state file, read with libyaml's document API
 * (the file is small) into a plain cfg_state. libyaml's 1/0 results are
 * translated here; every error names file, line, column and key.
 */
#include "state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* What one load works with. */
typedef struct reader {
	const char *name;
	yaml_document_t *doc;
	cfg_error *err;
} reader;

static int
fail(reader *r, const yaml_node_t *at, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
fail(reader *r, const yaml_node_t *at, const char *key, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	r->err->line = at ? (int)at->start_mark.line + 1 : 1;
	r->err->column = at ? (int)at->start_mark.column + 1 : 1;
	snprintf(r->err->key, sizeof(r->err->key), "%s", key);
	snprintf(r->err->message, sizeof(r->err->message), "%s:%d:%d: %s: %s", r->name,
	         r->err->line, r->err->column, key, what);
	return CFG_E_INVALID;
}

static const char *
scalar(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool
is_null(const yaml_node_t *n)
{
	const char *s = scalar(n);
	return s != NULL && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (strcmp(s, "null") == 0 || strcmp(s, "~") == 0 || strcmp(s, "Null") == 0 ||
	        strcmp(s, "NULL") == 0 || s[0] == '\0');
}

/* Non-negative decimal integer, at most max. */
static int
parse_count(const char *s, int64_t max, int64_t *out)
{
	int64_t v = 0;
	if (s == NULL || *s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (max - (*s - '0')) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

int
cfg_seconds_parse(const char *s, int64_t *ms)
{
	int64_t whole = 0, frac = 0;
	int nfrac = 0;
	const char *p = s;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > (CFG_STATE_SECONDS_MAX - (*p - '0')) / 10)
			return -1;
		whole = whole * 10 + (*p - '0');
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (++nfrac > 3)
				return -1;
			frac = frac * 10 + (*p - '0');
		}
		for (int i = nfrac; i < 3; i++)
			frac *= 10;
	}
	if (*p != '\0')
		return -1;
	*ms = whole * 1000 + frac;
	return 0;
}

static int
get_seconds(reader *r, const yaml_node_t *n, const char *key, int64_t *ms)
{
	if (cfg_seconds_parse(scalar(n), ms) != 0)
		return fail(r, n, key,
		            "expected seconds, e.g. 12 or 12.5 (at most 3 decimals, not negative)");
	return CFG_OK;
}

static int
get_int(reader *r, const yaml_node_t *n, const char *key, int64_t max, int64_t *v)
{
	if (parse_count(scalar(n), max, v) != 0)
		return fail(r, n, key, "expected a whole number from 0 to %lld", (long long)max);
	return CFG_OK;
}

/* A list of [t, n] pairs. */
static int
get_samples(reader *r, const yaml_node_t *n, const char *key, cfg_state_sample **out,
            size_t *count)
{
	*out = NULL;
	*count = 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(r, n, key, "expected a list of [t, n] pairs, or []");
	size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (len == 0)
		return CFG_OK;
	cfg_state_sample *v = calloc(len, sizeof(*v));
	if (v == NULL)
		return CFG_E_NOMEM;
	*out = v;
	for (size_t i = 0; i < len; i++) {
		yaml_node_t *item = yaml_document_get_node(r->doc, n->data.sequence.items.start[i]);
		char k[64];
		snprintf(k, sizeof(k), "%s[%zu]", key, i);
		if (item->type != YAML_SEQUENCE_NODE ||
		    item->data.sequence.items.top - item->data.sequence.items.start != 2)
			return fail(r, item, k, "expected a pair [t, n]");
		yaml_node_t *t = yaml_document_get_node(r->doc, item->data.sequence.items.start[0]);
		yaml_node_t *c = yaml_document_get_node(r->doc, item->data.sequence.items.start[1]);
		int rc;
		if ((rc = get_seconds(r, t, k, &v[i].t_ms)) != CFG_OK)
			return rc;
		if ((rc = get_int(r, c, k, CFG_STATE_COUNT_MAX, &v[i].n)) != CFG_OK)
			return rc;
		(*count)++;
	}
	return CFG_OK;
}

static const char *const keys[] = {"t0",
                                   "current",
                                   "last_active",
                                   "failures",
                                   "recommendations",
                                   "scale_up_events",
                                   "scale_down_events",
                                   "guard_since",
                                   NULL};

/* Edit distance, for "did you mean": the keys are short. */
static size_t
distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[40];
	if (la >= 40 || lb >= 40)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static const char *
nearest_key(const char *k)
{
	const char *best = NULL;
	size_t bd = 3; /* at most two edits away */
	for (int i = 0; keys[i] != NULL; i++) {
		size_t d = distance(k, keys[i]);
		if (d < bd) {
			bd = d;
			best = keys[i];
		}
	}
	return best;
}

static int
read_root(reader *r, const yaml_node_t *root, cfg_state *s)
{
	bool seen[sizeof(keys) / sizeof(keys[0])] = {false};
	int rc;

	if (root == NULL || is_null(root))
		return fail(r, root, "t0", "missing (the state file is empty)");
	if (root->type != YAML_MAPPING_NODE)
		return fail(r, root, "state", "expected a mapping of keys");
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *kn = yaml_document_get_node(r->doc, pr->key);
		yaml_node_t *vn = yaml_document_get_node(r->doc, pr->value);
		const char *k = scalar(kn);
		int idx = -1;
		if (k == NULL)
			return fail(r, kn, "state", "keys must be plain words");
		for (int i = 0; keys[i] != NULL; i++)
			if (strcmp(k, keys[i]) == 0)
				idx = i;
		if (idx < 0) {
			const char *near = nearest_key(k);
			if (near != NULL)
				return fail(r, kn, k, "unknown key (did you mean '%s'?)", near);
			return fail(r, kn, k, "unknown key");
		}
		if (seen[idx])
			return fail(r, kn, k, "duplicate key");
		seen[idx] = true;

		int64_t v;
		switch (idx) {
		case 0:
			if ((rc = get_seconds(r, vn, k, &s->t0_ms)) != CFG_OK)
				return rc;
			break;
		case 1:
			if ((rc = get_int(r, vn, k, CFG_STATE_REPLICAS_MAX, &v)) != CFG_OK)
				return rc;
			s->current = (int)v;
			break;
		case 2:
			s->has_last_active = !is_null(vn);
			if (s->has_last_active && (rc = get_seconds(r, vn, k, &s->last_active_ms)) != CFG_OK)
				return rc;
			break;
		case 3:
			if ((rc = get_int(r, vn, k, INT32_MAX, &v)) != CFG_OK)
				return rc;
			s->failures = (int)v;
			break;
		case 4:
			s->has_recommendations = !is_null(vn);
			if (s->has_recommendations &&
			    (rc = get_samples(r, vn, k, &s->recommendations, &s->nrecommendations)) != CFG_OK)
				return rc;
			break;
		case 5:
			if (!is_null(vn) &&
			    (rc = get_samples(r, vn, k, &s->scale_up_events, &s->nscale_up_events)) != CFG_OK)
				return rc;
			break;
		case 6:
			if (!is_null(vn) && (rc = get_samples(r, vn, k, &s->scale_down_events,
			                                      &s->nscale_down_events)) != CFG_OK)
				return rc;
			break;
		case 7:
			s->has_guard_since = !is_null(vn);
			if (s->has_guard_since && (rc = get_seconds(r, vn, k, &s->guard_since_ms)) != CFG_OK)
				return rc;
			break;
		}
	}
	if (!seen[0])
		return fail(r, root, "t0", "missing");
	if (!seen[1])
		return fail(r, root, "current", "missing");
	return CFG_OK;
}

int
cfg_state_load_buffer(const char *name, const char *text, size_t len, cfg_state **out,
                      cfg_error *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	cfg_state *s = NULL;
	reader r = {.name = name, .doc = &doc, .err = err};
	int rc;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err->message, sizeof(err->message), "%s: out of memory", name);
		return CFG_E_NOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		err->line = (int)parser.problem_mark.line + 1;
		err->column = (int)parser.problem_mark.column + 1;
		snprintf(err->message, sizeof(err->message), "%s:%d:%d: malformed YAML: %s", name,
		         err->line, err->column, parser.problem ? parser.problem : "cannot parse");
		rc = parser.error == YAML_MEMORY_ERROR ? CFG_E_NOMEM : CFG_E_SYNTAX;
		yaml_parser_delete(&parser);
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err->message, sizeof(err->message), "%s: out of memory", name);
		rc = CFG_E_NOMEM;
		goto fail;
	}
	rc = read_root(&r, yaml_document_get_root_node(&doc), s);
	if (rc == CFG_E_NOMEM)
		snprintf(err->message, sizeof(err->message), "%s: out of memory", name);
	if (rc != CFG_OK)
		goto fail;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	*out = s;
	return CFG_OK;

fail:
	cfg_state_free(s);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

int
cfg_state_load(const char *path, cfg_state **out, cfg_error *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int rc;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (f == NULL) {
		snprintf(err->message, sizeof(err->message), "%s: cannot read: %s", path, strerror(errno));
		return CFG_E_IO;
	}
	do {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nb = realloc(buf, ncap);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				snprintf(err->message, sizeof(err->message), "%s: out of memory", path);
				return CFG_E_NOMEM;
			}
			buf = nb;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		snprintf(err->message, sizeof(err->message), "%s: cannot read: %s", path, strerror(errno));
		free(buf);
		fclose(f);
		return CFG_E_IO;
	}
	fclose(f);
	rc = cfg_state_load_buffer(path, buf, len, out, err);
	free(buf);
	return rc;
}

void
cfg_state_free(cfg_state *s)
{
	if (s == NULL)
		return;
	free(s->recommendations);
	free(s->scale_up_events);
	free(s->scale_down_events);
	free(s);
}
