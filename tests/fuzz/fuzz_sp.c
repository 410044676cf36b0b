/* libFuzzer target: SP's TCP mapping as the broker reads it
 * (broker/sp_wire.c): the handshake, then requests one after another, as
 * spd.c frames them, checking each answer's invariants (abort on a
 * violation, like a crash). The first byte picks the length limit. */
#include "sp_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 + BRK_SP_HELLO_LEN)
		return 0;
	uint64_t max = 4 + (uint64_t)data[0] * 16;
	bool req = brk_sp_hello_from_req(data + 1);
	check(!req || (data[2] == 'S' && data[3] == 'P'));
	check(!brk_sp_hello_from_req(brk_sp_hello_rep));
	/* a copy of exactly the rest, so that a read past it is caught */
	size_t len = size - 1 - BRK_SP_HELLO_LEN;
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1 + BRK_SP_HELLO_LEN, len);
	size_t off = 0;
	while (off < len) {
		size_t need, bt;
		int rc = brk_sp_request(buf + off, len - off, max, &need, &bt);
		if (rc == BRK_SP_MORE) {
			check(need > len - off);
			break;
		}
		if (rc == BRK_SP_TOO_LARGE)
			break;
		check(need >= 12 && need <= 8 + max && need <= len - off);
		if (rc == BRK_SP_OK) {
			check(bt >= 4 && bt % 4 == 0 && bt <= 4 * BRK_SP_MAX_HOPS && 8 + bt <= need);
			check((buf[off + 8 + bt - 4] & 0x80) != 0);
			for (size_t w = 0; w + 4 < bt; w += 4)
				check((buf[off + 8 + w] & 0x80) == 0);
		} else {
			check(rc == BRK_SP_NO_ID);
		}
		uint8_t head[8];
		brk_sp_put_length(head, need - 8);
		check(memcmp(head, buf + off, 8) == 0);
		off += need;
	}
	free(buf);
	return 0;
}
