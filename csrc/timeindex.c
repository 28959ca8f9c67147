/*
 * timeindex.c -- the sparse time index (.timeindex), Kafka's TimeIndex.
 *
 * Entry, 12 bytes, big-endian:
 *   off  size  field
 *     0     8  timestamp        (i64, ms: the segment's max timestamp so far)
 *     8     4  relativeOffset   (u32: last offset of the batch that first held it)
 *
 * Timestamps strictly increase, relative offsets never decrease.  segment.c adds
 * an entry together with each offset-index entry when the max timestamp so far
 * grew past the last entry, and forces a final one at seal and after recovery.
 * Search rule: the greatest entry whose timestamp <= target (none: timestamp -1,
 * baseOffset).  Every batch before the entry's batch has maxTimestamp < the
 * entry's timestamp, so a search for the first batch with maxTimestamp >= t may
 * start at the entry's batch.  Rebuildable: a cache of .log.
 * Capacity: ti->limit bytes; segment.c keeps one entry spare for the final entry.
 */
#include "pl_internal.h"

#define ENTRY PL_TIMEINDEX_ENTRY_SIZE

static inline uint64_t entries_of(const pl_mfile *ti)
{
    return ti->size / ENTRY;
}

int pl_timeindex_append(pl_mfile *ti, int64_t base_offset, int64_t timestamp,
                        int64_t offset)
{
    uint64_t n = entries_of(ti), at = n * ENTRY;
    int64_t rel = offset - base_offset;
    int rc;

    if (rel < 0 || rel > INT32_MAX)
        return PL_EINVAL;
    if (n > 0) {
        const uint8_t *last = ti->map + at - ENTRY;
        if (timestamp <= (int64_t)pl_be64(last) || (uint64_t)rel < pl_be32(last + 8))
            return PL_EINVAL;
    }
    if (at + ENTRY > ti->limit)
        return PL_EFULL;
    rc = pl_mfile_ensure(ti, at + ENTRY);
    if (rc != PL_OK)
        return rc;
    pl_put_be64(ti->map + at, (uint64_t)timestamp);
    pl_put_be32(ti->map + at + 8, (uint32_t)rel);
    __atomic_store_n(&ti->size, at + ENTRY, __ATOMIC_RELEASE);   /* entry first */
    return PL_OK;
}

int pl_timeindex_lookup(const pl_mfile *ti, int64_t base_offset, int64_t target,
                        int64_t *out_timestamp, int64_t *out_offset)
{
    uint64_t lo = 0, hi = entries_of(ti);

    *out_timestamp = -1;
    *out_offset = base_offset;
    while (lo < hi) {                       /* first entry with timestamp > target */
        uint64_t mid = lo + (hi - lo) / 2;
        if ((int64_t)pl_be64(ti->map + mid * ENTRY) <= target)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0) {
        const uint8_t *e = ti->map + (lo - 1) * ENTRY;
        *out_timestamp = (int64_t)pl_be64(e);
        *out_offset = base_offset + (int64_t)pl_be32(e + 8);
    }
    return PL_OK;
}

int pl_timeindex_check(const pl_mfile *ti, int64_t base_offset, int64_t next_offset,
                       int64_t *bad_entry)
{
    uint64_t n = entries_of(ti), i;
    int64_t prev_ts = INT64_MIN;
    uint32_t prev_rel = 0;

    *bad_entry = -1;
    if (ti->size % ENTRY) {
        *bad_entry = (int64_t)n;
        return PL_EBADOFFSET;
    }
    for (i = 0; i < n; i++) {
        const uint8_t *e = ti->map + i * ENTRY;
        int64_t ts = (int64_t)pl_be64(e);
        uint32_t rel = pl_be32(e + 8);
        if ((i > 0 && (ts <= prev_ts || rel < prev_rel)) ||
            base_offset + (int64_t)rel >= next_offset) {
            *bad_entry = (int64_t)i;
            return PL_EBADOFFSET;
        }
        prev_ts = ts;
        prev_rel = rel;
    }
    return PL_OK;
}

int pl_timeindex_truncate_entries(pl_mfile *ti, uint64_t entries)
{
    if (entries * ENTRY >= ti->size && ti->size % ENTRY == 0)
        return PL_OK;
    if (entries * ENTRY > ti->size)
        entries = ti->size / ENTRY;
    return pl_mfile_truncate(ti, entries * ENTRY);
}
