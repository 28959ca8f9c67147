/*
 * scan.c -- validate a run of batches in one call (pylog-fsck's first pass).
 *
 * pl_batch_scan walks the batches of a .log buffer from a start position, checking
 * each with pl_batch_validate (length bounds, magic, CRC-32C, recordsCount vs
 * lastOffsetDelta; not deep) and recording its start position, until the end of the
 * buffer, the first invalid batch, or a full output array, and (optionally) copying
 * its 61-byte header so the caller can view all headers as one numpy record array.  It exists so a log of
 * one-record batches verifies at memory speed instead of paying one Python->C call
 * per batch.  Nothing is rebuilt or written; the offset chain and timestamps are
 * checked by the caller over the recorded positions.
 *
 * pl_batch_resync finds where valid batches start again after a corrupt one (the
 * loader's quarantine, DESIGN section 2): cheap tests first (magic byte, length
 * inside the buffer, baseOffset not before the expected one), the CRC last, so a
 * zero-filled or garbage region is skipped at memory speed.
 */
#include "pylog.h"
#include "pl_internal.h"

#include <string.h>

int pl_batch_scan(const uint8_t *buf, uint64_t size, uint64_t start,
                  int64_t *positions, uint8_t *headers, uint64_t cap,
                  uint64_t *out_count, uint64_t *out_pos)
{
    uint64_t pos = start, n = 0;
    int rc = PL_OK;

    if (buf == NULL || positions == NULL || out_count == NULL || out_pos == NULL ||
        start > size)
        return PL_EINVAL;
    while (pos < size) {
        if (n == cap) {
            rc = PL_ENOSPACE_CAP;
            break;
        }
        rc = pl_batch_validate(buf + pos, (size_t)(size - pos), 0, 0, NULL);
        if (rc != PL_OK)
            break;
        if (headers != NULL)
            memcpy(headers + n * PL_BATCH_HEADER_SIZE, buf + pos, PL_BATCH_HEADER_SIZE);
        positions[n++] = (int64_t)pos;
        /* validate checked 12 + batchLength <= size - pos, so this stays in bounds */
        pos += PL_LOG_OVERHEAD + (uint64_t)pl_be32(buf + pos + PL_OFF_BATCH_LENGTH);
    }
    *out_count = n;
    *out_pos = pos;
    return rc;
}

int pl_batch_resync(const uint8_t *buf, uint64_t size, uint64_t start, uint64_t stop,
                    int64_t min_base, uint64_t *out_pos)
{
    if (buf == NULL || out_pos == NULL || start > size || stop > size)
        return PL_EINVAL;
    for (uint64_t p = start; p < stop && p + PL_BATCH_HEADER_SIZE <= size; p++) {
        int32_t blen;
        if (buf[p + PL_OFF_MAGIC] != PL_MAGIC_V2)
            continue;
        blen = (int32_t)pl_be32(buf + p + PL_OFF_BATCH_LENGTH);
        if (blen < PL_MIN_BATCH_LENGTH || (uint64_t)blen > size - p - PL_LOG_OVERHEAD)
            continue;
        if ((int64_t)pl_be64(buf + p) < min_base)
            continue;
        if (pl_batch_validate(buf + p, (size_t)(size - p), 0, 0, NULL) == PL_OK) {
            *out_pos = p;
            return PL_OK;
        }
    }
    return PL_ENOTFOUND;
}

int pl_index_rule(const int64_t *positions, uint64_t n, uint32_t interval,
                  int64_t *selected, uint64_t *out_count)
{
    uint64_t r = 0, k = 0;

    if ((positions == NULL && n > 0) || selected == NULL || out_count == NULL)
        return PL_EINVAL;
    for (uint64_t i = 1; i < n; i++) {
        if (positions[i] - positions[r] > (int64_t)interval) {
            selected[k++] = (int64_t)i;
            r = i;
        }
    }
    *out_count = k;
    return PL_OK;
}
