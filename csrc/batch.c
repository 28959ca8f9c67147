/*
 * batch.c -- RecordBatch v2 ("magic 2"): read the header, validate, stamp, build
 * from spans, decode records into columns.
 *
 * Batch (all big-endian; FORMAT.md has the normative table):
 *
 *   off  size  field                  off  size  field
 *     0     8  baseOffset              35     8  maxTimestamp
 *     8     4  batchLength (= n - 12)  43     8  producerId
 *    12     4  partitionLeaderEpoch    51     2  producerEpoch
 *    16     1  magic = 2               53     4  baseSequence
 *    17     4  crc (CRC-32C of 21..n)  57     4  recordsCount
 *    21     2  attributes              61     .  records (compressed if codec != 0)
 *    23     4  lastOffsetDelta
 *    27     8  baseTimestamp
 *
 * Record: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
 * keyLen varint (-1 = null), key, valueLen varint (-1 = null), value, headerCount
 * varint, then per header: keyLen varint (>= 0), key, valueLen varint (-1 = null),
 * value.  Varints are zig-zag (pl_internal.h).
 *
 * The CRC does not cover baseOffset, batchLength, partitionLeaderEpoch or magic, so
 * the broker stamps baseOffset and the epoch in place (pl_batch_stamp) and the
 * client's CRC stays valid.
 */
#include "pl_internal.h"

int pl_batch_read_header(const uint8_t *buf, size_t len, pl_batch_header *h)
{
    if (buf == NULL || h == NULL)
        return PL_EINVAL;
    if (len < PL_BATCH_HEADER_SIZE)
        return PL_ETRUNCATED;
    h->base_offset = (int64_t)pl_be64(buf + PL_OFF_BASE_OFFSET);
    h->batch_length = (int32_t)pl_be32(buf + PL_OFF_BATCH_LENGTH);
    h->partition_leader_epoch = (int32_t)pl_be32(buf + PL_OFF_LEADER_EPOCH);
    h->magic = (int8_t)buf[PL_OFF_MAGIC];
    h->crc = pl_be32(buf + PL_OFF_CRC);
    h->attributes = (int16_t)pl_be16(buf + PL_OFF_ATTRIBUTES);
    h->last_offset_delta = (int32_t)pl_be32(buf + PL_OFF_LAST_OFFSET_DELTA);
    h->base_timestamp = (int64_t)pl_be64(buf + PL_OFF_BASE_TIMESTAMP);
    h->max_timestamp = (int64_t)pl_be64(buf + PL_OFF_MAX_TIMESTAMP);
    h->producer_id = (int64_t)pl_be64(buf + PL_OFF_PRODUCER_ID);
    h->producer_epoch = (int16_t)pl_be16(buf + PL_OFF_PRODUCER_EPOCH);
    h->base_sequence = (int32_t)pl_be32(buf + PL_OFF_BASE_SEQUENCE);
    h->records_count = (int32_t)pl_be32(buf + PL_OFF_RECORDS_COUNT);
    return PL_OK;
}

/* One parsed record; pointers into the batch. */
typedef struct rec_view {
    int64_t ts_delta;
    int32_t offset_delta;
    int32_t key_len, value_len, header_count;
    const uint8_t *key, *value, *headers;
} rec_view;

/* Parse the record at *pp, entirely inside [*pp, end).  0 and *pp advanced past
 * it, or -1 when malformed (length past end, bad varint, negative lengths other
 * than -1, a null header key, or fields not filling the declared length). */
static inline int record_parse(const uint8_t **pp, const uint8_t *end, rec_view *r)
{
    const uint8_t *p = *pp, *rend;
    int32_t len, n, i;

    if (pl_rd_varint(&p, end, &len) || len < 1 || len > end - p)
        return -1;
    rend = p + len;
    p++;                                         /* attributes: unused */
    if (pl_rd_varlong(&p, rend, &r->ts_delta) || pl_rd_varint(&p, rend, &r->offset_delta))
        return -1;
    if (pl_rd_varint(&p, rend, &n) || n < -1 || n > rend - p)
        return -1;
    r->key_len = n;
    r->key = p;
    if (n > 0)
        p += n;
    if (pl_rd_varint(&p, rend, &n) || n < -1 || n > rend - p)
        return -1;
    r->value_len = n;
    r->value = p;
    if (n > 0)
        p += n;
    if (pl_rd_varint(&p, rend, &n) || n < 0)
        return -1;
    r->header_count = n;
    r->headers = p;
    for (i = 0; i < r->header_count; i++) {
        if (pl_rd_varint(&p, rend, &n) || n < 0 || n > rend - p)
            return -1;
        p += n;
        if (pl_rd_varint(&p, rend, &n) || n < -1 || n > rend - p)
            return -1;
        if (n > 0)
            p += n;
    }
    if (p != rend)
        return -1;
    *pp = rend;
    return 0;
}

