/*
 * config: loads Sluice's YAML configuration into the structs of config.h.
 *
 * libyaml builds the node tree (yaml_parser_load); tables of fields, one per
 * mapping of the file, then walk it, so each key's spelling, type, range and
 * destination is written once. The defaults are set in code first and the
 * file overrides them; the few defaults that derive from other keys
 * (worker.broker, supervisor.queue, the behavior windows and policies) are
 * filled at the end, so the order of sections in a file never matters. For
 * the same reason the entries of `queues` are read last, over a copy of
 * queue_defaults.
 *
 * The first error stops the load and becomes one line, "FILE:LINE:COLUMN:
 * key.path: what is wrong", at the key or value at fault. A key given as
 * null (`key:` with nothing) is the same as a key left out.
 *
 * Ownership: every string and array in a cfg belongs to it. A cfg is valid
 * to free at every step of a load, so each error path just frees it.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MS_SECOND 1000LL
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)
#define KIB 1024LL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define TIB (1024 * GIB)
#define PPM 1000000LL

/* Ten years: beyond any sensible setting, and small enough that a clock in
 * milliseconds plus any duration never overflows. */
#define DURATION_CAP (3650 * MS_DAY)
/* LEASE carries visibility as u32 milliseconds; 12h is also SQS's ceiling. */
#define VISIBILITY_CAP (12 * MS_HOUR)
#define MESSAGE_BYTES_CAP (64 * MIB)
/* The HPA's own limits on behavior. */
#define WINDOW_CAP (3600 * MS_SECOND)
#define PERIOD_CAP (1800 * MS_SECOND)
/* A configuration is a few kilobytes; this only stops a wrong path (a disk
 * image, /dev/zero) from eating memory. */
#define FILE_CAP (16 * MIB)

#define QUOTE_MAX 48  /* bytes of a value quoted back in a message */
#define PATH_CAP 256  /* a dotted key path while walking */
#define FIELDS_MAX 32 /* keys in one mapping's table */

#define DEFAULT_LISTEN "tcp://127.0.0.1:7450"

/* ---- values ---- */

/* The results of the number readers below; the public parsers fold them
 * into -1. */
enum { NUM_OK = 0, NUM_SYNTAX, NUM_NEGATIVE, NUM_INEXACT, NUM_RANGE };

static bool
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static int64_t
gcd64(int64_t a, int64_t b)
{
	while (b != 0) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/*
 * Reads an unsigned decimal ("12", "1.5", ".5", "5.") that is all of s[0..n)
 * and returns value * scale exactly, in integers: "0.1" at scale 10^6 is
 * 100000, never 99999 the way a double could round it. A result that is
 * not whole is NUM_INEXACT.
 */
static int
decimal_scale(const char *s, size_t n, int64_t scale, int64_t *out)
{
	size_t i = 0;
	int64_t whole = 0;
	bool digits = false;

	for (; i < n && is_digit(s[i]); i++) {
		int d = s[i] - '0';
		if (whole > (INT64_MAX - d) / 10)
			return NUM_RANGE;
		whole = whole * 10 + d;
		digits = true;
	}
	int64_t frac = 0, pow10 = 1;
	if (i < n && s[i] == '.') {
		size_t start = ++i;
		while (i < n && is_digit(s[i]))
			i++;
		digits = digits || i > start;
		size_t end = i;
		while (end > start && s[end - 1] == '0')
			end--;
		/* 10^19 does not fit; a fraction that long is finer than any unit
		 * we scale to */
		if (end - start > 18)
			return NUM_INEXACT;
		for (size_t j = start; j < end; j++) {
			frac = frac * 10 + (s[j] - '0');
			pow10 *= 10;
		}
	}
	if (!digits || i != n)
		return NUM_SYNTAX;
	/* frac / pow10 * scale is whole iff pow10 / gcd divides frac */
	int64_t g = gcd64(scale, pow10);
	int64_t q = pow10 / g;
	if (frac % q != 0)
		return NUM_INEXACT;
	int64_t part = (frac / q) * (scale / g); /* < scale: no overflow */
	if (whole > (INT64_MAX - part) / scale)
		return NUM_RANGE;
	*out = whole * scale + part;
	return NUM_OK;
}

/* A signed whole number, decimal. */
static int
whole_parse(const char *s, size_t n, int64_t *out)
{
	bool neg = false;
	size_t i = 0;
	int64_t v = 0;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i == n)
		return NUM_SYNTAX;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return NUM_SYNTAX;
		int d = s[i] - '0';
		if (v > (INT64_MAX - d) / 10)
			return NUM_RANGE;
		v = v * 10 + d;
	}
	*out = neg ? -v : v;
	return NUM_OK;
}

typedef struct unit {
	const char *name;
	int64_t scale;
} unit;

/* ms before m: units are matched whole, so the order is only for reading */
static const unit duration_units[] = {
	{"ms", 1},     {"s", MS_SECOND}, {"m", MS_MINUTE}, {"h", MS_HOUR},
	{"d", MS_DAY}, {"", MS_SECOND},  {NULL, 0},
};

static const unit size_units[] = {
	{"", 1},      {"B", 1},     {"KiB", KIB},    {"MiB", MIB},       {"GiB", GIB},
	{"TiB", TIB}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}, {"TB", 1000000000000},
	{NULL, 0},
};

/* A decimal number followed by one of units, e.g. "1.5s" or "64KiB". */
static int
quantity_parse(const char *s, size_t n, const unit *units, int64_t *out)
{
	size_t num = 0;

	if (n > 0 && s[0] == '-')
		return NUM_NEGATIVE;
	while (num < n && (is_digit(s[num]) || s[num] == '.'))
		num++;
	for (const unit *u = units; u->name != NULL; u++) {
		size_t len = strlen(u->name);
		if (n - num == len && memcmp(s + num, u->name, len) == 0)
			return decimal_scale(s, num, u->scale, out);
	}
	return NUM_SYNTAX;
}

static int
duration_read(const char *s, size_t n, int64_t *ms)
{
	int rc = quantity_parse(s, n, duration_units, ms);
	if (rc == NUM_OK && *ms > DURATION_CAP)
		return NUM_RANGE;
	return rc;
}

int
cfg_duration_parse(const char *text, int64_t *ms)
{
	int64_t v;
	if (text == NULL || duration_read(text, strlen(text), &v) != NUM_OK)
		return -1;
	*ms = v;
	return 0;
}

int
cfg_size_parse(const char *text, int64_t *bytes)
{
	int64_t v;
	if (text == NULL || quantity_parse(text, strlen(text), size_units, &v) != NUM_OK)
		return -1;
	*bytes = v;
	return 0;
}

bool
cfg_queue_name_valid(const char *name, size_t len)
{
	if (name == NULL || len == 0 || len > 128)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) ||
		          ch == '.' || ch == '_' || ch == '-';
		if (!ok)
			return false;
	}
	return true;
}

/* ---- text for messages ---- */

/* Renders a duration the way a person would write it: the largest unit
 * that divides it. */
static void
duration_format(char *buf, size_t cap, int64_t ms)
{
	static const unit units[] = {
		{"d", MS_DAY}, {"h", MS_HOUR}, {"m", MS_MINUTE}, {"s", MS_SECOND}, {NULL, 0},
	};
	for (const unit *u = units; u->name != NULL; u++) {
		if (ms != 0 && ms % u->scale == 0) {
			snprintf(buf, cap, "%lld%s", (long long)(ms / u->scale), u->name);
			return;
		}
	}
	snprintf(buf, cap, "%lldms", (long long)ms);
}

