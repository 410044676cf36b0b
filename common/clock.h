/* clock: monotonic and wall time in milliseconds and nanoseconds. */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdint.h>

/* Monotonic time, for durations and deadlines within one process. */
int64_t clk_mono_ns(void);
int64_t clk_mono_ms(void);

/* Wall time in ms since the Unix epoch, for anything stored or shown. */
int64_t clk_wall_ms(void);

/* Sleeps ms milliseconds, resuming after signals. */
void clk_sleep_ms(int64_t ms);

#endif
