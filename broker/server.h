/*
 * server: the broker's SP side, listening on every URL of broker.listen:
 * tcp:// on spd.c, ipc:// and tls+tcp:// on NNG's REP socket with a pool
 * of contexts; many requests are in flight at once on either. Both hand
 * each request frame to one function that decodes it, answers PING and bad
 * frames itself and gives everything else to the writer; it never blocks.
 */
#ifndef SLUICE_BRK_SERVER_H
#define SLUICE_BRK_SERVER_H

#include <stddef.h>

#include "config.h"
#include "writer.h"

typedef struct brk_server brk_server;

/* Starts listening; on failure err names the URL and the reason. */
int brk_server_open(const cfg *c, brk_writer *w, brk_server **out, char *err, size_t errlen);
/* Shutdown, step 1: close the listeners and answer new requests with
 * SHUTTING_DOWN; requests already with the writer still get their replies. */
void brk_server_drain(brk_server *s);
/* Shutdown, step 2 (after the writer is closed): close the socket and
 * free. Accepts NULL. */
void brk_server_close(brk_server *s);

#endif