static void
size_format(char *buf, size_t cap, int64_t bytes)
{
	static const unit units[] = {
		{"TiB", TIB}, {"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}, {NULL, 0},
	};
	for (const unit *u = units; u->name != NULL; u++) {
		if (bytes != 0 && bytes % u->scale == 0) {
			snprintf(buf, cap, "%lld%s", (long long)(bytes / u->scale), u->name);
			return;
		}
	}
	snprintf(buf, cap, "%lld", (long long)bytes);
}

static void
ppm_format(char *buf, size_t cap, int64_t ppm)
{
	char frac[8];
	snprintf(frac, sizeof(frac), "%06lld", (long long)(ppm % PPM));
	size_t n = strlen(frac);
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	snprintf(buf, cap, "%lld%s%s", (long long)(ppm / PPM), n > 0 ? "." : "", frac);
}

/*
 * Copies text from the file into a message: control bytes escaped so the
 * message stays one line, at most QUOTE_MAX bytes, cut on a UTF-8 boundary
 * and marked "..." when cut. cap must be at least 4 * QUOTE_MAX + 4.
 */
static void
text_quote(char *dst, size_t cap, const char *s, size_t n)
{
	size_t cut = n > QUOTE_MAX ? QUOTE_MAX : n;
	size_t o = 0;

	while (cut > 0 && cut < n && ((unsigned char)s[cut] & 0xC0) == 0x80)
		cut--;
	for (size_t i = 0; i < cut && o + 5 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", ch);
		else
			dst[o++] = (char)ch;
	}
	if (cut < n && o + 4 <= cap) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

/* Drops a UTF-8 sequence that truncation left incomplete at the end. */
static void
utf8_clip(char *s)
{
	size_t n = strlen(s), i = n, tail = 0;

	while (i > 0 && tail < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
		i--;
		tail++;
	}
	if (i == 0 || ((unsigned char)s[i - 1] & 0x80) == 0)
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : 1;
	if (tail < need)
		s[i - 1] = '\0';
}

/* OSA distance (Levenshtein plus swapping two neighbours, the commonest
 * typo: listne). Both strings at most 64 bytes. */
static size_t
edit_distance(const char *a, size_t n, const char *b, size_t m)
{
	unsigned char d[65][65];

	for (size_t i = 0; i <= n; i++)
		d[i][0] = (unsigned char)i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = (unsigned char)j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			unsigned cost = a[i - 1] != b[j - 1];
			unsigned best = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1u < best)
				best = d[i - 1][j] + 1u;
			if (d[i][j - 1] + 1u < best)
				best = d[i][j - 1] + 1u;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1u < best)
				best = d[i - 2][j - 2] + 1u;
			d[i][j] = (unsigned char)best;
		}
	}
	return d[n][m];
}

/* The name among names (stride bytes apart, NULL-terminated) closest to
 * s[0..n), or NULL when none is close enough to be a likely typo. */
static const char *
closest(const char *s, size_t n, const char *const *names, size_t stride)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;

	if (n > 64)
		return NULL;
	for (const char *const *p = names; *p != NULL;
	     p = (const char *const *)(const void *)((const char *)p + stride)) {
		size_t len = strlen(*p);
		if (len > 64)
			continue;
		size_t d = edit_distance(s, n, *p, len);
		size_t limit = len <= 3 ? 1 : len <= 8 ? 2 : 3;
		if (d <= limit && d < len && d < best_d) {
			best = *p;
			best_d = d;
		}
	}
	return best;
}

/* ---- the loader ---- */

typedef struct loader {
	const char *name; /* file name for messages; borrowed */
	cfg_error *err;   /* borrowed */
	yaml_document_t *doc;
	cfg *c;
	/* value node of each c->queues[i], read last; owned array, borrowed nodes */
	const yaml_node_t **queue_nodes;
	/* behavior.scale_up/scale_down.policies given: no default list then */
	bool policies_given[2];
} loader;

static int fail_at(loader *l, yaml_mark_t mark, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Fills l->err; returns CFG_E_INVALID for the caller to pass up. */
static int
fail_at(loader *l, yaml_mark_t mark, const char *key, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	cfg_error *e = l->err;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	e->line = (int)mark.line + 1;
	e->column = (int)mark.column + 1;
	snprintf(e->key, sizeof(e->key), "%s", key);
	utf8_clip(e->key);
	if (key[0] != '\0')
		snprintf(e->message, sizeof(e->message), "%s:%d:%d: %s: %s", l->name, e->line,
		         e->column, key, what);
	else
		snprintf(e->message, sizeof(e->message), "%s:%d:%d: %s", l->name, e->line,
		         e->column, what);
	utf8_clip(e->message);
	return CFG_E_INVALID;
}

static int
fail_nomem(loader *l)
{
	memset(l->err, 0, sizeof(*l->err));
	snprintf(l->err->message, sizeof(l->err->message), "%s: out of memory", l->name);
	return CFG_E_NOMEM;
}

static bool
is_null(const yaml_node_t *n)
{
	if (n == NULL)
		return true;
	if (n->type != YAML_SCALAR_NODE)
		return false;
	if (n->tag != NULL && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
		return true;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)n->data.scalar.value;
	return n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *
scalar_text(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* What a node is, for "expected X, got Y". quoted needs 4 * QUOTE_MAX + 8. */
static const char *
node_describe(const yaml_node_t *n, char *quoted, size_t cap)
{
	if (is_null(n))
		return "nothing";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	quoted[0] = '\'';
	text_quote(quoted + 1, cap - 2, scalar_text(n), n->data.scalar.length);
	strcat(quoted, "'");
	return quoted;
}

static int
fail_type(loader *l, const yaml_node_t *n, const char *path, const char *expected)
{
	char q[4 * QUOTE_MAX + 8];
	return fail_at(l, n->start_mark, path, "expected %s, got %s", expected,
	               node_describe(n, q, sizeof(q)));
}

static yaml_node_t *
node_get(loader *l, int id)
{
	return yaml_document_get_node(l->doc, id);
}

/* path + "." + key, the key made safe for a one-line message. */
static void
path_join(char *dst, const char *path, const char *key, size_t len)
{
	char q[4 * QUOTE_MAX + 8];
	text_quote(q, sizeof(q), key, len);
	if (path[0] != '\0')
		snprintf(dst, PATH_CAP, "%s.%s", path, q);
	else
		snprintf(dst, PATH_CAP, "%s", q);
	utf8_clip(dst);
}

static void
key_path(char *dst, const char *path, const char *key)
{
	path_join(dst, path, key, strlen(key));
}

static void
argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **p = argv; *p != NULL; p++)
		free(*p);
	free(argv);
}

/* ---- tables ---- */

enum field_kind {
	F_INT,      /* int, whole number in [min, max] */
	F_INT64,    /* int64_t, whole number in [min, max] */
	F_DURATION, /* int64_t milliseconds in [min, max] */
	F_SIZE,     /* int64_t bytes in [min, max] */
	F_PPM,      /* int64_t parts per million of a decimal, in [min, max] */
	F_RATIO,    /* double from a decimal read as ppm, in [min, max] ppm */
	F_BOOL,     /* bool */
	F_STRING,   /* char *, owned */
	F_ENUM,     /* int: index in names */
	F_WORD,     /* char *, owned: one of names */
	F_ARGV,     /* char **, NULL-terminated, owned; count at count_off */
	F_MAP,      /* a nested mapping read with sub, into obj + off */
	F_CUSTOM,   /* read by fn */
};

/* flags */
#define FL_NONEMPTY 0x01 /* F_STRING, F_ARGV: no empty string (F_ARGV: the first) */
#define FL_QUEUE 0x02    /* F_STRING: a queue name */
#define FL_URL 0x04      /* F_STRING, F_ARGV: an NNG URL */
#define FL_ONE 0x08      /* F_ARGV: a single string is a list of one */
#define FL_SETS 0x10     /* F_MAP: present and not null sets the bool at set_off */

typedef struct table table;
typedef int (*custom_fn)(loader *l, const yaml_node_t *key, const yaml_node_t *val,
                         const char *path, void *obj);
/* Cross-field rules of one mapping, run after its keys; given holds the key
 * node of each field given a value (NULL if absent or null), in table order. */
typedef int (*check_fn)(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                        const char *path, void *obj);

typedef struct field {
	const char *key;
	enum field_kind kind;
	size_t off;               /* of the value in the table's object */
	int64_t min, max;         /* numbers */
	const char *const *names; /* F_ENUM, F_WORD: NULL-terminated */
	const table *sub;         /* F_MAP */
	custom_fn fn;             /* F_CUSTOM */
	size_t count_off;         /* F_ARGV: the size_t count */
	size_t set_off;           /* F_MAP with FL_SETS: the bool */
	unsigned flags;
} field;

struct table {
	const field *fields; /* ends with a NULL key */
	check_fn check;      /* may be NULL */
};

static int map_read(loader *l, const yaml_node_t *map, const char *path, const table *t, void *obj);

static int
field_index(const table *t, const char *key)
{
	for (int i = 0; t->fields[i].key != NULL; i++) {
		assert(i < FIELDS_MAX); /* map_read's seen[] holds one per field */
		if (strcmp(t->fields[i].key, key) == 0)
			return i;
	}
	return -1;
}

/* The key node of field `key` if the mapping gave it a value. */
static const yaml_node_t *
given_key(const table *t, const yaml_node_t *const *given, const char *key)
{
	int i = field_index(t, key);
	return i < 0 ? NULL : given[i];
}

/* Of two keys of one mapping (either may be absent), the one written later. */
static const yaml_node_t *
later(const yaml_node_t *a, const yaml_node_t *b)
{
	if (a == NULL)
		return b;
	if (b == NULL)
		return a;
	return b->start_mark.index > a->start_mark.index ? b : a;
}

static void
value_format(char *buf, size_t cap, enum field_kind kind, int64_t v)
{
	if (kind == F_DURATION)
		duration_format(buf, cap, v);
	else if (kind == F_SIZE)
		size_format(buf, cap, v);
	else if (kind == F_PPM || kind == F_RATIO)
		ppm_format(buf, cap, v);
	else
		snprintf(buf, cap, "%lld", (long long)v);
}

/*
 * The rule lo <= hi between two keys of one mapping (min_replicas <=
 * max_replicas, retry.base <= retry.max), where either value may come from
 * a default. Reported at whichever of the two keys the mapping wrote later,
 * since that is the one that broke the rule.
 */
static int
order_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
            const table *t, enum field_kind kind, const char *lo_key, const char *lo_name,
            int64_t lo, const char *hi_key, const char *hi_name, int64_t hi)
{
	char at_path[PATH_CAP], lo_s[32], hi_s[32];

	if (lo <= hi)
		return 0;
	const yaml_node_t *klo = given_key(t, given, lo_key), *khi = given_key(t, given, hi_key);
	value_format(lo_s, sizeof(lo_s), kind, lo);
	value_format(hi_s, sizeof(hi_s), kind, hi);
	if (khi != NULL && later(klo, khi) == khi) {
		key_path(at_path, path, hi_key);
		return fail_at(l, khi->start_mark, at_path, "%s is less than %s (%s)", hi_s,
		               lo_name, lo_s);
	}
	key_path(at_path, path, lo_key);
	return fail_at(l, klo != NULL ? klo->start_mark : map->start_mark, at_path,
	               "%s is more than %s (%s)", lo_s, hi_name, hi_s);
}