static const char MSG_ID_HEADER[] = "pylog-msg-id";   /* pylog/storage/dedup.py */
#define MSG_ID_HEADER_LEN ((int32_t)sizeof MSG_ID_HEADER - 1)

/* Whether the (already parsed, so well-formed) record r, ending at rend, has a
 * header named pylog-msg-id. */
static int record_has_msg_id(const rec_view *r, const uint8_t *rend)
{
    const uint8_t *p = r->headers;
    int32_t i, n;

    for (i = 0; i < r->header_count; i++) {
        if (pl_rd_varint(&p, rend, &n))
            return 0;
        if (n == MSG_ID_HEADER_LEN && memcmp(p, MSG_ID_HEADER, (size_t)n) == 0)
            return 1;
        p += n;
        if (pl_rd_varint(&p, rend, &n))
            return 0;
        if (n > 0)
            p += n;
    }
    return 0;
}

/* Deep check of an uncompressed records section: exactly count records filling
 * it, offsetDelta strictly increasing and <= lastOffsetDelta.  With want_ids, a
 * valid section one of whose records has a pylog-msg-id header is PL_EMSGID. */
static int records_check(const uint8_t *p, const uint8_t *end, const pl_batch_header *h,
                         int want_ids)
{
    int32_t i, prev = -1;
    int found = 0;
    rec_view r;

    for (i = 0; i < h->records_count; i++) {
        if (record_parse(&p, end, &r) || r.offset_delta <= prev ||
            r.offset_delta > h->last_offset_delta)
            return PL_EBADRECORD;
        prev = r.offset_delta;
        if (want_ids && r.header_count > 0 && !found)
            found = record_has_msg_id(&r, p);
    }
    if (p != end)
        return PL_EBADRECORD;
    return found ? PL_EMSGID : PL_OK;
}

int pl_batch_validate(const uint8_t *buf, size_t avail, uint32_t max_batch_bytes,
                      int deep, pl_batch_header *out)
{
    pl_batch_header hs, *h = out ? out : &hs;
    int32_t blen;
    uint64_t total;

    if (buf == NULL)
        return PL_EINVAL;
    if (avail < PL_LOG_OVERHEAD)
        return PL_ETRUNCATED;
    blen = (int32_t)pl_be32(buf + PL_OFF_BATCH_LENGTH);
    if (blen < PL_MIN_BATCH_LENGTH)
        return PL_EBADLEN;
    total = PL_LOG_OVERHEAD + (uint64_t)blen;
    if (max_batch_bytes && total > max_batch_bytes)
        return PL_ETOOLARGE;
    if (total > avail)
        return PL_ETRUNCATED;
    if (buf[PL_OFF_MAGIC] != PL_MAGIC_V2)
        return PL_EBADMAGIC;
    pl_batch_read_header(buf, (size_t)total, h);
    if (pl_crc32c(0, buf + PL_OFF_ATTRIBUTES, (size_t)total - PL_OFF_ATTRIBUTES) != h->crc)
        return PL_EBADCRC;
    if (h->records_count <= 0 || h->last_offset_delta < h->records_count - 1)
        return PL_EBADOFFSET;
    if (deep && (h->attributes & PL_ATTR_COMPRESSION_MASK) == 0)
        return records_check(buf + PL_BATCH_HEADER_SIZE, buf + total, h,
                             deep == PL_DEEP_MSG_IDS);
    return PL_OK;
}

void pl_batch_stamp(uint8_t *buf, int64_t base_offset, int32_t leader_epoch)
{
    pl_put_be64(buf + PL_OFF_BASE_OFFSET, (uint64_t)base_offset);
    pl_put_be32(buf + PL_OFF_LEADER_EPOCH, (uint32_t)leader_epoch);
}

