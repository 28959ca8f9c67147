/*
 * verify.c -- read-side verification: never serve a batch whose CRC was not checked.
 *
 * A read checks every batch it decodes or serves (pl_segment_check_batch) unless
 * the bytes are known good: batches this process wrote (or load/recovery checked)
 * start at or after seg->trusted_from, and below it a bitmap of 64 KiB chunks
 * remembers where every batch was checked once since the file was mapped.  So the
 * first read of a sealed segment after a restart pays one CRC-32C pass (~16 GB/s)
 * and every later read of the same bytes costs a bit test.
 *
 * Outside the CRC are baseOffset, batchLength, partitionLeaderEpoch and magic: the
 * chain of base offsets (each batch starts where the previous one ended, inside the
 * segment's offsets) covers the first two, magic must be 2, and the epoch must be
 * what pylog writes (0, or -1 from a client that never set it).
 *
 * The bitmap is shared by concurrent lockless readers: bits are only ever set
 * (atomic OR); a reader that misses a fresh bit checks the batch again, no harm.
 */
#include "pl_internal.h"

static int chunk_verified(const pl_segment *seg, uint64_t pos)
{
    uint64_t c = pos / PL_VERIFY_CHUNK;

    if (seg->verified == NULL || c >= seg->verified_bits)
        return 0;
    return (int)((__atomic_load_n(&seg->verified[c / 64], __ATOMIC_RELAXED) >> (c % 64)) & 1);
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
    if (pos >= seg->trusted_from || chunk_verified(seg, pos))
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
    /* Chunk c is done when every batch starting in it was checked or is trusted:
     * it starts at or after pos and ends (clipped to trusted_from) by end. */
    uint64_t c = (pos + PL_VERIFY_CHUNK - 1) / PL_VERIFY_CHUNK;

    if (seg->verified == NULL)
        return;
    for (; c < seg->verified_bits; c++) {
        uint64_t lo = c * PL_VERIFY_CHUNK, hi = lo + PL_VERIFY_CHUNK;
        if (lo >= seg->trusted_from)
            break;
        if (hi > seg->trusted_from)
            hi = seg->trusted_from;
        if (hi > end)
            break;
        __atomic_fetch_or(&seg->verified[c / 64], (uint64_t)1 << (c % 64), __ATOMIC_RELAXED);
    }
}