static int
range_check(loader *l, const field *f, const yaml_node_t *v, const char *path, int64_t x)
{
	char q[4 * QUOTE_MAX + 8], bound[32];

	if (x >= f->min && x <= f->max)
		return 0;
	node_describe(v, q, sizeof(q));
	if (x < f->min && f->min == 0)
		return fail_at(l, v->start_mark, path, "must not be negative, got %s", q);
	value_format(bound, sizeof(bound), f->kind, x < f->min ? f->min : f->max);
	return fail_at(l, v->start_mark, path, "must be at %s %s, got %s",
	               x < f->min ? "least" : "most", bound, q);
}

/* The message for a number reader's failure; expected describes the form. */
static int
number_fail(loader *l, const field *f, const yaml_node_t *v, const char *path, int rc,
            const char *expected)
{
	char q[4 * QUOTE_MAX + 8];
	node_describe(v, q, sizeof(q));
	switch (rc) {
	case NUM_NEGATIVE:
		return fail_at(l, v->start_mark, path, "must not be negative, got %s", q);
	case NUM_RANGE:
		return range_check(l, f, v, path, INT64_MAX);
	case NUM_INEXACT:
		if (f->kind == F_DURATION)
			return fail_at(l, v->start_mark, path,
			               "%s is not a whole number of milliseconds", q);
		if (f->kind == F_SIZE)
			return fail_at(l, v->start_mark, path, "%s is not a whole number of bytes",
			               q);
		return fail_at(l, v->start_mark, path, "%s has more than 6 decimal places", q);
	default:
		return fail_at(l, v->start_mark, path, "expected %s, got %s", expected, q);
	}
}

/* "full, fast" for messages. */
static void
names_list(char *buf, size_t cap, const char *const *names)
{
	size_t o = 0;
	buf[0] = '\0';
	for (const char *const *p = names; *p != NULL && o < cap; p++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", p == names ? "" : ", ", *p);
}

static int
name_find(const char *const *names, const char *s, size_t n)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
			return i;
	return -1;
}

static int
bool_read(const char *s, size_t n, bool *out)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", NULL};
	static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", NULL};
	if (name_find(yes, s, n) >= 0)
		*out = true;
	else if (name_find(no, s, n) >= 0)
		*out = false;
	else
		return -1;
	return 0;
}

static bool
url_ok(const char *s)
{
	const char *sep = strstr(s, "://");
	return sep != NULL && sep != s && sep[3] != '\0';
}

/* Checks one string against a field's flags; n is its length. */
static int
string_check(loader *l, const field *f, const yaml_node_t *v, const char *path, const char *s,
             size_t n, bool first)
{
	char q[4 * QUOTE_MAX + 8];

	if (strlen(s) != n)
		return fail_at(l, v->start_mark, path, "must not contain a NUL character");
	if (n == 0 && (f->flags & (FL_NONEMPTY | FL_QUEUE | FL_URL)) != 0 && first)
		return fail_at(l, v->start_mark, path, "must not be empty");
	node_describe(v, q, sizeof(q));
	if ((f->flags & FL_QUEUE) != 0 && !cfg_queue_name_valid(s, n))
		return fail_at(l, v->start_mark, path,
		               "%s is not a valid queue name (1-128 of A-Z a-z 0-9 . _ -)", q);
	if ((f->flags & FL_URL) != 0 && !url_ok(s))
		return fail_at(l, v->start_mark, path,
		               "expected an address like tcp://HOST:PORT or ipc:///PATH, got %s",
		               q);
	return 0;
}

static char *
text_dup(const yaml_node_t *v)
{
	return strndup(scalar_text(v), v->data.scalar.length);
}

/* A list of strings into a NULL-terminated argv, replacing the old one. */
static int
argv_read(loader *l, const field *f, const yaml_node_t *v, const char *path, void *obj)
{
	char ***slot = (char ***)(void *)((char *)obj + f->off);
	size_t *count = (size_t *)(void *)((char *)obj + f->count_off);
	const yaml_node_t *one = v;
	const yaml_node_item_t *items = NULL;
	size_t n = 1;
	char **argv = NULL;
	char item_path[PATH_CAP];
	int rc;

	if (v->type == YAML_SEQUENCE_NODE) {
		items = v->data.sequence.items.start;
		n = (size_t)(v->data.sequence.items.top - items);
		if (n == 0)
			return fail_at(l, v->start_mark, path, "must not be an empty list");
	} else if (v->type != YAML_SCALAR_NODE || (f->flags & FL_ONE) == 0) {
		return fail_type(l, v, path,
		                 (f->flags & FL_ONE) != 0 ? "a string or a list of strings"
		                                          : "a list of strings");
	}
	argv = calloc(n + 1, sizeof(*argv));
	if (argv == NULL)
		return fail_nomem(l);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *it = items != NULL ? node_get(l, items[i]) : one;
		snprintf(item_path, sizeof(item_path), "%s[%zu]", path, i);
		if (it->type != YAML_SCALAR_NODE || is_null(it)) {
			rc = fail_type(l, it, items != NULL ? item_path : path, "a string");
			goto fail;
		}
		rc = string_check(l, f, it, items != NULL ? item_path : path, scalar_text(it),
		                  it->data.scalar.length, i == 0 || (f->flags & FL_URL) != 0);
		if (rc != 0)
			goto fail;
		if ((argv[i] = text_dup(it)) == NULL) {
			rc = fail_nomem(l);
			goto fail;
		}
	}
	argv_free(*slot);
	*slot = argv;
	*count = n;
	return 0;
fail:
	argv_free(argv);
	return rc;
}

