/*
 * server: the broker's NNG side. A REP socket listening on every URL of
 * broker.listen, with a pool of contexts so many requests are in flight at
 * once. Callbacks decode, answer PING and bad frames themselves, and hand
 * everything else to the writer; they never block.
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
