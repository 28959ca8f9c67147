/*
 * verify.c -- read-side verification: never serve a batch whose CRC was not checked.
 *
 * A read checks every batch it decodes or serves (pl_segment_check_batch) unless
 * the bytes are known good: batches this process wrote (or load/recovery checked)
 * start at or after seg->trusted_from; below it, per 64 KiB chunk, the length of
 * the chunk's prefix covered by batches checked since the file was mapped.  So the
 * first read of a sealed segment after a restart pays one CRC-32C pass (~16 GB/s)
 * and every later read of the same bytes costs a comparison.  A prefix (not a bit
 * per chunk) because reads start and end at batch boundaries anywhere in a chunk:
 * a forward scan in spans [p0,p1), [p1,p2), ... extends each chunk's prefix from
 * where the previous span stopped, so no batch is checked twice.
 *
 * Outside the CRC are baseOffset, batchLength, partitionLeaderEpoch and magic: the
 * chain of base offsets (each batch starts where the previous one ended, inside the
 * segment's offsets) covers the first two, magic must be 2, and the epoch must be
 * what pylog writes (0, or -1 from a client that never set it).
 *
 * The prefixes are shared by concurrent lockless readers: they only ever grow
 * (atomic maximum); a reader that misses a fresh value checks again, no harm.
 */
#include "pl_internal.h"

static int is_verified(const pl_segment *seg, uint64_t pos)
{
    uint64_t c = pos / PL_VERIFY_CHUNK;

    if (seg->verified == NULL || c >= seg->verified_chunks)
        return 0;
    return pos - c * PL_VERIFY_CHUNK <
           __atomic_load_n(&seg->verified[c], __ATOMIC_RELAXED);
}

int pl_segment_check_batch(const pl_segment *seg, uint64_t pos, uint64_t next,
                           const pl_batch_header *h, int64_t expect)
{
    int64_t next_offset = __atomic_load_n(&seg->next_offset, __ATOMIC_ACQUIRE);

    if (h->magic != PL_MAGIC_V2)
        return PL_EBADMAGIC;
    if (h->base_offset < seg->base_offset || h->last_offset_delta < 0 ||
        h->base_offset > next_offset - 1 - h->last_offset_delta ||
        (expect >= 0 && h->base_offset != expect))
        return PL_EBADOFFSET;
    if (pos >= seg->trusted_from || is_verified(seg, pos))
        return PL_OK;
    if (h->partition_leader_epoch != 0 && h->partition_leader_epoch != -1)
        return PL_EBADHEADER;
    if (next - pos < PL_BATCH_HEADER_SIZE)
        return PL_ETRUNCATED;
    if (pl_crc32c(0, seg->log.map + pos + PL_OFF_ATTRIBUTES,
                  (size_t)(next - pos - PL_OFF_ATTRIBUTES)) != h->crc)
        return PL_EBADCRC;
    return PL_OK;
}

void pl_segment_mark_verified(const pl_segment *seg, uint64_t pos, uint64_t end)
{
    /* Chunk c's prefix may grow to min(end, trusted_from) - lo when [lo, pos) is
     * already covered (always so for the chunks after pos's own). */
    uint64_t c = pos / PL_VERIFY_CHUNK;

    if (seg->verified == NULL)
        return;
    if (end > seg->trusted_from)
        end = seg->trusted_from;
    for (; c < seg->verified_chunks && c * PL_VERIFY_CHUNK < end; c++) {
        uint64_t lo = c * PL_VERIFY_CHUNK;
        uint32_t want = (uint32_t)((end - lo < PL_VERIFY_CHUNK) ? end - lo : PL_VERIFY_CHUNK);
        uint32_t have = __atomic_load_n(&seg->verified[c], __ATOMIC_RELAXED);

        if (lo < pos && have < pos - lo)
            return;                         /* a gap before pos: nothing to extend */
        while (have < want &&
               !__atomic_compare_exchange_n(&seg->verified[c], &have, want, 1,
                                            __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;                               /* have reloaded: retry while it is less */
    }
}