/* Reads v into the field f of obj. key is the field's key node. */
static int
value_read(loader *l, const field *f, const yaml_node_t *key, const yaml_node_t *v,
           const char *path, void *obj)
{
	char names[256];
	char *p = (char *)obj + f->off;
	int64_t x = 0;
	int rc;

	if (f->kind == F_CUSTOM)
		return f->fn(l, key, v, path, obj);
	if (is_null(v))
		return 0; /* as if the key were not there: the default stays */
	if (f->kind == F_MAP) {
		if ((rc = map_read(l, v, path, f->sub, p)) != 0)
			return rc;
		if ((f->flags & FL_SETS) != 0)
			*(bool *)(void *)((char *)obj + f->set_off) = true;
		return 0;
	}
	if (f->kind == F_ARGV)
		return argv_read(l, f, v, path, obj);

	if (v->type != YAML_SCALAR_NODE) {
		static const char *const expected[] = {
			[F_INT] = "a whole number",  [F_INT64] = "a whole number",
			[F_DURATION] = "a duration", [F_SIZE] = "a size",
			[F_PPM] = "a number",        [F_RATIO] = "a number",
			[F_BOOL] = "true or false",  [F_STRING] = "a string",
			[F_ENUM] = "a name",         [F_WORD] = "a name",
		};
		return fail_type(l, v, path, expected[f->kind]);
	}
	const char *s = scalar_text(v);
	size_t n = v->data.scalar.length;

	switch (f->kind) {
	case F_INT:
	case F_INT64:
		if ((rc = whole_parse(s, n, &x)) == NUM_RANGE) {
			/* past int64: past any bound, but say which if there is one */
			if ((rc = range_check(l, f, v, path,
			                      s[0] == '-' ? INT64_MIN : INT64_MAX)) != 0)
				return rc;
			char q[4 * QUOTE_MAX + 8];
			return fail_at(l, v->start_mark, path, "%s is out of range",
			               node_describe(v, q, sizeof(q)));
		}
		if (rc != NUM_OK)
			return number_fail(l, f, v, path, rc, "a whole number");
		if ((rc = range_check(l, f, v, path, x)) != 0)
			return rc;
		if (f->kind == F_INT)
			*(int *)(void *)p = (int)x;
		else
			*(int64_t *)(void *)p = x;
		return 0;
	case F_DURATION:
		if ((rc = duration_read(s, n, &x)) != NUM_OK)
			return number_fail(l, f, v, path, rc,
			                   "a duration like 250ms, 30s, 1.5s, 5m, 2h or 1d");
		if ((rc = range_check(l, f, v, path, x)) != 0)
			return rc;
		*(int64_t *)(void *)p = x;
		return 0;
	case F_SIZE:
		if ((rc = quantity_parse(s, n, size_units, &x)) != NUM_OK)
			return number_fail(l, f, v, path, rc, "a size like 512, 64KiB or 1MiB");
		if ((rc = range_check(l, f, v, path, x)) != 0)
			return rc;
		*(int64_t *)(void *)p = x;
		return 0;
	case F_PPM:
	case F_RATIO: {
		size_t skip = n > 0 && s[0] == '+';
		if (n > 0 && s[0] == '-')
			rc = NUM_NEGATIVE;
		else
			rc = decimal_scale(s + skip, n - skip, PPM, &x);
		if (rc != NUM_OK)
			return number_fail(l, f, v, path, rc, "a decimal number like 0.1");
		if ((rc = range_check(l, f, v, path, x)) != 0)
			return rc;
		if (f->kind == F_PPM)
			*(int64_t *)(void *)p = x;
		else
			*(double *)(void *)p = (double)x / (double)PPM;
		return 0;
	}
	case F_BOOL:
		if (bool_read(s, n, (bool *)(void *)p) != 0)
			return number_fail(l, f, v, path, NUM_SYNTAX, "true or false");
		return 0;
	case F_STRING: {
		if ((rc = string_check(l, f, v, path, s, n, true)) != 0)
			return rc;
		char *copy = text_dup(v);
		if (copy == NULL)
			return fail_nomem(l);
		free(*(char **)(void *)p);
		*(char **)(void *)p = copy;
		return 0;
	}
	case F_ENUM:
	case F_WORD: {
		int i = name_find(f->names, s, n);
		if (i < 0) {
			char q[4 * QUOTE_MAX + 8];
			const char *hint = closest(s, n, f->names, sizeof(f->names[0]));
			names_list(names, sizeof(names), f->names);
			node_describe(v, q, sizeof(q));
			if (hint != NULL)
				return fail_at(l, v->start_mark, path,
				               "expected one of %s, got %s (did you mean '%s'?)",
				               names, q, hint);
			return fail_at(l, v->start_mark, path, "expected one of %s, got %s", names,
			               q);
		}
		if (f->kind == F_ENUM) {
			*(int *)(void *)p = i;
			return 0;
		}
		char *copy = strdup(f->names[i]);
		if (copy == NULL)
			return fail_nomem(l);
		free(*(char **)(void *)p);
		*(char **)(void *)p = copy;
		return 0;
	}
	default:
		return 0; /* F_MAP, F_ARGV, F_CUSTOM: handled above */
	}
}

static int
unknown_key(loader *l, const yaml_node_t *k, const char *path, const table *t)
{
	const char *s = scalar_text(k);
	size_t n = k->data.scalar.length;

	if (n == 2 && memcmp(s, "<<", 2) == 0)
		return fail_at(l, k->start_mark, path, "merge keys (<<) are not supported");
	const char *hint = closest(s, n, &t->fields[0].key, sizeof(field));
	if (hint != NULL)
		return fail_at(l, k->start_mark, path, "unknown key (did you mean '%s'?)", hint);
	return fail_at(l, k->start_mark, path, "unknown key");
}

/* Reads a mapping with table t into obj: each key known, once, its value
 * valid; then the table's cross-field check. A null map changes nothing. */
static int
map_read(loader *l, const yaml_node_t *map, const char *path, const table *t, void *obj)
{
	/* the key node of each field: seen at all (for duplicates), and given
	 * a value (not null: for the checks, as null means "left out") */
	const yaml_node_t *seen[FIELDS_MAX] = {NULL}, *given[FIELDS_MAX] = {NULL};
	char sub[PATH_CAP];
	int rc;

	if (is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return fail_type(l, map, path, "a mapping");
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *k = node_get(l, pr->key), *v = node_get(l, pr->value);
		if (k->type != YAML_SCALAR_NODE)
			return fail_type(l, k, path, "a key name");
		path_join(sub, path, scalar_text(k), k->data.scalar.length);
		int i = -1;
		if (strlen(scalar_text(k)) == k->data.scalar.length)
			i = field_index(t, scalar_text(k));
		if (i < 0)
			return unknown_key(l, k, sub, t);
		if (seen[i] != NULL)
			return fail_at(l, k->start_mark, sub, "duplicate key (first at line %d)",
			               (int)seen[i]->start_mark.line + 1);
		seen[i] = k;
		if (!is_null(v))
			given[i] = k;
		if ((rc = value_read(l, &t->fields[i], k, v, sub, obj)) != 0)
			return rc;
	}
	if (t->check != NULL)
		return t->check(l, map, given, path, obj);
	return 0;
}

/* ---- the sections ---- */

static const char *const durability_names[] = {"full", "fast", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const sink_type_names[] = {"sqlite", "exec", "postgres", NULL};
static const char *const sync_names[] = {"full", "normal", "off", NULL};
static const char *const format_names[] = {"raw", "json", NULL};
static const char *const mode_names[] = {"responsive", "keda", NULL};
static const char *const metric_names[] = {"backlog", "depth", NULL};
static const char *const metric_type_names[] = {"average_value", "value", NULL};
static const char *const select_names[] = {"max", "min", "disabled", NULL};
static const char *const policy_type_names[] = {"pods", "percent", NULL};
static const char *const fallback_names[] = {
	"static", "current_replicas", "current_replicas_if_higher", "current_replicas_if_lower",
	NULL,
};

/* Field constructors for the tables below. clang-format cannot lay out
 * macros that expand to an initializer, so it is kept off them. */
/* clang-format off */
#define INT(k, T, m, lo, hi) {.key = k, .kind = F_INT, .off = offsetof(T, m), .min = lo, .max = hi}
#define INT64(k, T, m, lo, hi)                                                                   \
	{.key = k, .kind = F_INT64, .off = offsetof(T, m), .min = lo, .max = hi}
#define DURATION(k, T, m, lo, hi)                                                                \
	{.key = k, .kind = F_DURATION, .off = offsetof(T, m), .min = lo, .max = hi}
#define SIZE(k, T, m, lo, hi)                                                                    \
	{.key = k, .kind = F_SIZE, .off = offsetof(T, m), .min = lo, .max = hi}
#define PPM_OF(k, T, m, hi) {.key = k, .kind = F_PPM, .off = offsetof(T, m), .min = 0, .max = hi}
#define RATIO(k, T, m) {.key = k, .kind = F_RATIO, .off = offsetof(T, m), .min = 0, .max = PPM}
#define BOOL(k, T, m) {.key = k, .kind = F_BOOL, .off = offsetof(T, m)}
#define STRING(k, T, m, fl) {.key = k, .kind = F_STRING, .off = offsetof(T, m), .flags = fl}
#define ENUM(k, T, m, n) {.key = k, .kind = F_ENUM, .off = offsetof(T, m), .names = n}
#define WORD(k, T, m, n) {.key = k, .kind = F_WORD, .off = offsetof(T, m), .names = n}
#define ARGV(k, T, m, n, fl)                                                                     \
	{.key = k, .kind = F_ARGV, .off = offsetof(T, m), .count_off = offsetof(T, n), .flags = fl}
/* a nested mapping read into obj + o */
#define MAP(k, sub_table, o) {.key = k, .kind = F_MAP, .off = o, .sub = &sub_table}
/* a nested mapping whose presence means something: it sets the bool flag of T */
#define FLAGGED_MAP(k, sub_table, T, flag)                                                       \
	{.key = k, .kind = F_MAP, .sub = &sub_table, .flags = FL_SETS, .set_off = offsetof(T, flag)}
#define CUSTOM(k, f) {.key = k, .kind = F_CUSTOM, .fn = f}
#define END {.key = NULL}
/* clang-format on */

/* broker */

static int tls_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                     const char *path, void *obj);
static int broker_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                        const char *path, void *obj);

