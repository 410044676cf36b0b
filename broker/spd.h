/*
 * spd: the SP protocol's TCP mapping for REP, on a reactor, for the
 * broker's tcp:// listeners (NNG's own serves ipc:// and tls+tcp://).
 * Peers are NNG REQ sockets (or anything speaking SP): an 8-byte handshake
 * each way, then messages of a 64-bit big-endian length and the bytes; a
 * request starts with its backtrace (32-bit words up to one with the top
 * bit set, the request id), which the reply repeats. Many requests may be
 * in flight on one connection and are answered in any order.
 */
#ifndef SLUICE_BRK_SPD_H
#define SLUICE_BRK_SPD_H

#include <stddef.h>
#include <stdint.h>

#include "writer.h"

typedef struct brk_spd brk_spd;

/* Serves one request frame: fills r->f and answers through r->reply_buf
 * and r->done (at once, or later from the writer). spd sets r->arg,
 * reply_buf and done and owns the frame's bytes until done. */
typedef void brk_spd_serve_fn(void *arg, brk_req *r, const uint8_t *frame, size_t len);

/* Listens on url ("tcp://host:port"). frame_limit: the largest frame
 * taken; a connection announcing a bigger one is closed. connections is
 * kept up to date (atomics). 0, or -1 with err filled. */
int brk_spd_open(const char *url, uint32_t frame_limit, brk_spd_serve_fn *serve, void *arg,
                 volatile int64_t *connections, brk_spd **out, char *err, size_t errlen);
void brk_spd_stop_accepting(brk_spd *d);
/* After every request served has been answered. Accepts NULL. */
void brk_spd_close(brk_spd *d);

#endif
