/*
 * sp_wire: SP's TCP mapping as bytes, without I/O: the handshake and the
 * framing of a REQ request (spd.c reads with these; tests/fuzz/fuzz_sp.c
 * calls them without a server). Every input is untrusted and bounded by
 * the length given.
 */
#ifndef SLUICE_BRK_SP_WIRE_H
#define SLUICE_BRK_SP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BRK_SP_HELLO_LEN 8
#define BRK_SP_MAX_HOPS  8 /* backtrace words, the request id included */

/* Is the peer's 8-byte handshake SP version 0 from a REQ socket? */
bool brk_sp_hello_from_req(const uint8_t hello[BRK_SP_HELLO_LEN]);
/* The REP side's handshake. */
extern const uint8_t brk_sp_hello_rep[BRK_SP_HELLO_LEN];

/* Results of brk_sp_request. */
#define BRK_SP_MORE      0 /* need more bytes: *need says how many in all */
#define BRK_SP_OK        1
#define BRK_SP_TOO_LARGE 2 /* the length is over the limit (or under 4): close */
#define BRK_SP_NO_ID     3 /* no request id in the backtrace: skip *need bytes */

/* The message at in[0..len): a 64-bit big-endian length, then the
 * backtrace (32-bit words up to one with the top bit set) and the frame.
 * On BRK_SP_OK: *need is the message's bytes in all, *bt the backtrace's
 * (at most 4 * BRK_SP_MAX_HOPS), the frame follows it. max is the largest
 * length taken. */
int brk_sp_request(const uint8_t *in, size_t len, uint64_t max, size_t *need, size_t *bt);

/* Writes the 8-byte length header of a reply of n bytes (backtrace and
 * frame) into out. */
void brk_sp_put_length(uint8_t out[8], uint64_t n);

#endif
