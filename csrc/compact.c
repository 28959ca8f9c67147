/*
 * compact.c -- log compaction's hot loops: the offset map and the batch re-encoder
 * (Kafka's LogCleaner: SkimpyOffsetMap, Cleaner.cleanInto / MemoryRecords.filterTo).
 *
 * Offset map.  An open-addressing table (linear probing, power-of-two capacity,
 * caller-owned zeroed slots) from a key to the latest offset seen for it.  A slot
 * holds two XXH64 hashes of the key (seeds 0 and 1: 128 bits, so two keys collide
 * with probability ~2^-128 -- Kafka keeps 16 bytes of MD5 for the same reason) and
 * offset + 1 (0 = empty).  Only the hashes are stored, never the key, so memory is
 * 24 bytes a key whatever the key size.  The map refuses a new key (PL_EFULL) past
 * max_count (the caller sets ~0.75 x capacity): the cleaner then stops its dirty
 * range at the last segment fully indexed, as Kafka does when its map is full.
 *
 * Re-encoder.  A record of a cleaned batch is kept when it has a key, its offset is
 * >= the map's offset for that key (or the key is not in the map), and it is not a
 * tombstone (null value) past its batch's delete horizon; a batch of an aborted
 * transaction (m->aborted) is dropped whole, control batches are kept whole.  Kept records are copied
 * with their bytes unchanged except timestampDelta and offsetDelta (re-encoded when
 * the batch is rebased or gets a delete horizon).  Offsets never change: the output
 * keeps each batch's baseOffset, except that the first batch written is rebased to
 * the group's base offset (w->next_base) and each batch's lastOffsetDelta is
 * extended up to the next batch written (or the group's end): the chain of base
 * offsets stays contiguous, so recovery, fsck and reads check it unchanged, and
 * the offsets of dropped records become gaps inside batches (allowed by the v2
 * format: offsetDelta <= lastOffsetDelta, recordsCount <= lastOffsetDelta + 1).
 * The CRC of a written batch is computed once its lastOffsetDelta is final (when
 * the next batch is written, or at pl_compact_finish).
 *
 * Delete horizon (KIP-534, Kafka's format): attribute bit 6 set means baseTimestamp
 * holds the delete horizon (ms); record timestamps stay baseTimestamp + delta.
 * The first cleaning that keeps a tombstone in a batch sets the horizon to
 * now + delete.retention.ms; a cleaning after the horizon drops the batch's
 * tombstones.
 */
#include <string.h>

#include "pl_internal.h"

/* ---- XXH64 (Yann Collet's xxHash, BSD-2-Clause; written from the specification,
 *      tests/storage/test_compaction_core.py checks it against the python xxhash) -- */
#define P64_1 0x9E3779B185EBCA87ULL
#define P64_2 0xC2B2AE3D27D4EB4FULL
#define P64_3 0x165667B19E3779F9ULL
#define P64_4 0x85EBCA77C2B2AE63ULL
#define P64_5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t rd64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * P64_2;
    return rotl64(acc, 31) * P64_1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t val)
{
    acc ^= xxh_round(0, val);
    return acc * P64_1 + P64_4;
}

