/*
 * index.c -- the sparse offset index (.index), Kafka's OffsetIndex.
 *
 * Entry, 8 bytes, big-endian:
 *   off  size  field
 *     0     4  relativeOffset   (offset - segment baseOffset, u32)
 *     4     4  physicalPosition (byte position of a batch start in .log, u32)
 *
 * An entry pairs the LAST offset of a batch with the START position of that batch;
 * one is written after more than index.interval.bytes have been appended since the
 * previous one (segment.c decides when).  Entries are strictly increasing in both
 * fields.  Search rule: the greatest entry whose offset <= target, then walk the
 * batches forward from its position; with no such entry, walk from position 0.
 * Rebuildable: a cache of .log, rebuilt by pl_segment_recover.
 * Capacity: idx->limit bytes (segment.index.bytes rounded down to 8); appending to
 * a full index is PL_EFULL (the caller rolls the segment).
 */
#include "pl_internal.h"

#define ENTRY PL_INDEX_ENTRY_SIZE

static inline uint64_t entries_of(const pl_mfile *idx)
{
    return idx->size / ENTRY;
}

int pl_index_append(pl_mfile *idx, int64_t base_offset, int64_t offset, uint64_t pos)
{
    uint64_t n = entries_of(idx), at = n * ENTRY;
    int64_t rel = offset - base_offset;
    int rc;

    if (rel < 0 || rel > INT32_MAX || pos > UINT32_MAX)
        return PL_EINVAL;
    if (n > 0) {
        const uint8_t *last = idx->map + at - ENTRY;
        if ((uint64_t)rel <= pl_be32(last) || pos <= pl_be32(last + 4))
            return PL_EINVAL;
    }
    if (at + ENTRY > idx->limit)
        return PL_EFULL;
    rc = pl_mfile_ensure(idx, at + ENTRY);
    if (rc != PL_OK)
        return rc;
    pl_put_be32(idx->map + at, (uint32_t)rel);
    pl_put_be32(idx->map + at + 4, (uint32_t)pos);
    __atomic_store_n(&idx->size, at + ENTRY, __ATOMIC_RELEASE);   /* entry first */
    return PL_OK;
}

int pl_index_lookup(const pl_mfile *idx, int64_t base_offset, int64_t target,
                    int64_t *out_offset, uint64_t *out_pos)
{
    uint64_t lo = 0, hi = entries_of(idx);   /* answer: last entry in [0, lo) */
    int64_t rel = target - base_offset;

    *out_offset = base_offset;
    *out_pos = 0;
    if (rel < 0 || hi == 0)
        return PL_OK;
    while (lo < hi) {                        /* first entry with relativeOffset > rel */
        uint64_t mid = lo + (hi - lo) / 2;
        if ((int64_t)pl_be32(idx->map + mid * ENTRY) <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0) {
        const uint8_t *e = idx->map + (lo - 1) * ENTRY;
        *out_offset = base_offset + (int64_t)pl_be32(e);
        *out_pos = pl_be32(e + 4);
    }
    return PL_OK;
}

/* Walk the log's batch headers from *pos (a batch start) to the first batch
 * starting at or after target_pos.  0 with *pos and *base set, -1 on a bad header. */
static int walk_to(const pl_mfile *log, uint64_t *pos, uint64_t target_pos, int64_t *base)
{
    while (*pos < target_pos) {
        uint64_t len;
        if (log->size - *pos < PL_BATCH_HEADER_SIZE)
            return -1;
        len = pl_be32(log->map + *pos + PL_OFF_BATCH_LENGTH);
        if (len < PL_MIN_BATCH_LENGTH || len > INT32_MAX ||
            PL_LOG_OVERHEAD + len > log->size - *pos)
            return -1;
        *pos += PL_LOG_OVERHEAD + len;
    }
    if (*pos < log->size && log->size - *pos >= PL_BATCH_HEADER_SIZE)
        *base = (int64_t)pl_be64(log->map + *pos);
    return 0;
}

int pl_index_check(const pl_mfile *idx, int64_t base_offset, int64_t next_offset,
                   const pl_mfile *log, int64_t *bad_entry)
{
    uint64_t n = entries_of(idx), i, walk = 0;
    uint32_t prev_rel = 0, prev_pos = 0;

    *bad_entry = -1;
    if (idx->size % ENTRY) {
        *bad_entry = (int64_t)n;
        return PL_EBADOFFSET;
    }
    for (i = 0; i < n; i++) {
        const uint8_t *e = idx->map + i * ENTRY;
        uint32_t rel = pl_be32(e), pos = pl_be32(e + 4);
        int64_t batch_base = INT64_MAX;
        if ((i > 0 && (rel <= prev_rel || pos <= prev_pos)) ||
            base_offset + (int64_t)rel >= next_offset)
            goto bad;
        if (log != NULL) {
            if (pos >= log->size || walk_to(log, &walk, pos, &batch_base) ||
                walk != pos || batch_base > base_offset + (int64_t)rel)
                goto bad;
        }
        prev_rel = rel;
        prev_pos = pos;
    }
    return PL_OK;
bad:
    *bad_entry = (int64_t)i;
    return PL_EBADOFFSET;
}

int pl_index_truncate_entries(pl_mfile *idx, uint64_t entries)
{
    if (entries * ENTRY >= idx->size && idx->size % ENTRY == 0)
        return PL_OK;
    if (entries * ENTRY > idx->size)
        entries = idx->size / ENTRY;
    return pl_mfile_truncate(idx, entries * ENTRY);
}