static const field tls_fields[] = {
	STRING("cert", cfg_broker, tls_cert, FL_NONEMPTY),
	STRING("key", cfg_broker, tls_key, FL_NONEMPTY),
	STRING("ca", cfg_broker, tls_ca, FL_NONEMPTY),
	BOOL("require_client_cert", cfg_broker, tls_require_client_cert),
	END,
};
static const table tls_table = {tls_fields, tls_check};

static const field broker_fields[] = {
	ARGV("listen", cfg_broker, listen, nlisten, FL_URL | FL_ONE),
	STRING("http", cfg_broker, http, 0),
	STRING("http_token", cfg_broker, http_token, FL_NONEMPTY),
	STRING("http_token_file", cfg_broker, http_token_file, FL_NONEMPTY),
	STRING("data", cfg_broker, data, FL_NONEMPTY),
	ENUM("durability", cfg_broker, durability, durability_names),
	SIZE("max_message_bytes", cfg_broker, max_message_bytes, 1, MESSAGE_BYTES_CAP),
	SIZE("max_db_size", cfg_broker, max_db_size, 0, INT64_MAX),
	DURATION("idempotency_window", cfg_broker, idempotency_window_ms, 0, DURATION_CAP),
	DURATION("retry_key_window", cfg_broker, retry_key_window_ms, 0, DURATION_CAP),
	INT("max_queues", cfg_broker, max_queues, 1, INT_MAX),
	MAP("tls", tls_table, 0),
	WORD("log_level", cfg_broker, log_level, log_level_names),
	END,
};
static const table broker_table = {broker_fields, broker_check};

static int
tls_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
          void *obj)
{
	cfg_broker *b = obj;
	char at[PATH_CAP];
	const yaml_node_t *k = given_key(&tls_table, given, "require_client_cert");

	if (b->tls_require_client_cert && b->tls_ca == NULL) {
		key_path(at, path, "require_client_cert");
		return fail_at(l, k != NULL ? k->start_mark : map->start_mark, at,
		               "needs tls.ca, the CA that client certificates are checked against");
	}
	return 0;
}

static int
broker_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
             void *obj)
{
	cfg_broker *b = obj;
	char at[PATH_CAP];
	const yaml_node_t *k;

	if (b->http_token != NULL && b->http_token_file != NULL) {
		k = later(given_key(&broker_table, given, "http_token"),
		          given_key(&broker_table, given, "http_token_file"));
		path_join(at, path, scalar_text(k), k->data.scalar.length);
		return fail_at(l, k->start_mark, at,
		               "give http_token or http_token_file, not both");
	}
	for (size_t i = 0; i < b->nlisten; i++) {
		if (strncmp(b->listen[i], "tls+", 4) == 0 &&
		    (b->tls_cert == NULL || b->tls_key == NULL)) {
			k = given_key(&broker_table, given, "listen");
			key_path(at, path, "listen");
			return fail_at(l, k != NULL ? k->start_mark : map->start_mark, at,
			               "%s needs tls.cert and tls.key", b->listen[i]);
		}
	}
	return 0;
}

/* queue_defaults and each entry of queues */

static int retry_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                       const char *path, void *obj);

static const field retry_fields[] = {
	DURATION("base", cfg_queue, retry_base_ms, 0, DURATION_CAP),
	DURATION("max", cfg_queue, retry_max_ms, 0, DURATION_CAP),
	END,
};
static const table retry_table = {retry_fields, retry_check};

static const field queue_fields[] = {
	INT64("max_depth", cfg_queue, max_depth, 0, INT64_MAX),
	INT("max_attempts", cfg_queue, max_attempts, 1, INT_MAX),
	DURATION("visibility_timeout", cfg_queue, visibility_ms, 1, VISIBILITY_CAP),
	MAP("retry", retry_table, 0),
	BOOL("archive", cfg_queue, archive),
	END,
};
static const table queue_table = {queue_fields, NULL};

static int
retry_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
            void *obj)
{
	cfg_queue *q = obj;
	return order_check(l, map, given, path, &retry_table, F_DURATION, "base", "retry.base",
	                   q->retry_base_ms, "max", "retry.max", q->retry_max_ms);
}

static int
queue_order(const void *a, const void *b)
{
	const cfg_queue *qa = *(const cfg_queue *const *)a, *qb = *(const cfg_queue *const *)b;
	int d = strcmp(qa->name, qb->name);
	if (d != 0)
		return d;
	return qa < qb ? -1 : qa > qb; /* file order among equal names */
}

/* The first name (in file order) that repeats an earlier one: its index,
 * and in *first the index of the earlier one; SIZE_MAX if none. Sorting
 * keeps a file with thousands of queues fast. */
static size_t
queue_duplicate(const cfg_queue *queues, size_t n, size_t *first, bool *nomem)
{
	const cfg_queue **order = malloc(n * sizeof(*order));
	size_t dup = SIZE_MAX, group = 0;

	*nomem = order == NULL;
	if (order == NULL)
		return SIZE_MAX;
	for (size_t i = 0; i < n; i++)
		order[i] = &queues[i];
	qsort(order, n, sizeof(*order), queue_order);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(order[i]->name, order[group]->name) != 0) {
			group = i;
			continue;
		}
		size_t at = (size_t)(order[i] - queues);
		if (at < dup) {
			dup = at;
			*first = (size_t)(order[group] - queues);
		}
	}
	free(order);
	return dup;
}

/* Checks the names and keeps each entry's value node: the entries are read
 * at the end, over queue_defaults (queues_finish), so that section may come
 * before or after this one. */
static int
queues_read(loader *l, const yaml_node_t *key, const yaml_node_t *v, const char *path, void *obj)
{
	cfg *c = obj;
	char at[PATH_CAP];
	size_t first = 0, dup;
	bool nomem;

	if (is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return fail_type(l, v, path, "a mapping of queue names to settings");
	yaml_node_pair_t *pairs = v->data.mapping.pairs.start;
	size_t n = (size_t)(v->data.mapping.pairs.top - pairs);
	if (n == 0)
		return 0;
	c->queues = calloc(n, sizeof(*c->queues));
	l->queue_nodes = calloc(n, sizeof(*l->queue_nodes));
	if (c->queues == NULL || l->queue_nodes == NULL)
		return fail_nomem(l);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *k = node_get(l, pairs[i].key);
		if (k->type != YAML_SCALAR_NODE)
			return fail_type(l, k, path, "a queue name");
		const char *name = scalar_text(k);
		size_t len = k->data.scalar.length;
		if (!cfg_queue_name_valid(name, len)) {
			char q[4 * QUOTE_MAX + 8];
			path_join(at, path, name, len);
			return fail_at(l, k->start_mark, at,
			               "%s is not a valid queue name (1-128 of A-Z a-z 0-9 . _ -)",
			               node_describe(k, q, sizeof(q)));
		}
		memcpy(c->queues[i].name, name, len);
		c->queues[i].name[len] = '\0';
		l->queue_nodes[i] = node_get(l, pairs[i].value);
		c->nqueues = i + 1;
	}
	dup = queue_duplicate(c->queues, n, &first, &nomem);
	if (nomem)
		return fail_nomem(l);
	if (dup != SIZE_MAX) {
		const yaml_node_t *k = node_get(l, pairs[dup].key);
		const yaml_node_t *k1 = node_get(l, pairs[first].key);
		key_path(at, path, c->queues[dup].name);
		return fail_at(l, k->start_mark, at, "duplicate key (first at line %d)",
		               (int)k1->start_mark.line + 1);
	}
	return 0;
}

static int
queues_finish(loader *l)
{
	cfg *c = l->c;
	char path[PATH_CAP];
	int rc;

	for (size_t i = 0; i < c->nqueues; i++) {
		cfg_queue *q = &c->queues[i];
		char name[sizeof(q->name)];
		memcpy(name, q->name, sizeof(name));
		*q = c->queue_defaults;
		memcpy(q->name, name, sizeof(name));
		key_path(path, "queues", name);
		if ((rc = map_read(l, l->queue_nodes[i], path, &queue_table, q)) != 0)
			return rc;
	}
	return 0;
}

/* worker */

static int breaker_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                         const char *path, void *obj);
static int sink_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                      const char *path, void *obj);

static const field breaker_fields[] = {
	DURATION("base", cfg_worker, breaker_base_ms, 0, DURATION_CAP),
	DURATION("max", cfg_worker, breaker_max_ms, 0, DURATION_CAP),
	END,
};
static const table breaker_table = {breaker_fields, breaker_check};

