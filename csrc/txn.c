/*
 * txn.c -- transactions on the log: control records and the header walk that
 * rebuilds a partition's transaction state (Kafka's EndTransactionMarker,
 * ProducerStateManager's recovery from the log; FORMAT.md section 6a).
 *
 * A control batch (attributes transactional | control = 0x30, uncompressed) holds one
 * record, Kafka's transaction marker:
 *
 *     key    version i16 = 0 | type i16 (0 ABORT, 1 COMMIT)            4 bytes
 *     value  version i16 = 0 | coordinatorEpoch i32                    6 bytes
 *
 * pl_txn_scan hops from batch header to batch header (baseOffset, batchLength,
 * attributes: three loads a batch), so a partition's transactional batches are found
 * at memory speed; only control batches have their record parsed.  The bytes are
 * trusted to be framed (load or recovery validated them): a length running past the
 * end stops the walk with PL_EBADLEN, nothing is read beyond ``end``.
 */
#include "pl_internal.h"

int pl_control_parse(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                     int16_t *out_type, int32_t *out_coordinator_epoch,
                     int64_t *out_offset)
{
    const uint8_t *p = rec, *end, *rend;
    int32_t len, off_delta, klen, vlen, headers;
    int64_t ts_delta;
    uint16_t type;

    if (rec == NULL || h == NULL || out_type == NULL || out_coordinator_epoch == NULL ||
        out_offset == NULL)
        return PL_EINVAL;
    end = rec + rec_len;
    if (h->records_count != 1)
        return PL_EBADRECORD;
    if (pl_rd_varint(&p, end, &len) || len < 1 || (uint64_t)len > (uint64_t)(end - p))
        return PL_EBADRECORD;
    rend = p + len;
    p++;                                                  /* record attributes */
    if (pl_rd_varlong(&p, rend, &ts_delta) || pl_rd_varint(&p, rend, &off_delta) ||
        off_delta < 0 || off_delta > h->last_offset_delta)
        return PL_EBADRECORD;
    if (pl_rd_varint(&p, rend, &klen) || klen != PL_CONTROL_KEY_SIZE || rend - p < klen)
        return PL_EBADRECORD;
    type = pl_be16(p + 2);
    if (pl_be16(p) != 0 || (type != PL_TXN_ABORT && type != PL_TXN_COMMIT))
        return PL_EBADRECORD;
    p += klen;
    if (pl_rd_varint(&p, rend, &vlen) || vlen != PL_CONTROL_VALUE_SIZE || rend - p < vlen)
        return PL_EBADRECORD;
    if (pl_be16(p) != 0)
        return PL_EBADRECORD;
    *out_coordinator_epoch = (int32_t)pl_be32(p + 2);
    p += vlen;
    if (pl_rd_varint(&p, rend, &headers) || headers != 0 || p != rend)
        return PL_EBADRECORD;
    *out_type = (int16_t)type;
    *out_offset = h->base_offset + off_delta;
    return PL_OK;
}

/* Fill e from the transactional batch at b (size bytes, framed). */
static void scan_one(const uint8_t *b, uint64_t pos, uint64_t size, uint16_t attributes,
                     pl_txn_batch *e)
{
    pl_batch_header h;

    e->position = pos;
    e->base_offset = (int64_t)pl_be64(b + PL_OFF_BASE_OFFSET);
    e->last_offset = e->base_offset + (int32_t)pl_be32(b + PL_OFF_LAST_OFFSET_DELTA);
    e->producer_id = (int64_t)pl_be64(b + PL_OFF_PRODUCER_ID);
    e->producer_epoch = (int16_t)pl_be16(b + PL_OFF_PRODUCER_EPOCH);
    e->marker_offset = -1;
    e->coordinator_epoch = -1;
    e->type = PL_TXN_DATA;
    if (!(attributes & PL_ATTR_CONTROL))
        return;
    e->type = PL_TXN_BAD;
    if ((attributes & PL_ATTR_COMPRESSION_MASK) ||
        pl_batch_read_header(b, (size_t)size, &h) != PL_OK)
        return;
    if (pl_control_parse(b + PL_BATCH_HEADER_SIZE, (size_t)(size - PL_BATCH_HEADER_SIZE), &h,
                         &e->type, &e->coordinator_epoch, &e->marker_offset) != PL_OK) {
        e->type = PL_TXN_BAD;
        e->marker_offset = -1;
        e->coordinator_epoch = -1;
    }
}

int pl_txn_scan(const uint8_t *buf, uint64_t pos, uint64_t end, pl_txn_batch *out,
                uint32_t cap, uint32_t *out_n, uint64_t *out_pos)
{
    uint32_t n = 0;
    int rc = PL_OK;

    if (buf == NULL || out_n == NULL || out_pos == NULL || (out == NULL && cap) || pos > end)
        return PL_EINVAL;
    while (end - pos >= PL_LOG_OVERHEAD) {
        const uint8_t *b = buf + pos;
        int32_t length = (int32_t)pl_be32(b + PL_OFF_BATCH_LENGTH);
        uint64_t size = PL_LOG_OVERHEAD + (uint64_t)length;
        uint16_t attributes;
        if (length < PL_MIN_BATCH_LENGTH || size > end - pos) {
            rc = PL_EBADLEN;
            break;
        }
        attributes = pl_be16(b + PL_OFF_ATTRIBUTES);
        if (attributes & PL_ATTR_TRANSACTIONAL) {
            if (n == cap) {
                rc = PL_ENOSPACE_CAP;
                break;
            }
            scan_one(b, pos, size, attributes, &out[n++]);
        }
        pos += size;
    }
    *out_n = n;
    *out_pos = pos;
    return rc;
}
