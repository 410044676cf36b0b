/* chart: SVG line charts; see chart.h. Coordinates are rounded to 0.1 px to
 * keep the report small. */
#include "chart.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PAD_LEFT 64
#define PAD_RIGHT 16
#define PAD_TOP 44
#define PAD_BOTTOM 44

double
cli_chart_nice(double max, int ticks, double *step)
{
	if (!(max > 0))
		max = 1;
	double raw = max / (ticks > 0 ? ticks : 5);
	double mag = pow(10, floor(log10(raw)));
	double f = raw / mag;
	double s = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
	*step = s * mag;
	return ceil(max / *step) * *step;
}

/* Short numbers for tick labels: 1500 -> "1.5k". */
static void
short_num(char *buf, size_t n, double v)
{
	double a = fabs(v);
	if (a >= 1e6)
		snprintf(buf, n, "%gM", v / 1e6);
	else if (a >= 1e3)
		snprintf(buf, n, "%gk", v / 1e3);
	else
		snprintf(buf, n, "%g", v);
}

typedef struct frame {
	double x0, x1, y0, y1; /* data range */
	double px0, px1, py0, py1; /* pixel box */
	bool log_y;
} frame;

static double
sx(const frame *f, double x)
{
	double t = f->x1 > f->x0 ? (x - f->x0) / (f->x1 - f->x0) : 0;
	return f->px0 + t * (f->px1 - f->px0);
}

static double
sy(const frame *f, double y)
{
	double t;
	if (f->log_y) {
		double ly = log10(y > f->y0 ? y : f->y0);
		t = (ly - log10(f->y0)) / (log10(f->y1) - log10(f->y0));
	} else {
		t = f->y1 > f->y0 ? (y - f->y0) / (f->y1 - f->y0) : 0;
	}
	if (t < 0)
		t = 0;
	if (t > 1)
		t = 1;
	return f->py1 - t * (f->py1 - f->py0);
}

void
cli_chart_svg(jbuf *out, const cli_chart *c, int width, int height)
{
	frame f = {.px0 = PAD_LEFT, .px1 = width - PAD_RIGHT, .py0 = PAD_TOP,
	           .py1 = height - PAD_BOTTOM, .log_y = c->log_y};
	double xmax = c->x_max, ymax = c->y_max, ymin_pos = 0;
	for (size_t s = 0; s < c->nseries; s++)
		for (size_t i = 0; i < c->series[s].n; i++) {
			if (c->x_max <= 0 && c->series[s].x[i] > xmax)
				xmax = c->series[s].x[i];
			if (c->y_max <= 0 && c->series[s].y[i] > ymax)
				ymax = c->series[s].y[i];
			if (c->series[s].y[i] > 0 && (ymin_pos == 0 || c->series[s].y[i] < ymin_pos))
				ymin_pos = c->series[s].y[i];
		}
	double xstep, ystep;
	f.x1 = cli_chart_nice(xmax, 8, &xstep);
	if (c->log_y) {
		f.y0 = pow(10, floor(log10(ymin_pos > 0 ? ymin_pos : 1)));
		f.y1 = pow(10, ceil(log10(ymax > f.y0 ? ymax : f.y0 * 10)));
		if (f.y1 <= f.y0)
			f.y1 = f.y0 * 10;
		ystep = 0;
	} else {
		f.y1 = cli_chart_nice(ymax, 5, &ystep);
	}

	jbuf_printf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	                 "viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">",
	            width, height, width, height);
	jbuf_put(out, "<title>", 7);
	jbuf_html(out, c->title);
	jbuf_put(out, "</title>", 8);
	jbuf_printf(out, "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>", width, height);
	jbuf_printf(out, "<text x=\"%d\" y=\"18\" font-size=\"13\" font-weight=\"bold\">", PAD_LEFT);
	jbuf_html(out, c->title);
	jbuf_put(out, "</text>", 7);

	/* grid and y ticks */
	char lab[32];
	if (c->log_y) {
		for (double v = f.y0; v <= f.y1 * 1.0001; v *= 10) {
			double y = sy(&f, v);
			short_num(lab, sizeof(lab), v);
			jbuf_printf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
			                 "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%s</text>",
			            f.px0, f.px1, y, y, f.px0 - 6, y + 4, lab);
		}
	} else {
		for (double v = 0; v <= f.y1 + ystep / 2; v += ystep) {
			double y = sy(&f, v);
			short_num(lab, sizeof(lab), v);
			jbuf_printf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
			                 "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%s</text>",
			            f.px0, f.px1, y, y, f.px0 - 6, y + 4, lab);
		}
	}
	for (double v = 0; v <= f.x1 + xstep / 2; v += xstep) {
		double x = sx(&f, v);
		short_num(lab, sizeof(lab), v);
		jbuf_printf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>"
		                 "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#555\">%s</text>",
		            x, x, f.py1, f.py1 + 4, x, f.py1 + 16, lab);
	}
	jbuf_printf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>",
	            f.px0, f.px1, f.py1, f.py1);
	jbuf_printf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>",
	            f.px0, f.px0, f.py0, f.py1);
	if (c->x_label != NULL) {
		jbuf_printf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">",
		            (f.px0 + f.px1) / 2, height - 6);
		jbuf_html(out, c->x_label);
		jbuf_put(out, "</text>", 7);
	}
	if (c->y_label != NULL) {
		jbuf_printf(out, "<text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\" "
		                 "fill=\"#555\">", (f.py0 + f.py1) / 2);
		jbuf_html(out, c->y_label);
		jbuf_put(out, "</text>", 7);
	}

	/* marks under the lines */
	for (size_t i = 0; i < c->nmarks; i++) {
		double x = sx(&f, c->marks[i].x);
		jbuf_printf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#9467bd\" "
		                 "stroke-dasharray=\"3 3\"/>", x, x, f.py0, f.py1);
		if (c->marks[i].label != NULL) {
			jbuf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#9467bd\">", x + 2,
			            f.py0 + 10 + (double)(i % 3) * 11);
			jbuf_html(out, c->marks[i].label);
			jbuf_put(out, "</text>", 7);
		}
	}

	/* series and legend */
	double lx = f.px0;
	for (size_t s = 0; s < c->nseries; s++) {
		const cli_series *se = &c->series[s];
		if (se->n > 0) {
			jbuf_printf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"",
			            se->color, se->dashed ? " stroke-dasharray=\"6 3\"" : "");
			for (size_t i = 0; i < se->n; i++) {
				double x = sx(&f, se->x[i]), y = sy(&f, se->y[i]);
				if (se->step && i > 0)
					jbuf_printf(out, "%.1f,%.1f ", x, sy(&f, se->y[i - 1]));
				jbuf_printf(out, "%.1f,%.1f ", x, y);
			}
			jbuf_put(out, "\"/>", 3);
		}
		jbuf_printf(out, "<rect x=\"%.1f\" y=\"27\" width=\"12\" height=\"4\" fill=\"%s\"/>"
		                 "<text x=\"%.1f\" y=\"33\" fill=\"#333\">", lx, se->color, lx + 16);
		jbuf_html(out, se->name);
		jbuf_put(out, "</text>", 7);
		lx += 24 + 6.5 * (double)strlen(se->name);
	}
	jbuf_put(out, "</svg>", 6);
}