uint64_t pl_xxh64(const void *input, size_t len, uint64_t seed)
{
    const uint8_t *p = input, *end = p + len;
    uint64_t h;

    if (len >= 32) {
        uint64_t v1 = seed + P64_1 + P64_2, v2 = seed + P64_2, v3 = seed, v4 = seed - P64_1;
        const uint8_t *limit = end - 32;
        do {
            v1 = xxh_round(v1, rd64le(p));
            v2 = xxh_round(v2, rd64le(p + 8));
            v3 = xxh_round(v3, rd64le(p + 16));
            v4 = xxh_round(v4, rd64le(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = seed + P64_5;
    }
    h += (uint64_t)len;
    while (end - p >= 8) {
        h ^= xxh_round(0, rd64le(p));
        h = rotl64(h, 27) * P64_1 + P64_4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= (uint64_t)rd32le(p) * P64_1;
        h = rotl64(h, 23) * P64_2 + P64_3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p++) * P64_5;
        h = rotl64(h, 11) * P64_1;
    }
    h ^= h >> 33;
    h *= P64_2;
    h ^= h >> 29;
    h *= P64_3;
    h ^= h >> 32;
    return h;
}

/* ---- offset map ---------------------------------------------------------------- */
/* The slot for (h1, h2): its own, or the empty one where it would go. */
static pl_offset_slot *map_slot(const pl_offset_map *m, uint64_t h1, uint64_t h2)
{
    uint64_t mask = m->capacity - 1, i = h1 & mask;

    for (;;) {
        pl_offset_slot *s = &m->slots[i];
        if (s->offset_plus_1 == 0 || (s->h1 == h1 && s->h2 == h2))
            return s;
        i = (i + 1) & mask;
    }
}

static int map_ok(const pl_offset_map *m)
{
    return m && m->slots && m->capacity && !(m->capacity & (m->capacity - 1)) &&
           m->max_count < m->capacity;
}

int pl_offset_map_put(pl_offset_map *m, const uint8_t *key, int32_t key_len,
                      int64_t offset)
{
    pl_offset_slot *s;
    uint64_t h1, h2;

    if (!map_ok(m) || key_len < 0 || offset < 0)
        return PL_EINVAL;
    h1 = pl_xxh64(key, (size_t)key_len, 0);
    h2 = pl_xxh64(key, (size_t)key_len, 1);
    s = map_slot(m, h1, h2);
    if (s->offset_plus_1 == 0) {
        if (m->count >= m->max_count)
            return PL_EFULL;
        s->h1 = h1;
        s->h2 = h2;
        m->count++;
    }
    if ((uint64_t)offset + 1 > s->offset_plus_1)
        s->offset_plus_1 = (uint64_t)offset + 1;
    if (offset > m->max_offset)
        m->max_offset = offset;
    return PL_OK;
}

int64_t pl_offset_map_get(const pl_offset_map *m, const uint8_t *key, int32_t key_len)
{
    const pl_offset_slot *s;

    if (!map_ok(m) || key_len < 0)
        return -1;
    s = map_slot(m, pl_xxh64(key, (size_t)key_len, 0), pl_xxh64(key, (size_t)key_len, 1));
    return (int64_t)s->offset_plus_1 - 1;
}

/* ---- walking records ------------------------------------------------------------- */
typedef struct rec_view {
    const uint8_t *start, *end;   /* the whole record, length varint included      */
    uint8_t attr;
    int64_t ts_delta;
    int32_t off_delta;
    const uint8_t *key;           /* NULL when null                                */
    int32_t key_len;
    int null_value;
    const uint8_t *rest;          /* from keyLength to the end of the record       */
} rec_view;

/* Parse the record at *pp (bounded by end).  0, or PL_EBADRECORD. */
static int rec_next(const uint8_t **pp, const uint8_t *end, rec_view *r)
{
    const uint8_t *p = *pp, *rend;
    int32_t len, vlen;

    r->start = p;
    if (pl_rd_varint(&p, end, &len) || len < 1 || (uint64_t)len > (uint64_t)(end - p))
        return PL_EBADRECORD;
    rend = p + len;
    r->attr = *p++;                            /* attributes (unused, int8) */
    if (pl_rd_varlong(&p, rend, &r->ts_delta) || pl_rd_varint(&p, rend, &r->off_delta))
        return PL_EBADRECORD;
    r->rest = p;
    if (pl_rd_varint(&p, rend, &r->key_len) || r->key_len < -1 ||
        (r->key_len > 0 && r->key_len > rend - p))
        return PL_EBADRECORD;
    r->key = r->key_len >= 0 ? p : NULL;
    if (r->key_len > 0)
        p += r->key_len;
    if (pl_rd_varint(&p, rend, &vlen) || vlen < -1 || (vlen > 0 && vlen > rend - p))
        return PL_EBADRECORD;
    r->null_value = vlen < 0;
    r->end = rend;
    *pp = rend;
    return PL_OK;
}

/* Whether the batch h is data of an aborted transaction in m->aborted: the range of
 * its producer id with the largest first_offset <= baseOffset, if the batch ends
 * before that range's ABORT marker.  (Binary search: a producer's transactions do
 * not overlap.)  Such a batch is neither indexed nor kept, so an aborted value never
 * supersedes a committed one. */
static int aborted_batch(const pl_offset_map *m, const pl_batch_header *h)
{
    uint64_t lo = 0, hi;

    if (m == NULL || m->aborted_count == 0 ||
        (h->attributes & (PL_ATTR_TRANSACTIONAL | PL_ATTR_CONTROL)) != PL_ATTR_TRANSACTIONAL)
        return 0;
    hi = m->aborted_count;
    while (lo < hi) {                 /* first entry after (producer_id, base_offset) */
        uint64_t mid = lo + (hi - lo) / 2;
        const pl_txn_range *e = &m->aborted[mid];
        if (e->producer_id < h->producer_id ||
            (e->producer_id == h->producer_id && e->first_offset <= h->base_offset))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    {
        const pl_txn_range *e = &m->aborted[lo - 1];
        return e->producer_id == h->producer_id &&
               h->base_offset + h->last_offset_delta < e->last_offset;
    }
}

int pl_compact_index_records(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                             pl_offset_map *m)
{
    const uint8_t *p = rec, *end = rec + rec_len;
    rec_view r;
    int rc;

    if (rec == NULL || h == NULL)
        return PL_EINVAL;
    if (aborted_batch(m, h))
        return PL_OK;
    for (int32_t i = 0; i < h->records_count; i++) {
        if ((rc = rec_next(&p, end, &r)))
            return rc;
        if (r.off_delta < 0 || r.off_delta > h->last_offset_delta)
            return PL_EBADRECORD;
        if (r.key == NULL)
            continue;                 /* keyless: dropped by the cleaner, never indexed */
        if ((rc = pl_offset_map_put(m, r.key, r.key_len, h->base_offset + r.off_delta)))
            return rc;
    }
    return PL_OK;
}

/* One checked batch of a segment mapping for the cleaner's two passes: the batch at
 * pos (below end) passes pl_batch_validate (CRC, deep) and the offset chain. */
static int check_batch(const uint8_t *buf, uint64_t pos, uint64_t end, int64_t expect,
                       pl_batch_header *h)
{
    int rc = pl_batch_validate(buf + pos, (size_t)(end - pos), 0, 1, h);

    if (rc)
        return rc;
    if (expect >= 0 && h->base_offset != expect)
        return PL_EBADOFFSET;
    if (h->partition_leader_epoch != 0 && h->partition_leader_epoch != -1)
        return PL_EBADHEADER;
    return PL_OK;
}

int pl_compact_index_segment(const uint8_t *buf, uint64_t pos, uint64_t end,
                             pl_offset_map *m, int64_t *io_expect, uint64_t *out_pos)
{
    pl_batch_header h;
    int rc;

    if (buf == NULL || io_expect == NULL || out_pos == NULL || pos > end)
        return PL_EINVAL;
    while (pos < end) {
        *out_pos = pos;
        if ((rc = check_batch(buf, pos, end, *io_expect, &h)))
            return rc;
        if (h.attributes & PL_ATTR_COMPRESSION_MASK)
            return PL_ECOMPRESSED;          /* caller inflates: index_records, resume */
        if (!(h.attributes & PL_ATTR_CONTROL)) {
            rc = pl_compact_index_records(buf + pos + PL_BATCH_HEADER_SIZE,
                                          (size_t)(PL_LOG_OVERHEAD + (uint64_t)h.batch_length
                                                   - PL_BATCH_HEADER_SIZE), &h, m);
            if (rc)
                return rc;
        }
        *io_expect = h.base_offset + h.last_offset_delta + 1;
        pos += PL_LOG_OVERHEAD + (uint64_t)h.batch_length;
    }
    *out_pos = pos;
    return PL_OK;
}

/* ---- writing cleaned batches ------------------------------------------------------ */
#define PL_ATTR_DELETE_HORIZON 0x40

/* A batch whose offsets changed (rebased, or extended over dropped batches) no longer
 * satisfies lastSequence = baseSequence + lastOffsetDelta: unless it is transactional
 * or a control batch (whose producer id the transaction index needs), it loses its
 * producer fields (-1), so rebuilding idempotence state from the headers
 * (broker/producers.py) skips it instead of computing a wrong last sequence. */
static void drop_producer(uint8_t *b)
{
    if (pl_be16(b + PL_OFF_ATTRIBUTES) & (PL_ATTR_TRANSACTIONAL | PL_ATTR_CONTROL))
        return;
    pl_put_be64(b + PL_OFF_PRODUCER_ID, UINT64_MAX);
    pl_put_be16(b + PL_OFF_PRODUCER_EPOCH, 0xffff);
    pl_put_be32(b + PL_OFF_BASE_SEQUENCE, UINT32_MAX);
}

/* Set the pending batch's lastOffsetDelta so it ends just before `next`, then its CRC. */
static int close_pending(pl_compact_writer *w, int64_t next)
{
    uint8_t *b;
    int64_t base, last_delta;
    uint64_t len;

    if (w->pending == UINT64_MAX)
        return PL_OK;
    b = w->out + w->pending;
    base = (int64_t)pl_be64(b + PL_OFF_BASE_OFFSET);
    last_delta = next - 1 - base;
    if (last_delta < (int64_t)pl_be32(b + PL_OFF_RECORDS_COUNT) - 1 || last_delta > INT32_MAX)
        return PL_EINVAL;
    pl_put_be32(b + PL_OFF_LAST_OFFSET_DELTA, (uint32_t)last_delta);
    if (next - 1 != w->pending_last)
        drop_producer(b);
    len = PL_LOG_OVERHEAD + (uint64_t)pl_be32(b + PL_OFF_BATCH_LENGTH);
    pl_put_be32(b + PL_OFF_CRC, pl_crc32c(0, b + PL_OFF_ATTRIBUTES, len - PL_OFF_ATTRIBUTES));
    w->pending = UINT64_MAX;
    return PL_OK;
}

int pl_compact_filter(pl_compact_writer *w, const pl_offset_map *m, const uint8_t *rec,
                      size_t rec_len, const pl_batch_header *h, int keep_all)
{
    const uint8_t *p = rec, *end = rec + rec_len;
    uint8_t *out, *q;
    int64_t base, shift, base_ts, horizon = -1, tombstones = 0;
    int32_t kept = 0;
    int16_t attrs;
    int drop_tombstones, has_horizon, rc;
    rec_view r;

    if (w == NULL || rec == NULL || h == NULL || (!keep_all && m == NULL) ||
        h->records_count < 0 || w->len > w->cap)
        return PL_EINVAL;
    /* worst case: every record grows by 4 (offsetDelta) + 9 (timestampDelta) bytes */
    if (!keep_all && aborted_batch(m, h)) {
        w->dropped += (uint64_t)h->records_count;
        return PL_OK;                                  /* aborted: the whole batch goes */
    }
    if ((uint64_t)PL_BATCH_HEADER_SIZE + rec_len + 14 * (uint64_t)h->records_count >
        w->cap - w->len)
        return PL_EFULL;
    base = w->pending == UINT64_MAX && w->batches == 0 ? w->next_base : h->base_offset;
    if (base > h->base_offset)
        return PL_EINVAL;
    shift = h->base_offset - base;
    has_horizon = (h->attributes & PL_ATTR_DELETE_HORIZON) != 0;
    drop_tombstones = has_horizon && w->now_ms > h->base_timestamp;
    /* First pass: does a tombstone survive (then the batch carries a horizon)? */
    for (int32_t i = 0; i < h->records_count && !keep_all && !drop_tombstones; i++) {
        if ((rc = rec_next(&p, end, &r)))
            return rc;
        if (r.key && r.null_value &&
            h->base_offset + r.off_delta >= pl_offset_map_get(m, r.key, r.key_len))
            tombstones++;
    }
    if (keep_all) {
        horizon = has_horizon ? h->base_timestamp : -1;     /* as it was */
    } else if (tombstones) {
        horizon = has_horizon ? h->base_timestamp
                  : w->delete_retention_ms > INT64_MAX - w->now_ms
                      ? INT64_MAX : w->now_ms + w->delete_retention_ms;
    }
    base_ts = horizon >= 0 ? horizon : h->base_timestamp;
    out = w->out + w->len;
    q = out + PL_BATCH_HEADER_SIZE;
    p = rec;
    for (int32_t i = 0; i < h->records_count; i++) {
        int64_t offset, ts;
        size_t rest_len;
        if ((rc = rec_next(&p, end, &r)))
            return rc;
        offset = h->base_offset + r.off_delta;
        if (r.off_delta < 0 || r.off_delta > h->last_offset_delta)
            return PL_EBADRECORD;
        if (!keep_all) {
            if (r.key == NULL) {
                w->dropped++;                       /* keyless: Kafka drops them too */
                continue;
            }
            if (offset < pl_offset_map_get(m, r.key, r.key_len)) {
                w->dropped++;
                continue;
            }
            if (r.null_value && drop_tombstones) {
                w->tombstones_dropped++;
                continue;
            }
        }
        /* two's-complement arithmetic, as Java's readers do: no signed overflow on
         * hostile (but CRC-valid) timestamps, and base + delta round-trips */
        ts = (int64_t)((uint64_t)h->base_timestamp + (uint64_t)r.ts_delta);
        rest_len = (size_t)(r.end - r.rest);
        {
            uint8_t tmp[24], *t = tmp;
            t = pl_put_varint(t, (int64_t)((uint64_t)ts - (uint64_t)base_ts));
            t = pl_put_varint(t, r.off_delta + shift);
            size_t body_len = 1 + (size_t)(t - tmp) + rest_len;
            q = pl_put_varint(q, (int64_t)body_len);
            *q++ = r.attr;                             /* record attributes (unused) */
            memcpy(q, tmp, (size_t)(t - tmp));
            q += t - tmp;
            memcpy(q, r.rest, rest_len);
            q += rest_len;
        }
        kept++;
        w->kept++;
    }
    if (kept == 0)
        return PL_OK;                                  /* the whole batch is dropped */
    if ((rc = close_pending(w, base)))
        return rc;
    /* header: the original's, with the new base, count, length, attributes */
    attrs = (int16_t)(h->attributes & ~(PL_ATTR_COMPRESSION_MASK | PL_ATTR_DELETE_HORIZON));
    if (horizon >= 0) {
        attrs |= PL_ATTR_DELETE_HORIZON;
        if (w->min_horizon < 0 || horizon < w->min_horizon)
            w->min_horizon = horizon;
    }
    pl_put_be64(out + PL_OFF_BASE_OFFSET, (uint64_t)base);
    pl_put_be32(out + PL_OFF_BATCH_LENGTH, (uint32_t)((uint64_t)(q - out) - PL_LOG_OVERHEAD));
    pl_put_be32(out + PL_OFF_LEADER_EPOCH, 0);
    out[PL_OFF_MAGIC] = PL_MAGIC_V2;
    pl_put_be16(out + PL_OFF_ATTRIBUTES, (uint16_t)attrs);
    pl_put_be32(out + PL_OFF_LAST_OFFSET_DELTA, (uint32_t)(h->last_offset_delta + shift));
    pl_put_be64(out + PL_OFF_BASE_TIMESTAMP, (uint64_t)base_ts);
    pl_put_be64(out + PL_OFF_MAX_TIMESTAMP, (uint64_t)h->max_timestamp);
    pl_put_be64(out + PL_OFF_PRODUCER_ID, (uint64_t)h->producer_id);
    pl_put_be16(out + PL_OFF_PRODUCER_EPOCH, (uint16_t)h->producer_epoch);
    pl_put_be32(out + PL_OFF_BASE_SEQUENCE, (uint32_t)h->base_sequence);
    pl_put_be32(out + PL_OFF_RECORDS_COUNT, (uint32_t)kept);
    if (shift)
        drop_producer(out);
    w->pending_last = h->base_offset + h->last_offset_delta;
    w->pending = w->len;
    w->len += (uint64_t)(q - out);
    w->batches++;
    return PL_OK;
}

int pl_compact_segment(pl_compact_writer *w, const pl_offset_map *m, const uint8_t *buf,
                       uint64_t pos, uint64_t end, int64_t *io_expect, uint64_t *out_pos)
{
    pl_batch_header h;
    int rc;

    if (w == NULL || buf == NULL || io_expect == NULL || out_pos == NULL || pos > end)
        return PL_EINVAL;
    while (pos < end) {
        uint64_t size;
        *out_pos = pos;
        if ((rc = check_batch(buf, pos, end, *io_expect, &h)))
            return rc;
        if (h.attributes & PL_ATTR_COMPRESSION_MASK)
            return PL_ECOMPRESSED;
        size = PL_LOG_OVERHEAD + (uint64_t)h.batch_length;
        rc = pl_compact_filter(w, m, buf + pos + PL_BATCH_HEADER_SIZE,
                               (size_t)(size - PL_BATCH_HEADER_SIZE), &h,
                               (h.attributes & PL_ATTR_CONTROL) != 0);
        if (rc)
            return rc;                        /* PL_EFULL: drain, then resume at *out_pos */
        *io_expect = h.base_offset + h.last_offset_delta + 1;
        pos += size;
    }
    *out_pos = pos;
    return PL_OK;
}

int pl_compact_finish(pl_compact_writer *w, int64_t end_offset)
{
    if (w == NULL)
        return PL_EINVAL;
    return close_pending(w, end_offset);
}

/* The caller has copied out[0, n) away, n = pending (or len when none pending). */
uint64_t pl_compact_drain(pl_compact_writer *w)
{
    uint64_t n;

    if (w == NULL)
        return 0;
    n = w->pending == UINT64_MAX ? w->len : w->pending;
    if (n) {
        memmove(w->out, w->out + n, (size_t)(w->len - n));
        w->len -= n;
        if (w->pending != UINT64_MAX)
            w->pending -= n;
    }
    return n;
}

int pl_compact_check_keys(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                          int *out_keyless)
{
    const uint8_t *p = rec, *end = rec + rec_len;
    rec_view r;
    int rc;

    if (rec == NULL || h == NULL || out_keyless == NULL)
        return PL_EINVAL;
    *out_keyless = 0;
    for (int32_t i = 0; i < h->records_count; i++) {
        if ((rc = rec_next(&p, end, &r)))
            return rc;
        if (r.key == NULL) {
            *out_keyless = 1;
            return PL_OK;
        }
    }
    return PL_OK;
}
