/* libFuzzer target: the frame decoder and every item iterator. */
#include "codec.h"

#include <stdint.h>
#include <stddef.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	proto_frame f;
	if (proto_frame_decode(data, size, &f) != PROTO_OK)
		return 0;
	proto_enq_item e;
	proto_nack_item n;
	proto_msg m;
	proto_field fl;
	proto_queue_stats q;
	uint64_t id;
	uint16_t code;
	bool dup;
	switch (f.h.type) {
	case PROTO_T_ENQUEUE:
		while (proto_enq_next(&f.u.enqueue.items, &e))
			;
		break;
	case PROTO_T_ACK:
	case PROTO_T_TOUCH:
		while (proto_id_next(&f.u.ids.ids, &id))
			;
		while (proto_field_next(&f.u.ids.report, &fl))
			;
		break;
	case PROTO_T_NACK:
		while (proto_nack_next(&f.u.ids.ids, &n))
			;
		break;
	case PROTO_T_REPORT:
		while (proto_field_next(&f.u.report.fields, &fl))
			;
		break;
	case PROTO_T_IDS:
		while (proto_idflag_next(&f.u.id_list.ids, &id, &dup))
			;
		break;
	case PROTO_T_MESSAGES:
		while (proto_msg_next(&f.u.messages.msgs, &m))
			;
		break;
	case PROTO_T_RESULTS:
		while (proto_code_next(&f.u.results.codes, &code))
			;
		break;
	case PROTO_T_STATS_REPLY:
		while (proto_field_next(&f.u.stats.broker, &fl))
			;
		while (proto_queue_stats_next(&f.u.stats.queues, &q))
			while (proto_field_next(&q.fields, &fl))
				;
		break;
	default:
		break;
	}
	return 0;
}
