/*
 * pl_internal.h -- helpers shared by the C core's files (not part of the API).
 *
 * Big-endian loads/stores for the on-disk fields (Kafka writes everything
 * big-endian) and bounds-checked zig-zag varints (Kafka's ByteUtils): a varint is
 * at most 5 bytes, a varlong at most 10; anything longer, or running past `end`,
 * is malformed.  All readers return 0 on success and -1 on malformed input, never
 * reading at or beyond `end`.
 */
#ifndef PL_INTERNAL_H
#define PL_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "pylog.h"

static inline uint16_t pl_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t pl_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t pl_be64(const uint8_t *p)
{
    return (uint64_t)pl_be32(p) << 32 | pl_be32(p + 4);
}

static inline void pl_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void pl_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void pl_put_be64(uint8_t *p, uint64_t v)
{
    pl_put_be32(p, (uint32_t)(v >> 32));
    pl_put_be32(p + 4, (uint32_t)v);
}

/* Zig-zag varint (<= 5 bytes) into *out. */
static inline int pl_rd_varint(const uint8_t **pp, const uint8_t *end, int32_t *out)
{
    const uint8_t *p = *pp;
    uint32_t v = 0;
    int shift = 0;

    if (p < end && *p < 0x80) {             /* fast path: one byte */
        v = *p++;
    } else if (end - p >= 2 && p[1] < 0x80) {   /* two bytes (lengths 64..8191) */
        v = (uint32_t)(p[0] & 0x7f) | ((uint32_t)p[1] << 7);
        p += 2;
    } else {
        for (;;) {
            uint8_t b;
            if (p >= end)
                return -1;
            b = *p++;
            v |= (uint32_t)(b & 0x7f) << shift;
            if (!(b & 0x80))
                break;
            shift += 7;
            if (shift > 28)
                return -1;
        }
    }
    *out = (int32_t)((v >> 1) ^ (0u - (v & 1)));
    *pp = p;
    return 0;
}

/* Zig-zag varlong (<= 10 bytes) into *out. */
static inline int pl_rd_varlong(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    int shift = 0;

    if (p < end && *p < 0x80) {
        v = *p++;
    } else if (end - p >= 2 && p[1] < 0x80) {
        v = (uint64_t)(p[0] & 0x7f) | ((uint64_t)p[1] << 7);
        p += 2;
    } else {
        for (;;) {
            uint8_t b;
            if (p >= end)
                return -1;
            b = *p++;
            v |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80))
                break;
            shift += 7;
            if (shift > 63)
                return -1;
        }
    }
    *out = (int64_t)((v >> 1) ^ (0ull - (v & 1)));
    *pp = p;
    return 0;
}

static inline size_t pl_uvarint_size(uint64_t v)
{
    /* 7 bits per byte: ceil(significant bits / 7), at least 1 (branch free) */
    return (size_t)((64 - __builtin_clzll(v | 1) + 6) / 7);
}

static inline size_t pl_varint_size(int64_t v)
{
    return pl_uvarint_size(((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static inline uint8_t *pl_put_varint(uint8_t *p, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (u >= 0x80) {
        *p++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    *p++ = (uint8_t)u;
    return p;
}

/* pl_batch_build with the exact size (pl_batch_size_bound) already known. */
int pl_batch_build_sized(uint8_t *out, size_t cap, int64_t base_offset,
                         const pl_records_in *r, uint64_t total, size_t *out_len);

/* For a batch of r whose values come from r->value_ptrs: the bytes of everything
 * but the values (the meta buffer pl_batch_build_vec needs; total is the batch
 * size) and, in *max_iov, the iovec entries it can produce. */
uint64_t pl_batch_vec_meta_size(const pl_records_in *r, uint64_t total, size_t *max_iov);
/* pl_batch_build_sized without copying the values: meta receives the header and
 * every other byte, iov[0..*niov) the batch's pieces in order (runs of meta and
 * the callers' values), CRC computed over them. */
int pl_batch_build_vec(uint8_t *meta, size_t meta_cap, int64_t base_offset,
                       const pl_records_in *r, uint64_t total, struct iovec *iov,
                       size_t *niov);

/* Appends at least this big are written with pwrite (pl_mfile_write) instead of
 * stores through the mapping: the kernel then fills fresh page-cache pages without
 * a page fault (and a zeroing) per 4 KiB, which made mapped appends of new data
 * several times slower than write(2).  Smaller appends use the mapping. */
#define PL_WRITE_MIN ((uint64_t)16 << 10)
/* ...and their values go straight from the caller's buffers to the kernel (pwritev,
 * pl_records_in.value_ptrs) when they average at least this many bytes; smaller
 * ones are copied into the scratch build first (an iovec per value costs more in
 * the kernel than the copy). */
#define PL_VEC_MIN_VALUE 512

/* pwrite len bytes at `at` (within [0, allocated)), retrying short writes and EINTR;
 * the shared mapping sees them at once (one page cache).  errno on failure. */
int pl_mfile_write(pl_mfile *f, uint64_t at, const void *buf, size_t len);
/* Map [from, to) of f's data into the page tables in one call (MADV_POPULATE_READ)
 * instead of a page fault per 4 KiB on first access: data appended with pwrite, or
 * by another process, is in the page cache but not yet mapped here.  Advice only. */
void pl_mfile_prefault(const pl_mfile *f, uint64_t from, uint64_t to);
/* Decodes populate the mapping ahead of them in windows growing from the first to
 * the last size, so a one-record read maps little and a long scan few times. */
#define PL_PREFAULT_FIRST ((uint64_t)64 << 10)
#define PL_PREFAULT_MAX ((uint64_t)4 << 20)

/* pl_mfile_write of iov[0..n) (pwritev, IOV_MAX at a time); iov is consumed. */
int pl_mfile_writev(pl_mfile *f, uint64_t at, struct iovec *iov, size_t n);

static inline uint64_t pl_round_up(uint64_t v, uint64_t to)
{
    return (v + to - 1) / to * to;
}

#endif /* PL_INTERNAL_H */
