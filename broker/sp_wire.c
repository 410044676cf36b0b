/* sp_wire: SP's TCP mapping without I/O; see sp_wire.h. */
#include "sp_wire.h"

const uint8_t brk_sp_hello_rep[BRK_SP_HELLO_LEN] = {0, 'S', 'P', 0, 0x00, 0x31, 0, 0};

bool
brk_sp_hello_from_req(const uint8_t h[BRK_SP_HELLO_LEN])
{
	return h[0] == 0 && h[1] == 'S' && h[2] == 'P' && h[3] == 0 && h[4] == 0x00 && h[5] == 0x30;
}

int
brk_sp_request(const uint8_t *in, size_t len, uint64_t max, size_t *need, size_t *bt)
{
	uint64_t n = 0;
	*need = 8;
	*bt = 0;
	if (len < 8)
		return BRK_SP_MORE;
	for (int i = 0; i < 8; i++)
		n = n << 8 | in[i];
	if (n < 4 || n > max)
		return BRK_SP_TOO_LARGE;
	*need = 8 + (size_t)n;
	if (len < *need)
		return BRK_SP_MORE;
	for (size_t b = 0; b + 4 <= n && b < 4 * BRK_SP_MAX_HOPS; b += 4) {
		if (in[8 + b] & 0x80) {
			*bt = b + 4;
			return BRK_SP_OK;
		}
	}
	return BRK_SP_NO_ID;
}

void
brk_sp_put_length(uint8_t out[8], uint64_t n)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(n >> (56 - 8 * i));
}