static const field sink_fields[] = {
	ENUM("type", cfg_sink, type, sink_type_names),
	STRING("path", cfg_sink, path, FL_NONEMPTY),
	STRING("table", cfg_sink, table, FL_NONEMPTY),
	DURATION("busy_timeout", cfg_sink, busy_timeout_ms, 0, INT_MAX),
	ENUM("synchronous", cfg_sink, synchronous, sync_names),
	ARGV("command", cfg_sink, command, ncommand, FL_NONEMPTY),
	DURATION("timeout", cfg_sink, timeout_ms, 1, DURATION_CAP),
	INT("concurrency", cfg_sink, concurrency, 1, 4096),
	STRING("dsn", cfg_sink, dsn, FL_NONEMPTY),
	STRING("password_file", cfg_sink, password_file, FL_NONEMPTY),
	DURATION("statement_timeout", cfg_sink, statement_timeout_ms, 0, INT_MAX),
	ENUM("format", cfg_sink, format, format_names),
	END,
};
static const table sink_table = {sink_fields, sink_check};

static const field worker_tls_fields[] = {
	STRING("ca", cfg_worker, tls_ca, FL_NONEMPTY),
	STRING("cert_key", cfg_worker, tls_cert_key, FL_NONEMPTY),
	STRING("server_name", cfg_worker, tls_server_name, FL_NONEMPTY),
	END,
};
static const table worker_tls_table = {worker_tls_fields, NULL};

static const field worker_fields[] = {
	STRING("broker", cfg_worker, broker, FL_URL),
	STRING("queue", cfg_worker, queue, FL_QUEUE),
	INT("batch_size", cfg_worker, batch_size, 1, 100000),
	DURATION("linger", cfg_worker, linger_ms, 0, DURATION_CAP),
	DURATION("visibility_timeout", cfg_worker, visibility_ms, 1, VISIBILITY_CAP),
	DURATION("shutdown_grace", cfg_worker, shutdown_grace_ms, 0, DURATION_CAP),
	MAP("breaker", breaker_table, 0),
	DURATION("report_interval", cfg_worker, report_interval_ms, 1, DURATION_CAP),
	MAP("tls", worker_tls_table, 0),
	MAP("sink", sink_table, offsetof(cfg_worker, sink)),
	END,
};
static const table worker_table = {worker_fields, NULL};

static int
breaker_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
              void *obj)
{
	cfg_worker *w = obj;
	return order_check(l, map, given, path, &breaker_table, F_DURATION, "base", "breaker.base",
	                   w->breaker_base_ms, "max", "breaker.max", w->breaker_max_ms);
}

static int
sink_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
           void *obj)
{
	cfg_sink *s = obj;
	const yaml_node_t *k = given_key(&sink_table, given, "type");
	yaml_mark_t at = k != NULL ? k->start_mark : map->start_mark;
	char key[PATH_CAP];

	key_path(key, path, "type");
	if (s->type == CFG_SINK_EXEC && s->command == NULL)
		return fail_at(l, at, key,
		               "exec needs sink.command, the program to run per message");
	if (s->type == CFG_SINK_POSTGRES && s->dsn == NULL)
		return fail_at(l, at, key, "postgres needs sink.dsn, the database to connect to");
	return 0;
}

/* supervisor */

static int tolerance_read(loader *l, const yaml_node_t *key, const yaml_node_t *v, const char *path,
                          void *obj);
static int policies_read(loader *l, const yaml_node_t *key, const yaml_node_t *v, const char *path,
                         void *obj);
static int rules_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                       const char *path, void *obj);
static int policy_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                        const char *path, void *obj);
static int fallback_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                          const char *path, void *obj);
static int restart_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                         const char *path, void *obj);
static int supervisor_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                            const char *path, void *obj);

/* Tolerance is capped at 1000 (a band of 100000%) so the supervisor's
 * integer band test cannot overflow. */
static const field tolerance_fields[] = {
	PPM_OF("up", cfg_supervisor, tolerance_up_ppm, 1000 * PPM),
	PPM_OF("down", cfg_supervisor, tolerance_down_ppm, 1000 * PPM),
	END,
};
static const table tolerance_table = {tolerance_fields, NULL};

static const field policy_fields[] = {
	ENUM("type", cfg_scale_policy, type, policy_type_names),
	INT64("value", cfg_scale_policy, value, 1, INT_MAX),
	DURATION("period", cfg_scale_policy, period_ms, 1, PERIOD_CAP),
	END,
};
static const table policy_table = {policy_fields, policy_check};

static const field rules_fields[] = {
	DURATION("stabilization_window", cfg_scale_rules, window_ms, 0, WINDOW_CAP),
	ENUM("select_policy", cfg_scale_rules, select, select_names),
	CUSTOM("policies", policies_read),
	END,
};
static const table rules_table = {rules_fields, rules_check};

static const field behavior_fields[] = {
	MAP("scale_up", rules_table, offsetof(cfg_supervisor, scale_up)),
	MAP("scale_down", rules_table, offsetof(cfg_supervisor, scale_down)),
	END,
};
static const table behavior_table = {behavior_fields, NULL};

static const field fallback_fields[] = {
	INT("failure_threshold", cfg_supervisor, fallback_failure_threshold, 0, INT_MAX),
	INT("replicas", cfg_supervisor, fallback_replicas, 0, INT_MAX),
	ENUM("behavior", cfg_supervisor, fallback_behavior, fallback_names),
	END,
};
static const table fallback_table = {fallback_fields, fallback_check};

static const field restart_fields[] = {
	DURATION("base", cfg_supervisor, restart_base_ms, 0, DURATION_CAP),
	DURATION("max", cfg_supervisor, restart_max_ms, 0, DURATION_CAP),
	INT("crash_loop_count", cfg_supervisor, crash_loop_count, 1, INT_MAX),
	DURATION("crash_loop_window", cfg_supervisor, crash_loop_window_ms, 1, DURATION_CAP),
	END,
};
static const table restart_table = {restart_fields, restart_check};

static const field guard_fields[] = {
	DURATION("max_commit_p99", cfg_supervisor, guard_max_commit_p99_ms, 0, DURATION_CAP),
	RATIO("max_failure_ratio", cfg_supervisor, guard_max_failure_ratio),
	DURATION("window", cfg_supervisor, guard_window_ms, 1, DURATION_CAP),
	END,
};
static const table guard_table = {guard_fields, NULL};

#define MAX_REPLICAS 100000

static const field supervisor_fields[] = {
	STRING("broker", cfg_supervisor, broker, FL_URL),
	STRING("queue", cfg_supervisor, queue, FL_QUEUE),
	ENUM("mode", cfg_supervisor, mode, mode_names),
	INT("min_replicas", cfg_supervisor, min_replicas, 0, MAX_REPLICAS),
	INT("max_replicas", cfg_supervisor, max_replicas, 1, MAX_REPLICAS),
	INT("idle_replicas", cfg_supervisor, idle_replicas, 0, MAX_REPLICAS),
	INT("initial_replicas", cfg_supervisor, initial_replicas, 0, MAX_REPLICAS),
	INT64("target_per_worker", cfg_supervisor, target_per_worker, 1, INT32_MAX),
	ENUM("metric_type", cfg_supervisor, metric_type, metric_type_names),
	ENUM("metric", cfg_supervisor, metric, metric_names),
	INT64("activation_threshold", cfg_supervisor, activation_threshold, 0, INT64_MAX),
	CUSTOM("tolerance", tolerance_read),
	DURATION("polling_interval", cfg_supervisor, polling_interval_ms, 1, DURATION_CAP),
	DURATION("cooldown_period", cfg_supervisor, cooldown_ms, 0, DURATION_CAP),
	DURATION("initial_cooldown_period", cfg_supervisor, initial_cooldown_ms, 0, DURATION_CAP),
	DURATION("downscale_stabilization", cfg_supervisor, downscale_stabilization_ms, 0,
                 WINDOW_CAP),
	FLAGGED_MAP("behavior", behavior_table, cfg_supervisor, behavior_set),
	FLAGGED_MAP("fallback", fallback_table, cfg_supervisor, fallback_set),
	STRING("state_file", cfg_supervisor, state_file, FL_NONEMPTY),
	ARGV("worker_command", cfg_supervisor, worker_command, nworker_command, FL_NONEMPTY),
	DURATION("shutdown_grace", cfg_supervisor, shutdown_grace_ms, 0, DURATION_CAP),
	MAP("restart", restart_table, 0),
	FLAGGED_MAP("guard", guard_table, cfg_supervisor, guard_set),
	END,
};
static const table supervisor_table = {supervisor_fields, supervisor_check};

