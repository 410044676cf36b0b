/*
 * chart: line charts as inline SVG, for the demo's self-contained report:
 * no scripts, no fonts, no external references. Axes with round ticks, one
 * or more series, optional vertical marks (scale events) with labels.
 */
#ifndef SLUICE_CLI_CHART_H
#define SLUICE_CLI_CHART_H

#include <stdbool.h>
#include <stddef.h>

#include "jbuf.h"

typedef struct cli_series {
	const char *name;    /* legend */
	const char *color;   /* CSS color, e.g. "#d62728" */
	const double *x;     /* seconds */
	const double *y;
	size_t n;
	bool step;           /* a step line (counts such as workers) */
	bool dashed;
} cli_series;

typedef struct cli_mark {
	double x;
	const char *label;   /* short, e.g. "3→8" */
} cli_mark;

typedef struct cli_chart {
	const char *title;
	const char *y_label;   /* unit, e.g. "requests/s" */
	const char *x_label;   /* e.g. "seconds" */
	const cli_series *series;
	size_t nseries;
	const cli_mark *marks;
	size_t nmarks;
	double x_max;          /* 0: from the data */
	double y_max;          /* 0: from the data */
	bool log_y;            /* logarithmic y axis (latencies) */
} cli_chart;

/* Appends one <svg> element of width x height pixels. */
void cli_chart_svg(jbuf *out, const cli_chart *c, int width, int height);

/* A "nice" axis maximum and tick step for values up to max (1, 2, 5 x 10^k). */
double cli_chart_nice(double max, int ticks, double *step);

#endif