int pl_batch_set_log_append_time(uint8_t *buf, size_t len, int64_t timestamp)
{
    uint16_t attrs;

    if (buf == NULL || len < PL_BATCH_HEADER_SIZE ||
        PL_LOG_OVERHEAD + (uint64_t)pl_be32(buf + PL_OFF_BATCH_LENGTH) != len)
        return PL_EINVAL;
    attrs = pl_be16(buf + PL_OFF_ATTRIBUTES) | PL_ATTR_TIMESTAMP_TYPE;
    pl_put_be16(buf + PL_OFF_ATTRIBUTES, attrs);
    pl_put_be64(buf + PL_OFF_MAX_TIMESTAMP, (uint64_t)timestamp);
    pl_put_be32(buf + PL_OFF_CRC, pl_crc32c(0, buf + PL_OFF_ATTRIBUTES, len - PL_OFF_ATTRIBUTES));
    return PL_OK;
}

/* ---- build --------------------------------------------------------------------- */

static inline int64_t rec_ts(const pl_records_in *r, uint32_t i)
{
    return r->timestamps ? r->timestamps[i] : r->timestamp;
}

/* Size of record i's body (after its length varint); advances *hi over its
 * headers.  0 on invalid input. */
static inline __attribute__((always_inline)) uint64_t
record_body_size(const pl_records_in *r, uint32_t i, int64_t base_ts, uint64_t *hi)
{
    int32_t kl = r->key_lens ? r->key_lens[i] : -1, vl = r->value_lens[i];
    int32_t hc = r->header_counts ? r->header_counts[i] : 0, j;
    uint64_t n = 1;

    if (kl < -1 || vl < -1 || hc < 0)
        return 0;
    if (hc == 0 && !r->timestamps)     /* the common shape: one size per field */
        return 3 + pl_varint_size((int64_t)i) + pl_varint_size(kl) +
               (kl > 0 ? (uint64_t)kl : 0) + pl_varint_size(vl) + (vl > 0 ? (uint64_t)vl : 0);
    n += pl_varint_size((int64_t)((uint64_t)rec_ts(r, i) - (uint64_t)base_ts));
    n += pl_varint_size((int64_t)i);
    n += pl_varint_size(kl) + (kl > 0 ? (uint64_t)kl : 0);
    n += pl_varint_size(vl) + (vl > 0 ? (uint64_t)vl : 0);
    n += pl_varint_size(hc);
    for (j = 0; j < hc; j++, (*hi)++) {
        int32_t hk = r->header_key_lens[*hi], hv = r->header_value_lens[*hi];
        if (hk < 0 || hv < -1)
            return 0;
        n += pl_varint_size(hk) + (uint64_t)hk + pl_varint_size(hv) + (hv > 0 ? (uint64_t)hv : 0);
    }
    return n;
}

/* Exact encoded size of r, 0 when r is invalid. */
static uint64_t batch_size(const pl_records_in *r)
{
    uint64_t total = PL_BATCH_HEADER_SIZE, hi = 0;
    uint32_t i;
    int64_t base_ts;

    if (r == NULL || r->count == 0 || r->count > INT32_MAX || r->value_lens == NULL ||
        (r->attributes & PL_ATTR_COMPRESSION_MASK) ||
        (r->header_counts && (!r->header_key_lens || !r->header_value_lens)))
        return 0;
    base_ts = rec_ts(r, 0);
    for (i = 0; i < r->count; i++) {
        uint64_t body = record_body_size(r, i, base_ts, &hi);
        if (body == 0)
            return 0;
        total += pl_uvarint_size(body << 1) + body;
    }
    if (total - PL_LOG_OVERHEAD > INT32_MAX)
        return 0;
    return total;
}

size_t pl_batch_size_bound(const pl_records_in *r)
{
    return (size_t)batch_size(r);
}

/* Copy n bytes of a blob (NULL blob with n > 0 was rejected by blobs_ok). */
static inline uint8_t *put_span(uint8_t *q, const uint8_t *blob, uint64_t *at, int32_t n)
{
    q = pl_put_varint(q, n);
    if (n > 0) {
        memcpy(q, blob + *at, (size_t)n);
        q += n;
        *at += (uint64_t)n;
    }
    return q;
}

/* A NULL blob is fine only if every length drawn from it is <= 0. */
static int blobs_ok(const pl_records_in *r)
{
    uint64_t i, nh = 0;
    for (i = 0; i < r->count; i++) {
        if (!r->keys && r->key_lens && r->key_lens[i] > 0)
            return 0;
        if (r->value_lens[i] > 0 &&
            (r->value_ptrs ? r->value_ptrs[i] == NULL : r->values == NULL))
            return 0;
        nh += r->header_counts ? (uint64_t)r->header_counts[i] : 0;
    }
    for (i = 0; i < nh; i++) {
        if ((!r->header_keys && r->header_key_lens[i] > 0) ||
            (!r->header_values && r->header_value_lens[i] > 0))
            return 0;
    }
    return 1;
}