/* A number for both directions, or {up: .., down: ..}. */
static int
tolerance_read(loader *l, const yaml_node_t *key, const yaml_node_t *v, const char *path, void *obj)
{
	cfg_supervisor *s = obj;
	int rc;

	if (is_null(v))
		return 0;
	if (v->type == YAML_MAPPING_NODE)
		return map_read(l, v, path, &tolerance_table, s);
	if (v->type != YAML_SCALAR_NODE)
		return fail_type(l, v, path, "a number or {up: .., down: ..}");
	if ((rc = value_read(l, &tolerance_fields[0], key, v, path, s)) != 0)
		return rc;
	s->tolerance_down_ppm = s->tolerance_up_ppm;
	return 0;
}

/* A given list replaces the whole default list, as in the HPA. */
static int
policies_read(loader *l, const yaml_node_t *key, const yaml_node_t *v, const char *path, void *obj)
{
	cfg_scale_rules *r = obj;
	char item_path[PATH_CAP];
	cfg_scale_policy *list = NULL;
	int rc;

	if (is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return fail_type(l, v, path, "a list of {type, value, period}");
	const yaml_node_item_t *items = v->data.sequence.items.start;
	size_t n = (size_t)(v->data.sequence.items.top - items);
	if (n > 0 && (list = calloc(n, sizeof(*list))) == NULL)
		return fail_nomem(l);
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *it = node_get(l, items[i]);
		snprintf(item_path, sizeof(item_path), "%s[%zu]", path, i);
		if (it->type != YAML_MAPPING_NODE) {
			rc = fail_type(l, it, item_path, "a mapping {type, value, period}");
			goto fail;
		}
		if ((rc = map_read(l, it, item_path, &policy_table, &list[i])) != 0)
			goto fail;
	}
	free(r->policies);
	r->policies = list;
	r->npolicies = n;
	l->policies_given[r == &l->c->supervisor.scale_down] = true;
	return 0;
fail:
	free(list);
	return rc;
}

static int
policy_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
             void *obj)
{
	for (int i = 0; policy_fields[i].key != NULL; i++)
		if (given[i] == NULL)
			return fail_at(l, map->start_mark, path, "missing %s",
			               policy_fields[i].key);
	return 0;
}

static int
rules_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
            void *obj)
{
	cfg_scale_rules *r = obj;
	const yaml_node_t *k = given_key(&rules_table, given, "policies");
	char at[PATH_CAP];

	/* the HPA refuses this too: nothing to select from */
	if (k != NULL && r->npolicies == 0 &&
	    l->policies_given[r == &l->c->supervisor.scale_down] &&
	    r->select != CFG_SELECT_DISABLED) {
		key_path(at, path, "policies");
		return fail_at(l, k->start_mark, at,
		               "must list at least one policy (or set select_policy: disabled)");
	}
	return 0;
}

static int
fallback_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
               void *obj)
{
	if (given_key(&fallback_table, given, "failure_threshold") == NULL)
		return fail_at(l, map->start_mark, path, "missing failure_threshold");
	if (given_key(&fallback_table, given, "replicas") == NULL)
		return fail_at(l, map->start_mark, path, "missing replicas");
	return 0;
}

static int
restart_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given, const char *path,
              void *obj)
{
	cfg_supervisor *s = obj;
	return order_check(l, map, given, path, &restart_table, F_DURATION, "base", "restart.base",
	                   s->restart_base_ms, "max", "restart.max", s->restart_max_ms);
}

static int
supervisor_check(loader *l, const yaml_node_t *map, const yaml_node_t *const *given,
                 const char *path, void *obj)
{
	cfg_supervisor *s = obj;
	const table *t = &supervisor_table;
	int rc;

	rc = order_check(l, map, given, path, t, F_INT, "min_replicas", "min_replicas",
	                 s->min_replicas, "max_replicas", "max_replicas", s->max_replicas);
	if (rc != 0)
		return rc;
	if (s->initial_replicas >= 0) {
		rc = order_check(l, map, given, path, t, F_INT, "initial_replicas",
		                 "initial_replicas", s->initial_replicas, "max_replicas",
		                 "max_replicas", s->max_replicas);
		if (rc != 0)
			return rc;
	}
	/* KEDA: idleReplicaCount must be less than minReplicaCount (0 and 0
	 * passes, as idle 0 with min 0 changes nothing) */
	if (s->idle_replicas > 0 && s->idle_replicas >= s->min_replicas) {
		const yaml_node_t *ki = given_key(t, given, "idle_replicas");
		const yaml_node_t *km = given_key(t, given, "min_replicas");
		char at[PATH_CAP];
		if (km != NULL && later(ki, km) == km) {
			key_path(at, path, "min_replicas");
			return fail_at(l, km->start_mark, at,
			               "%d must be more than idle_replicas (%d)", s->min_replicas,
			               s->idle_replicas);
		}
		key_path(at, path, "idle_replicas");
		return fail_at(l, ki != NULL ? ki->start_mark : map->start_mark, at,
		               "%d must be less than min_replicas (%d)", s->idle_replicas,
		               s->min_replicas);
	}
	return 0;
}

/* the top level */

static const field top_fields[] = {
	MAP("broker", broker_table, offsetof(cfg, broker)),
	MAP("queue_defaults", queue_table, offsetof(cfg, queue_defaults)),
	CUSTOM("queues", queues_read),
	MAP("worker", worker_table, offsetof(cfg, worker)),
	MAP("supervisor", supervisor_table, offsetof(cfg, supervisor)),
	END,
};
static const table top_table = {top_fields, NULL};

/* ---- defaults ---- */

static const cfg_scale_policy up_policies[] = {
	{CFG_POLICY_PODS, 4, 15 * MS_SECOND},
	{CFG_POLICY_PERCENT, 100, 15 * MS_SECOND},
};
static const cfg_scale_policy down_policies[] = {
	{CFG_POLICY_PERCENT, 100, 15 * MS_SECOND},
};

/* Everything config/sluice.yaml shows, except the defaults that derive
 * from other keys: those wait for finish(). */
static int
defaults_init(cfg *c)
{
	cfg_broker *b = &c->broker;
	cfg_queue *q = &c->queue_defaults;
	cfg_worker *w = &c->worker;
	cfg_sink *k = &w->sink;
	cfg_supervisor *s = &c->supervisor;

	if ((b->listen = calloc(2, sizeof(*b->listen))) == NULL)
		return CFG_E_NOMEM;
	b->listen[0] = strdup(DEFAULT_LISTEN);
	b->nlisten = 1;
	b->http = strdup("127.0.0.1:7451");
	b->data = strdup("sluice-data/broker.db");
	b->durability = CFG_DURABILITY_FULL;
	b->max_message_bytes = MIB;
	b->idempotency_window_ms = 24 * MS_HOUR;
	b->retry_key_window_ms = 2 * MS_MINUTE;
	b->max_queues = 10000;
	b->log_level = strdup("info");

	q->max_depth = 1000000;
	q->max_attempts = 5;
	q->visibility_ms = 30 * MS_SECOND;
	q->retry_base_ms = MS_SECOND;
	q->retry_max_ms = 5 * MS_MINUTE;

	w->queue = strdup("default");
	w->batch_size = 500;
	w->linger_ms = 50;
	w->visibility_ms = 30 * MS_SECOND;
	w->shutdown_grace_ms = 30 * MS_SECOND;
	w->breaker_base_ms = 500;
	w->breaker_max_ms = 30 * MS_SECOND;
	w->report_interval_ms = 10 * MS_SECOND;
	k->type = CFG_SINK_SQLITE;
	k->path = strdup("sluice-data/app.db");
	k->table = strdup("events");
	k->busy_timeout_ms = 5 * MS_SECOND;
	k->synchronous = CFG_SYNC_FULL;
	k->timeout_ms = 30 * MS_SECOND;
	k->concurrency = 1;
	k->statement_timeout_ms = 30 * MS_SECOND;
	k->format = CFG_FORMAT_RAW;

	s->mode = CFG_MODE_RESPONSIVE;
	s->min_replicas = 0;
	s->max_replicas = 100;
	s->idle_replicas = -1;
	s->initial_replicas = -1;
	s->target_per_worker = 100;
	s->metric_type = CFG_METRIC_AVERAGE_VALUE;
	s->metric = CFG_METRIC_BACKLOG;
	s->tolerance_up_ppm = 100000;
	s->tolerance_down_ppm = 100000;
	s->polling_interval_ms = MS_SECOND;
	s->cooldown_ms = 300 * MS_SECOND;
	s->downscale_stabilization_ms = 300 * MS_SECOND;
	s->scale_up.window_ms = 0;
	s->scale_up.select = CFG_SELECT_MAX;
	s->scale_down.window_ms = -1; /* finish(): downscale_stabilization */
	s->scale_down.select = CFG_SELECT_MAX;
	s->fallback_behavior = CFG_FALLBACK_STATIC;
	s->state_file = strdup("sluice-data/supervisor-state.yaml");
	s->shutdown_grace_ms = 30 * MS_SECOND;
	s->restart_base_ms = MS_SECOND;
	s->restart_max_ms = 60 * MS_SECOND;
	s->crash_loop_count = 5;
	s->crash_loop_window_ms = 60 * MS_SECOND;
	s->guard_window_ms = 30 * MS_SECOND;

	if (b->listen[0] == NULL || b->http == NULL || b->data == NULL || b->log_level == NULL ||
	    w->queue == NULL || k->path == NULL || k->table == NULL || s->state_file == NULL)
		return CFG_E_NOMEM;
	return CFG_OK;
}

static int
policies_default(cfg_scale_rules *r, const cfg_scale_policy *list, size_t n)
{
	if ((r->policies = malloc(n * sizeof(*list))) == NULL)
		return CFG_E_NOMEM;
	memcpy(r->policies, list, n * sizeof(*list));
	r->npolicies = n;
	return CFG_OK;
}

/* The defaults that derive from other keys, once every key is in. */
static int
finish(loader *l)
{
	cfg *c = l->c;
	cfg_worker *w = &c->worker;
	cfg_supervisor *s = &c->supervisor;
	int rc;

	if ((rc = queues_finish(l)) != 0)
		return rc;
	if (w->broker == NULL && (w->broker = strdup(c->broker.listen[0])) == NULL)
		return fail_nomem(l);
	if (s->broker == NULL && (s->broker = strdup(w->broker)) == NULL)
		return fail_nomem(l);
	if (s->queue == NULL && (s->queue = strdup(w->queue)) == NULL)
		return fail_nomem(l);
	if (s->scale_down.window_ms < 0)
		s->scale_down.window_ms = s->downscale_stabilization_ms;
	size_t nup = sizeof(up_policies) / sizeof(up_policies[0]);
	size_t ndown = sizeof(down_policies) / sizeof(down_policies[0]);
	if (!l->policies_given[0] && policies_default(&s->scale_up, up_policies, nup) != CFG_OK)
		return fail_nomem(l);
	if (!l->policies_given[1] &&
	    policies_default(&s->scale_down, down_policies, ndown) != CFG_OK)
		return fail_nomem(l);
	return 0;
}

/* ---- loading ---- */

/* libyaml's 0/1 and its problem text, translated into our error. */
static int
syntax_fail(loader *l, const yaml_parser_t *p, const char *text, size_t len)
{
	if (p->error == YAML_MEMORY_ERROR)
		return fail_nomem(l);
	const char *problem = p->problem != NULL ? p->problem : "unknown error";
	yaml_mark_t mark = p->problem_mark;
	if (p->error == YAML_READER_ERROR) {
		/* a reader error has only a byte offset; count the lines to it */
		memset(&mark, 0, sizeof(mark));
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			if (text[i] == '\n') {
				mark.line++;
				mark.column = 0;
			} else {
				mark.column++;
			}
		}
	}
	if (p->context != NULL)
		fail_at(l, mark, "", "malformed YAML: %s (%s at line %d, column %d)", problem,
		        p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
	else
		fail_at(l, mark, "", "malformed YAML: %s", problem);
	return CFG_E_SYNTAX;
}

static int
root_read(loader *l, const yaml_node_t *root)
{
	if (root == NULL || is_null(root))
		return 0; /* an empty file: every default */
	if (root->type != YAML_MAPPING_NODE) {
		char q[4 * QUOTE_MAX + 8];
		return fail_at(
			l, root->start_mark, "",
			"expected a mapping of sections (broker, queue_defaults, queues, worker, "
			"supervisor) at the top level, got %s",
			node_describe(root, q, sizeof(q)));
	}
	return map_read(l, root, "", &top_table, l->c);
}

/* Parses text into c (already holding the defaults). */
static int
parse(loader *l, const char *text, size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	int rc;

	if (!yaml_parser_initialize(&parser))
		return fail_nomem(l);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = syntax_fail(l, &parser, text, len);
		goto fail_parser;
	}
	l->doc = &doc;
	if ((rc = root_read(l, yaml_document_get_root_node(&doc))) != 0)
		goto fail_doc;
	/* a second document would be ignored silently; say so instead */
	if (!yaml_parser_load(&parser, &extra)) {
		rc = syntax_fail(l, &parser, text, len);
		goto fail_doc;
	}
	const yaml_node_t *root = yaml_document_get_root_node(&extra);
	if (root != NULL)
		rc = fail_at(l, root->start_mark, "",
		             "a second YAML document; the configuration is one document");
	yaml_document_delete(&extra);
	if (rc != 0)
		goto fail_doc;
	rc = finish(l);
fail_doc:
	yaml_document_delete(&doc);
	l->doc = NULL;
fail_parser:
	yaml_parser_delete(&parser);
	return rc;
}

/* Loads text (NULL: the defaults alone) into a new cfg. */
static int
load(const char *name, const char *path, const char *text, size_t len, cfg **out, cfg_error *err)
{
	cfg_error spare;
	loader l = {.name = name != NULL ? name : "(config)", .err = err != NULL ? err : &spare};
	cfg *c = NULL;
	int rc;

	memset(l.err, 0, sizeof(*l.err));
	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL || defaults_init(c) != CFG_OK) {
		rc = fail_nomem(&l);
		goto fail;
	}
	l.c = c;
	if (path != NULL && (c->path = strdup(path)) == NULL) {
		rc = fail_nomem(&l);
		goto fail;
	}
	if (text != NULL)
		rc = parse(&l, text, len);
	else
		rc = finish(&l);
	if (rc != 0)
		goto fail;
	free(l.queue_nodes);
	*out = c;
	return CFG_OK;
fail:
	free(l.queue_nodes);
	cfg_free(c);
	return rc;
}

int
cfg_load_buffer(const char *name, const char *text, size_t len, cfg **out, cfg_error *err)
{
	if (name == NULL)
		name = "(config)";
	return load(name, name, text != NULL ? text : "", text != NULL ? len : 0, out, err);
}

/* The whole file into memory; errno set on failure. */
static char *
file_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (n == cap) {
			if (cap >= FILE_CAP) {
				errno = EFBIG;
				goto fail;
			}
			size_t ncap = cap == 0 ? 4096 : cap * 2;
			char *nbuf = realloc(buf, ncap);
			if (nbuf == NULL)
				goto fail;
			buf = nbuf;
			cap = ncap;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				if (errno == 0)
					errno = EIO;
				goto fail;
			}
			break;
		}
	}
	fclose(f);
	*len = n;
	return buf;
fail : {
	int saved = errno;
	free(buf);
	fclose(f);
	errno = saved;
}
	return NULL;
}

int
cfg_load(const char *path, cfg **out, cfg_error *err)
{
	cfg_error spare;
	size_t len = 0;
	char *text;
	int rc;

	if (path == NULL)
		return load("(defaults)", NULL, NULL, 0, out, err);
	if (err == NULL)
		err = &spare;
	errno = 0;
	if ((text = file_read(path, &len)) == NULL) {
		memset(err, 0, sizeof(*err));
		snprintf(err->message, sizeof(err->message), "%s: cannot read: %s", path,
		         strerror(errno != 0 ? errno : EIO));
		*out = NULL;
		return CFG_E_IO;
	}
	rc = load(path, path, text, len, out, err);
	free(text);
	return rc;
}

void
cfg_free(cfg *c)
{
	if (c == NULL)
		return;
	free(c->path);
	argv_free(c->broker.listen);
	free(c->broker.http);
	free(c->broker.http_token);
	free(c->broker.http_token_file);
	free(c->broker.data);
	free(c->broker.tls_cert);
	free(c->broker.tls_key);
	free(c->broker.tls_ca);
	free(c->broker.log_level);
	free(c->queues);
	free(c->worker.broker);
	free(c->worker.queue);
	free(c->worker.tls_ca);
	free(c->worker.tls_cert_key);
	free(c->worker.tls_server_name);
	free(c->worker.sink.path);
	free(c->worker.sink.table);
	argv_free(c->worker.sink.command);
	free(c->worker.sink.dsn);
	free(c->worker.sink.password_file);
	free(c->supervisor.broker);
	free(c->supervisor.queue);
	free(c->supervisor.scale_up.policies);
	free(c->supervisor.scale_down.policies);
	free(c->supervisor.state_file);
	argv_free(c->supervisor.worker_command);
	free(c);
}

const cfg_queue *
cfg_queue_for(const cfg *c, const char *name)
{
	if (name != NULL)
		for (size_t i = 0; i < c->nqueues; i++)
			if (strcmp(c->queues[i].name, name) == 0)
				return &c->queues[i];
	return &c->queue_defaults;
}