int pl_batch_build(uint8_t *out, size_t cap, int64_t base_offset,
                   const pl_records_in *r, size_t *out_len)
{
    return pl_batch_build_sized(out, cap, base_offset, r, batch_size(r), out_len);
}

/* Encode the records of r after a batch header at `out`.  With iov NULL every byte
 * goes to out.  Otherwise values longer than 0 are referenced, not copied: out gets
 * everything else and iov[*niov...] the pieces of the batch in order (runs of out,
 * and values).  Returns the end of what was written to out; *max_ts = the largest
 * timestamp. */
static uint8_t *encode_records(uint8_t *out, const pl_records_in *r, int64_t base_ts,
                               int64_t *max_ts, struct iovec *iov, size_t *niov)
{
    uint64_t hi = 0, hj = 0, ka = 0, va = 0, hka = 0, hva = 0;
    uint8_t *q = out + PL_BATCH_HEADER_SIZE, *run = out;
    uint32_t i;

    *max_ts = base_ts;
    for (i = 0; i < r->count; i++) {
        int64_t ts = rec_ts(r, i);
        int32_t hc = r->header_counts ? r->header_counts[i] : 0, j, vl = r->value_lens[i];
        uint64_t body = record_body_size(r, i, base_ts, &hi);
        if (ts > *max_ts)
            *max_ts = ts;
        q = pl_put_varint(q, (int64_t)body);
        *q++ = 0;
        q = pl_put_varint(q, (int64_t)((uint64_t)ts - (uint64_t)base_ts));
        q = pl_put_varint(q, (int64_t)i);
        q = put_span(q, r->keys, &ka, r->key_lens ? r->key_lens[i] : -1);
        if (r->value_ptrs == NULL) {
            q = put_span(q, r->values, &va, vl);
        } else {
            q = pl_put_varint(q, vl);
            if (vl > 0 && iov != NULL) {
                iov[(*niov)++] = (struct iovec){run, (size_t)(q - run)};
                iov[(*niov)++] = (struct iovec){(void *)r->value_ptrs[i], (size_t)vl};
                run = q;
            } else if (vl > 0) {
                memcpy(q, r->value_ptrs[i], (size_t)vl);
                q += vl;
            }
        }
        q = pl_put_varint(q, hc);
        for (j = 0; j < hc; j++, hj++) {
            q = put_span(q, r->header_keys, &hka, r->header_key_lens[hj]);
            q = put_span(q, r->header_values, &hva, r->header_value_lens[hj]);
        }
    }
    if (iov != NULL && q > run)
        iov[(*niov)++] = (struct iovec){run, (size_t)(q - run)};
    return q;
}

static void put_header(uint8_t *out, int64_t base_offset, const pl_records_in *r,
                       uint64_t total, int64_t base_ts, int64_t max_ts)
{
    pl_put_be64(out + PL_OFF_BASE_OFFSET, (uint64_t)base_offset);
    pl_put_be32(out + PL_OFF_BATCH_LENGTH, (uint32_t)(total - PL_LOG_OVERHEAD));
    pl_put_be32(out + PL_OFF_LEADER_EPOCH, 0);
    out[PL_OFF_MAGIC] = PL_MAGIC_V2;
    pl_put_be16(out + PL_OFF_ATTRIBUTES, (uint16_t)r->attributes);
    pl_put_be32(out + PL_OFF_LAST_OFFSET_DELTA, r->count - 1);
    pl_put_be64(out + PL_OFF_BASE_TIMESTAMP, (uint64_t)base_ts);
    pl_put_be64(out + PL_OFF_MAX_TIMESTAMP, (uint64_t)max_ts);
    pl_put_be64(out + PL_OFF_PRODUCER_ID, (uint64_t)r->producer_id);
    pl_put_be16(out + PL_OFF_PRODUCER_EPOCH, (uint16_t)r->producer_epoch);
    pl_put_be32(out + PL_OFF_BASE_SEQUENCE, (uint32_t)r->base_sequence);
    pl_put_be32(out + PL_OFF_RECORDS_COUNT, r->count);
}

int pl_batch_build_sized(uint8_t *out, size_t cap, int64_t base_offset,
                         const pl_records_in *r, uint64_t total, size_t *out_len)
{
    int64_t base_ts, max_ts;

    if (out == NULL || total == 0 || !blobs_ok(r))
        return PL_EINVAL;
    if (total > cap)
        return PL_ETRUNCATED;
    base_ts = rec_ts(r, 0);
    encode_records(out, r, base_ts, &max_ts, NULL, NULL);
    put_header(out, base_offset, r, total, base_ts, max_ts);
    pl_put_be32(out + PL_OFF_CRC,
                pl_crc32c(0, out + PL_OFF_ATTRIBUTES, (size_t)total - PL_OFF_ATTRIBUTES));
    *out_len = (size_t)total;
    return PL_OK;
}

uint64_t pl_batch_vec_meta_size(const pl_records_in *r, uint64_t total, size_t *max_iov)
{
    uint64_t vsum = 0, i, with = 0;
    for (i = 0; i < r->count; i++) {
        if (r->value_lens[i] > 0) {
            vsum += (uint64_t)r->value_lens[i];
            with++;
        }
    }
    *max_iov = (size_t)(2 * with + 1);
    return total - vsum;
}

int pl_batch_build_vec(uint8_t *meta, size_t meta_cap, int64_t base_offset,
                       const pl_records_in *r, uint64_t total, struct iovec *iov,
                       size_t *niov)
{
    int64_t base_ts, max_ts;
    uint32_t crc = 0;
    size_t k;

    if (meta == NULL || total == 0 || r->value_ptrs == NULL || !blobs_ok(r))
        return PL_EINVAL;
    *niov = 0;
    base_ts = rec_ts(r, 0);
    if ((uint64_t)(encode_records(meta, r, base_ts, &max_ts, iov, niov) - meta) > meta_cap)
        return PL_ETRUNCATED;            /* cannot happen with pl_batch_vec_meta_size */
    put_header(meta, base_offset, r, total, base_ts, max_ts);
    for (k = 0; k < *niov; k++) {        /* CRC-32C from attributes to the end */
        const uint8_t *b = iov[k].iov_base;
        size_t n = iov[k].iov_len;
        if (k == 0) {
            b += PL_OFF_ATTRIBUTES;
            n -= PL_OFF_ATTRIBUTES;
        }
        crc = pl_crc32c(crc, b, n);
    }
    pl_put_be32(meta + PL_OFF_CRC, crc);
    return PL_OK;
}

/* ---- decode -------------------------------------------------------------------- */

int pl_records_decode_upto(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                           int64_t min_offset, const uint8_t *origin, uint64_t max_count,
                           pl_record_cols *c, int *out_stopped)
{
    const uint8_t *p = rec, *end = rec + rec_len;
    uint64_t n, start;
    int log_append = (h != NULL && (h->attributes & PL_ATTR_TIMESTAMP_TYPE) != 0);
    int64_t base_ts, base_off;
    int32_t i;
    rec_view r;

    if (rec == NULL || h == NULL || c == NULL || c->count > c->capacity)
        return PL_EINVAL;
    if (h->records_count < 0)
        return PL_EBADRECORD;
    if (out_stopped != NULL)
        *out_stopped = 0;
    n = start = c->count;
    base_ts = h->base_timestamp;
    base_off = h->base_offset;
    for (i = 0; i < h->records_count; i++) {
        int64_t off;
        if (record_parse(&p, end, &r))
            goto bad;
        off = base_off + r.offset_delta;
        if (off < min_offset)
            continue;
        if (n >= max_count) {                   /* enough: leave the rest undecoded */
            if (out_stopped != NULL)
                *out_stopped = 1;
            c->count = n;
            return PL_OK;
        }
        if (n >= c->capacity) {
            c->count = start;
            return PL_ENOSPACE_CAP;
        }
        c->offsets[n] = off;
        c->timestamps[n] = log_append ? h->max_timestamp
                         : (int64_t)((uint64_t)base_ts + (uint64_t)r.ts_delta);
        c->key_lens[n] = r.key_len;
        c->key_pos[n] = r.key_len >= 0 ? r.key - origin : 0;
        c->value_lens[n] = r.value_len;
        c->value_pos[n] = r.value_len >= 0 ? r.value - origin : 0;
        c->header_counts[n] = r.header_count;
        c->headers_pos[n] = r.headers - origin;
        n++;
    }
    if (p != end)
        goto bad;
    c->count = n;
    return PL_OK;
bad:
    c->count = start;
    return PL_EBADRECORD;
}

int pl_records_decode(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                      int64_t min_offset, const uint8_t *origin, pl_record_cols *c)
{
    return pl_records_decode_upto(rec, rec_len, h, min_offset, origin, UINT64_MAX, c, NULL);
}
