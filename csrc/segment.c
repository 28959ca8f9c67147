/*
 * segment.c -- one log segment: <base>.log with its .index and .timeindex.
 *
 * The .log is authoritative: whole RecordBatch v2 batches, back to back, the first
 * with baseOffset == the segment's base offset and each next one starting at the
 * previous batch's last offset + 1.  The indexes are caches rebuilt from it.
 *
 * Index rule (Kafka's LogSegment.append, applied per batch, identical in append,
 * recover and load): before placing a batch at position p, if more than
 * index.interval.bytes were appended since the last entry (a counter that starts
 * at 0, so a segment's first batch gets none), add the offset entry (batch last
 * offset, p) and a time entry (max timestamp so far, last offset of the batch that
 * first reached it) if that timestamp grew past the last time entry; reset the
 * counter; then add the batch size to it.  Seal and recovery force a final time
 * entry for the segment's max timestamp.
 *
 * Roll signals (the caller rolls and retries): PL_EFULL when the log would pass
 * segment.bytes, an index is full, or the offset delta would pass INT32_MAX; an
 * empty segment takes one batch up to its reservation, or says PL_ETOOLARGE.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "pl_internal.h"

#define INDEX_GROW_CHUNK (64u * 1024u)

const char *pl_strerror(int code)
{
    switch (code) {
    case PL_OK:           return "ok";
    case PL_ETRUNCATED:   return "batch truncated (the buffer ends inside it)";
    case PL_EBADLEN:      return "batch length out of bounds";
    case PL_EBADMAGIC:    return "batch magic is not 2";
    case PL_EBADCRC:      return "batch CRC-32C mismatch";
    case PL_EBADOFFSET:   return "batch offsets inconsistent";
    case PL_EBADRECORD:   return "malformed record in batch";
    case PL_ETOOLARGE:    return "batch too large";
    case PL_EFULL:        return "segment or index full";
    case PL_EINVAL:       return "invalid argument";
    case PL_ERANGE:       return "offset or position out of range";
    case PL_ENOTFOUND:    return "not found";
    case PL_ECOMPRESSED:  return "compressed batch";
    case PL_ECLOSED:      return "segment sealed or closed";
    case PL_ENOSPACE_CAP: return "output columns full";
    case PL_ECONTROL:     return "control batch from a client";
    case PL_EROLL:        return "segment.ms elapsed: roll before appending";
    case PL_EBADHEADER:   return "batch partitionLeaderEpoch is not one pylog writes";
    case PL_EMSGID:       return "a record carries a pylog-msg-id header";
    case PL_ETXN:         return "a batch is transactional";
    default:              return code > 0 ? "system error (errno)" : "unknown status";
    }
}

/* ---- helpers ------------------------------------------------------------------- */

static uint64_t index_cap(const pl_segment *seg)
{
    return seg->cfg.index_bytes / PL_INDEX_ENTRY_SIZE;
}

/* Normal time entries; one more slot is kept for the final entry at seal. */
static uint64_t timeindex_cap(const pl_segment *seg)
{
    return seg->cfg.index_bytes / PL_TIMEINDEX_ENTRY_SIZE;
}

static int timeindex_last(const pl_segment *seg, int64_t *ts)
{
    uint64_t n = seg->timeindex.size / PL_TIMEINDEX_ENTRY_SIZE;
    *ts = -1;
    if (n == 0)
        return 0;
    *ts = (int64_t)pl_be64(seg->timeindex.map + (n - 1) * PL_TIMEINDEX_ENTRY_SIZE);
    return 1;
}

/* Time entry for the max timestamp so far if it grew past the last entry. */
static int timeindex_maybe_append(pl_segment *seg)
{
    int64_t last;
    timeindex_last(seg, &last);
    if (seg->max_timestamp <= last)
        return PL_OK;
    return pl_timeindex_append(&seg->timeindex, seg->base_offset, seg->max_timestamp,
                               seg->offset_of_max_timestamp);
}

/* Account for one batch placed at pos (the index rule above).  Index errors are
 * not fatal here: callers checked capacity and ensured space first, and a missing
 * entry only makes lookups walk further. */
static void track_batch(pl_segment *seg, uint64_t pos, int64_t last_offset,
                        int64_t max_ts, uint64_t batch_bytes)
{
    if (pos == 0)
        seg->first_batch_timestamp = max_ts;
    if (max_ts > seg->max_timestamp) {
        seg->max_timestamp = max_ts;
        seg->offset_of_max_timestamp = last_offset;
    }
    if (seg->bytes_since_index > seg->cfg.index_interval_bytes) {
        if (seg->index.size / PL_INDEX_ENTRY_SIZE < index_cap(seg))
            (void)pl_index_append(&seg->index, seg->base_offset, last_offset, pos);
        if (seg->timeindex.size / PL_TIMEINDEX_ENTRY_SIZE < timeindex_cap(seg))
            (void)timeindex_maybe_append(seg);
        seg->bytes_since_index = 0;
    }
    seg->bytes_since_index += batch_bytes;
}

static int check_cfg(const pl_segment_config *cfg)
{
    if (cfg == NULL || cfg->segment_bytes < PL_BATCH_HEADER_SIZE ||
        cfg->segment_bytes > INT32_MAX || cfg->index_bytes < PL_INDEX_ENTRY_SIZE ||
        cfg->index_bytes > INT32_MAX)
        return PL_EINVAL;
    return PL_OK;
}

static void release(pl_mfile *f)
{
    pl_mfile_close(f);
    pl_io_unmap(f->map, f->reserved);
    f->map = NULL;
    f->reserved = 0;
}

/* Open the three files; on failure nothing stays open or mapped (and files this
 * call created with PL_MF_EXCL are removed). */
static int open_files(pl_segment *seg, const char *paths[3], int create, int writable)
{
    const pl_segment_config *cfg = &seg->cfg;
    uint64_t ilimit = index_cap(seg) * PL_INDEX_ENTRY_SIZE;
    uint64_t tlimit = (timeindex_cap(seg) + 1) * PL_TIMEINDEX_ENTRY_SIZE;
    int log_create = create == PL_MF_EXCL ? PL_MF_EXCL : PL_MF_EXISTING;
    int rc;

    rc = pl_mfile_open(&seg->log, paths[0], log_create, writable, cfg->segment_bytes,
                       cfg->grow_chunk);
    if (rc != PL_OK)
        return rc;
    rc = pl_mfile_open(&seg->index, paths[1], create, writable, ilimit, INDEX_GROW_CHUNK);
    if (rc != PL_OK)
        goto fail_log;
    rc = pl_mfile_open(&seg->timeindex, paths[2], create, writable, tlimit, INDEX_GROW_CHUNK);
    if (rc != PL_OK)
        goto fail_index;
    if (writable) {
        seg->index.limit = ilimit;
        seg->timeindex.limit = tlimit;
    }
    return PL_OK;
fail_index:
    release(&seg->index);
    if (create == PL_MF_EXCL)
        unlink(paths[1]);
fail_log:
    release(&seg->log);
    if (create == PL_MF_EXCL)
        unlink(paths[0]);
    return rc;
}

static void init_state(pl_segment *seg, int64_t base_offset, const pl_segment_config *cfg)
{
    seg->cfg = *cfg;
    seg->base_offset = base_offset;
    seg->next_offset = base_offset;
    seg->max_timestamp = -1;
    seg->offset_of_max_timestamp = -1;
    seg->first_batch_timestamp = -1;
    seg->bytes_since_index = 0;
    seg->active = 0;
}

/* The segment's build buffer, at least n bytes (kept between appends so its pages
 * stay warm: a fresh malloc of that size is a fresh mmap, a fault per page). */
static uint8_t *scratch_for(pl_segment *seg, uint64_t n)
{
    if (n > seg->scratch_cap) {
        free(seg->scratch);
        seg->scratch = malloc((size_t)n);
        seg->scratch_cap = seg->scratch ? n : 0;
    }
    return seg->scratch;
}

static void scratch_free(pl_segment *seg)
{
    free(seg->scratch);
    seg->scratch = NULL;
    seg->scratch_cap = 0;
}

int pl_segment_create(pl_segment *seg, const char *log_path, const char *index_path,
                      const char *timeindex_path, int64_t base_offset,
                      const pl_segment_config *cfg)
{
    const char *paths[3] = {log_path, index_path, timeindex_path};
    int rc;

    if (seg == NULL || !log_path || !index_path || !timeindex_path || base_offset < 0 ||
        check_cfg(cfg))
        return PL_EINVAL;
    init_state(seg, base_offset, cfg);
    seg->scratch = NULL;
    seg->scratch_cap = 0;
    rc = open_files(seg, paths, PL_MF_EXCL, 1);
    seg->trusted_from = 0;                  /* everything in it will be ours */
    seg->verified = NULL;
    seg->verified_chunks = 0;
    if (rc == PL_OK)
        seg->active = 1;
    return rc;
}

int pl_segment_open(pl_segment *seg, const char *log_path, const char *index_path,
                    const char *timeindex_path, int64_t base_offset,
                    const pl_segment_config *cfg, int mode)
{
    const char *paths[3] = {log_path, index_path, timeindex_path};
    int rc;

    if (seg == NULL || !log_path || !index_path || !timeindex_path || base_offset < 0 ||
        check_cfg(cfg) || (mode != PL_OPEN_ACTIVE && mode != PL_OPEN_SEALED))
        return PL_EINVAL;
    init_state(seg, base_offset, cfg);
    seg->scratch = NULL;
    seg->scratch_cap = 0;
    rc = open_files(seg, paths, PL_MF_CREATE, mode == PL_OPEN_ACTIVE);
    seg->trusted_from = rc == PL_OK ? seg->log.size : 0;   /* nothing checked yet */
    seg->verified = NULL;
    seg->verified_chunks = 0;
    if (rc == PL_OK)
        seg->active = mode == PL_OPEN_ACTIVE;
    return rc;
}

int pl_segment_batch_at(const pl_segment *seg, uint64_t pos, pl_batch_header *h,
                        uint64_t *out_next)
{
    const pl_mfile *log = &seg->log;
    uint64_t len;

    if (pos >= log->size)
        return PL_ERANGE;
    if (log->size - pos < PL_BATCH_HEADER_SIZE)
        return PL_ETRUNCATED;
    pl_batch_read_header(log->map + pos, PL_BATCH_HEADER_SIZE, h);
    if (h->batch_length < PL_MIN_BATCH_LENGTH)
        return PL_EBADLEN;
    len = PL_LOG_OVERHEAD + (uint64_t)h->batch_length;
    if (len > log->size - pos)
        return PL_ETRUNCATED;
    *out_next = pos + len;
    return PL_OK;
}

/* ---- load after a clean shutdown ----------------------------------------------- */

/* First pass: walk (with CRC) from the last offset-index entry to the end of the
 * log, checking the offset chain.  Second pass: check both indexes against the
 * next offset found.  Anything odd is PL_EBADOFFSET: the caller recovers. */
int pl_segment_load_clean(pl_segment *seg)
{
    uint64_t n = seg->index.size / PL_INDEX_ENTRY_SIZE, pos = 0, size = seg->log.size;
    int64_t entry_offset = seg->base_offset, expect = seg->base_offset, bad, ts;
    int64_t max_ts = -1, max_off = -1, first_ts = -1;
    pl_batch_header h;
    int first = 1;

    if (n > 0) {
        const uint8_t *e = seg->index.map + (n - 1) * PL_INDEX_ENTRY_SIZE;
        entry_offset = seg->base_offset + pl_be32(e);
        pos = pl_be32(e + 4);
        if (pos >= size)
            return PL_EBADOFFSET;
    }
    while (pos < size) {
        int64_t last;
        if (pl_batch_validate(seg->log.map + pos, size - pos, 0, 0, &h) != PL_OK ||
            (h.partition_leader_epoch != 0 && h.partition_leader_epoch != -1))
            return PL_EBADOFFSET;           /* recovery restamps a bad epoch */
        last = h.base_offset + h.last_offset_delta;
        if (first && n > 0 ? h.base_offset > entry_offset || h.base_offset < expect
                           : h.base_offset != expect)
            return PL_EBADOFFSET;
        first = 0;
        if (last - seg->base_offset > INT32_MAX)
            return PL_EBADOFFSET;
        if (h.max_timestamp > max_ts) {
            max_ts = h.max_timestamp;
            max_off = last;
        }
        expect = last + 1;
        pos += PL_LOG_OVERHEAD + (uint64_t)h.batch_length;
    }
    if (pl_index_check(&seg->index, seg->base_offset, expect, NULL, &bad) ||
        pl_timeindex_check(&seg->timeindex, seg->base_offset, expect, &bad))
        return PL_EBADOFFSET;
    if (size > 0) {
        if (pl_batch_read_header(seg->log.map, size, &h) != PL_OK)
            return PL_EBADOFFSET;
        first_ts = h.max_timestamp;
    }
    if (timeindex_last(seg, &ts)) {
        const uint8_t *e = seg->timeindex.map + seg->timeindex.size - PL_TIMEINDEX_ENTRY_SIZE;
        if (ts >= max_ts) {
            max_ts = ts;
            max_off = seg->base_offset + pl_be32(e + 8);
        }
    } else if (n > 0 && first_ts >= 0) {
        return PL_EBADOFFSET;   /* timestamps exist but no time entry: not sealed */
    }
    seg->next_offset = expect;
    seg->max_timestamp = max_ts;
    seg->offset_of_max_timestamp = max_off;
    seg->first_batch_timestamp = first_ts;
    seg->bytes_since_index = n > 0 ? size - pl_be32(seg->index.map + (n - 1) * 8 + 4) : size;
    seg->trusted_from = n > 0 ? pl_be32(seg->index.map + (n - 1) * 8 + 4) : 0;  /* walked */
    return PL_OK;
}

/* ---- recovery ------------------------------------------------------------------ */

/* End of the last non-zero byte in map[from, to), or from if all are zero.  The
 * preallocated tail after a crash is mostly zeros (up to a whole grow_chunk), so this
 * steps back 64 bytes at a time and looks at single bytes only near data. */
static uint64_t last_nonzero_end(const uint8_t *map, uint64_t from, uint64_t to)
{
    while (to > from && (to & 7) != 0 && map[to - 1] == 0)
        to--;
    while (to - from >= 64 && (to & 7) == 0) {
        uint64_t w[8];
        memcpy(w, map + to - 64, sizeof(w));
        if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0)
            break;
        to -= 64;
    }
    while (to > from && map[to - 1] == 0)
        to--;
    return to;
}

int pl_segment_recover_scan(pl_segment *seg, pl_recover_report *rep)
{
    uint64_t end, pos = 0;
    int rc, stop = PL_OK;
    pl_batch_header h;

    if (seg == NULL || rep == NULL)
        return PL_EINVAL;
    if (!seg->active || !seg->log.writable)
        return PL_ECLOSED;
    memset(rep, 0, sizeof(*rep));
    end = seg->log.allocated;
    seg->log.size = end;
    init_state(seg, seg->base_offset, &seg->cfg);
    seg->active = 1;
    if ((rc = pl_index_truncate_entries(&seg->index, 0)) != PL_OK ||
        (rc = pl_timeindex_truncate_entries(&seg->timeindex, 0)) != PL_OK)
        return rc;
    /* First pass: validate batches and rebuild the indexes on the way. */
    while (pos < end) {
        int64_t last;
        stop = pl_batch_validate(seg->log.map + pos, end - pos, 0, 0, &h);
        if (stop == PL_OK && h.base_offset != seg->next_offset)
            stop = PL_EBADOFFSET;
        if (stop != PL_OK)
            break;
        if (h.partition_leader_epoch != 0 && h.partition_leader_epoch != -1) {
            /* outside the CRC and meaningless on one node: a flipped bit there is
             * repaired, not a reason to drop the batch (fsck --repair does the same) */
            memset(seg->log.map + pos + PL_OFF_LEADER_EPOCH, 0, 4);
            rep->restamped_epochs++;
        }
        last = h.base_offset + h.last_offset_delta;
        if (last - seg->base_offset > INT32_MAX) {
            stop = PL_EBADOFFSET;
            break;
        }
        if ((rc = pl_mfile_ensure(&seg->index, seg->index.size + PL_INDEX_ENTRY_SIZE)) > 0 ||
            (rc = pl_mfile_ensure(&seg->timeindex,
                                  seg->timeindex.size + PL_TIMEINDEX_ENTRY_SIZE)) > 0)
            return rc;
        track_batch(seg, pos, last, h.max_timestamp, PL_LOG_OVERHEAD + (uint64_t)h.batch_length);
        seg->next_offset = last + 1;
        pos += PL_LOG_OVERHEAD + (uint64_t)h.batch_length;
        rep->batches++;
    }
    /* Second pass: report, then cut the log at the valid prefix (zero + sync). */
    seg->trusted_from = 0;                  /* every batch kept was just validated */
    rep->valid_bytes = pos;
    rep->truncated_bytes = end - pos;
    rep->stop_position = pos;
    rep->next_offset = seg->next_offset;
    rep->dropped_data_bytes = last_nonzero_end(seg->log.map, pos, end) - pos;
    rep->stop_reason = rep->dropped_data_bytes ? stop : PL_OK;
    return PL_OK;
}

int pl_segment_recover_cut(pl_segment *seg, const pl_recover_report *rep)
{
    int rc;

    if (seg == NULL || rep == NULL)
        return PL_EINVAL;
    if (!seg->active || !seg->log.writable)
        return PL_ECLOSED;
    if ((rc = pl_mfile_truncate(&seg->log, rep->valid_bytes)) != PL_OK)
        return rc;
    if ((rc = timeindex_maybe_append(seg)) != PL_OK && rc != PL_EFULL)
        return rc;
    if ((rc = pl_mfile_sync(&seg->index)) != PL_OK)
        return rc;
    return pl_mfile_sync(&seg->timeindex);
}

int pl_segment_recover(pl_segment *seg, pl_recover_report *rep)
{
    int rc = pl_segment_recover_scan(seg, rep);

    return rc != PL_OK ? rc : pl_segment_recover_cut(seg, rep);
}

/* ---- append -------------------------------------------------------------------- */

/* Make appended batches visible: the bytes (and index entries) were stored first,
 * then the size, then next_offset, each with release order, so a reader that sees
 * an offset below next_offset also sees its bytes below size. */
static void publish(pl_segment *seg, uint64_t size, int64_t next_offset)
{
    __atomic_store_n(&seg->log.size, size, __ATOMIC_RELEASE);
    __atomic_store_n(&seg->next_offset, next_offset, __ATOMIC_RELEASE);
}

/* Would `batches` more batches (sizes from `sizes`, or one batch of `one` bytes)
 * fit: segment bytes, offset delta and index capacity.  Then make sure the space
 * exists (fallocate), so the copy that follows cannot fail half way. */
static int reserve_append(pl_segment *seg, uint64_t total, uint64_t records,
                          uint64_t index_entries)
{
    int empty = seg->log.size == 0, rc;
    uint64_t ni = seg->index.size / PL_INDEX_ENTRY_SIZE;
    uint64_t nt = seg->timeindex.size / PL_TIMEINDEX_ENTRY_SIZE;
    int64_t last = seg->next_offset + (int64_t)records - 1;

    if (!seg->active || !seg->log.writable)
        return PL_ECLOSED;
    if (empty ? total > seg->log.reserved : seg->log.size + total > seg->cfg.segment_bytes)
        return empty ? PL_ETOOLARGE : PL_EFULL;
    if (last - seg->base_offset > INT32_MAX ||
        ni + index_entries > index_cap(seg) || nt + index_entries > timeindex_cap(seg))
        return empty ? PL_ETOOLARGE : PL_EFULL;
    if ((rc = pl_mfile_ensure(&seg->log, seg->log.size + total)) != PL_OK)
        return rc;
    if (index_entries == 0)
        return PL_OK;
    if ((rc = pl_mfile_ensure(&seg->index, (ni + index_entries) * PL_INDEX_ENTRY_SIZE)))
        return rc;
    return pl_mfile_ensure(&seg->timeindex, (nt + index_entries) * PL_TIMEINDEX_ENTRY_SIZE);
}

int pl_segment_append(pl_segment *seg, const uint8_t *buf, size_t len,
                      int64_t *out_base, int64_t *out_last)
{
    return pl_segment_append_at(seg, buf, len, -1, out_base, out_last);
}

int pl_segment_append_at(pl_segment *seg, const uint8_t *buf, size_t len,
                         int64_t log_append_time, int64_t *out_base, int64_t *out_last)
{
    return pl_segment_append_flags(seg, buf, len, log_append_time, 0, out_base, out_last);
}

int pl_segment_append_flags(pl_segment *seg, const uint8_t *buf, size_t len,
                            int64_t log_append_time, int flags, int64_t *out_base,
                            int64_t *out_last)
{
    uint64_t pos = 0, records = 0, entries = 0, since = seg->bytes_since_index, at;
    int64_t next;
    pl_batch_header h;
    int rc, deep = (flags & PL_APPEND_MSG_IDS) ? PL_DEEP_MSG_IDS : 1, ids = 0;
    uint16_t attributes = 0;

    if (buf == NULL || len == 0)
        return PL_EINVAL;
    /* First pass: validate every batch and count offsets and index entries. */
    while (pos < len) {
        uint64_t n;
        rc = pl_batch_validate(buf + pos, len - pos, seg->cfg.max_batch_bytes, deep, &h);
        if (rc == PL_EMSGID) {
            ids = 1;                       /* valid: go on validating the rest */
            rc = PL_OK;
        }
        if (rc != PL_OK)
            return rc;
        if (h.last_offset_delta != h.records_count - 1)
            return PL_EBADOFFSET;
        if ((h.attributes & PL_ATTR_CONTROL) && !(flags & PL_APPEND_CONTROL))
            return PL_ECONTROL;
        attributes |= (uint16_t)h.attributes;
        n = PL_LOG_OVERHEAD + (uint64_t)h.batch_length;
        if (since > seg->cfg.index_interval_bytes) {
            entries++;
            since = 0;
        }
        since += n;
        records += (uint64_t)h.records_count;
        pos += n;
    }
    if (ids)
        return PL_EMSGID;
    if ((flags & PL_APPEND_NO_TXN) && (attributes & PL_ATTR_TRANSACTIONAL))
        return PL_ETXN;
    if ((rc = reserve_append(seg, len, records, entries)) != PL_OK)
        return rc;
    /* Second pass: copy, stamp, index; then publish size before next_offset. */
    at = seg->log.size;
    next = seg->next_offset;
    if (len >= PL_WRITE_MIN) {
        if ((rc = pl_mfile_write(&seg->log, at, buf, len)) != PL_OK)
            return rc;                    /* past size: not published, overwritten next */
    } else {
        memcpy(seg->log.map + at, buf, len);
    }
    for (pos = 0; pos < len;) {
        uint8_t *b = seg->log.map + at + pos;
        int64_t last;
        if (log_append_time >= 0)
            pl_batch_set_log_append_time(b, PL_LOG_OVERHEAD + pl_be32(b + PL_OFF_BATCH_LENGTH),
                                         log_append_time);
        pl_batch_read_header(b, PL_BATCH_HEADER_SIZE, &h);
        pl_batch_stamp(b, next, 0);
        last = next + h.last_offset_delta;
        track_batch(seg, at + pos, last, h.max_timestamp,
                    PL_LOG_OVERHEAD + (uint64_t)h.batch_length);
        next = last + 1;
        pos += PL_LOG_OVERHEAD + (uint64_t)h.batch_length;
    }
    *out_base = seg->next_offset;
    *out_last = next - 1;
    seg->append_attributes = attributes;
    publish(seg, at + len, next);
    return PL_OK;
}

/* Whether a big batch of r should reference its values (pwritev from the caller's
 * buffers) rather than copy them: given value_ptrs, and values of PL_VEC_MIN_VALUE
 * bytes or more on average.  OUT: the meta size and iovec count it needs. */
static int values_by_reference(const pl_records_in *r, uint64_t total, uint64_t *meta,
                               size_t *max_iov)
{
    if (r->value_ptrs == NULL)
        return 0;
    *meta = pl_batch_vec_meta_size(r, total, max_iov);
    return *meta < total && total - *meta >= (uint64_t)(*max_iov / 2) * PL_VEC_MIN_VALUE;
}

int pl_segment_append_records(pl_segment *seg, const pl_records_in *r, int64_t *out_base)
{
    uint64_t total = pl_batch_size_bound(r), at, meta = 0;
    size_t written = 0, max_iov = 0;
    const uint8_t *built;                        /* where the batch header was written */
    pl_batch_header h;
    int rc;

    if (total == 0)
        return PL_EINVAL;
    if (seg->cfg.max_batch_bytes && total > seg->cfg.max_batch_bytes)
        return PL_ETOOLARGE;
    rc = reserve_append(seg, total, r->count,
                        seg->bytes_since_index > seg->cfg.index_interval_bytes);
    if (rc != PL_OK)
        return rc;
    at = seg->log.size;
    if (total < PL_WRITE_MIN) {                  /* small: built in the mapping */
        built = seg->log.map + at;
        rc = pl_batch_build_sized(seg->log.map + at, (size_t)(seg->log.allocated - at),
                                  seg->next_offset, r, total, &written);
    } else if (values_by_reference(r, total, &meta, &max_iov)) {
        /* No copy of the values at all: the kernel takes them from the caller's
         * buffers (pwritev), the rest of the batch from the scratch buffer. */
        size_t niov = 0;
        uint64_t iov_at = pl_round_up(meta, sizeof(struct iovec));
        uint8_t *tmp = scratch_for(seg, iov_at + max_iov * sizeof(struct iovec));
        if (tmp == NULL)
            return ENOMEM;
        struct iovec *iov = (struct iovec *)(void *)(tmp + iov_at);
        built = tmp;
        rc = pl_batch_build_vec(tmp, (size_t)meta, seg->next_offset, r, total, iov, &niov);
        if (rc == PL_OK)
            rc = pl_mfile_writev(&seg->log, at, iov, niov);
        written = (size_t)total;
    } else {
        /* Built in (warm, reused) heap memory, then one pwrite: see PL_WRITE_MIN. */
        uint8_t *tmp = scratch_for(seg, total);
        if (tmp == NULL)
            return ENOMEM;
        built = tmp;
        rc = pl_batch_build_sized(tmp, (size_t)total, seg->next_offset, r, total, &written);
        if (rc == PL_OK)
            rc = pl_mfile_write(&seg->log, at, tmp, written);
    }
    if (rc != PL_OK)
        return rc;
    pl_batch_read_header(built, PL_BATCH_HEADER_SIZE, &h);
    track_batch(seg, at, seg->next_offset + h.last_offset_delta, h.max_timestamp, written);
    *out_base = seg->next_offset;
    publish(seg, at + written, seg->next_offset + h.last_offset_delta + 1);
    return PL_OK;
}

/* One record, no headers, built straight into the mapping: the embedded single
 * append's fast path.  The bytes are exactly pl_batch_build's for a count of 1
 * (key NULL = null key whatever key_len says; value NULL with value_len -1 = null
 * value), but without a pl_records_in, the two size passes and the header re-read. */
static int append_single(pl_segment *seg, const uint8_t *key, int32_t key_len,
                         const uint8_t *value, int32_t value_len, int64_t timestamp,
                         int16_t attributes, int64_t *out_base)
{
    uint64_t body, total, at;
    uint8_t *b, *q;
    int rc;

    if (key == NULL)
        key_len = -1;
    if (key_len < -1 || value_len < -1 || (value == NULL && value_len > 0) ||
        (attributes & PL_ATTR_COMPRESSION_MASK))
        return PL_EINVAL;
    /* attributes, timestampDelta 0, offsetDelta 0, key, value, headerCount 0 */
    body = 1 + 1 + 1 + pl_varint_size(key_len) + (key_len > 0 ? (uint64_t)key_len : 0) +
           pl_varint_size(value_len) + (value_len > 0 ? (uint64_t)value_len : 0) + 1;
    total = PL_BATCH_HEADER_SIZE + pl_uvarint_size(body << 1) + body;
    if (total - PL_LOG_OVERHEAD > INT32_MAX)
        return PL_EINVAL;
    if (seg->cfg.max_batch_bytes && total > seg->cfg.max_batch_bytes)
        return PL_ETOOLARGE;
    rc = reserve_append(seg, total, 1, seg->bytes_since_index > seg->cfg.index_interval_bytes);
    if (rc != PL_OK)
        return rc;
    at = seg->log.size;
    b = seg->log.map + at;
    q = pl_put_varint(b + PL_BATCH_HEADER_SIZE, (int64_t)body);
    *q++ = 0;                                    /* record attributes */
    *q++ = 0;                                    /* timestampDelta    */
    *q++ = 0;                                    /* offsetDelta       */
    q = pl_put_varint(q, key_len);
    if (key_len > 0) {
        memcpy(q, key, (size_t)key_len);
        q += key_len;
    }
    q = pl_put_varint(q, value_len);
    if (value_len > 0) {
        memcpy(q, value, (size_t)value_len);
        q += value_len;
    }
    *q = 0;                                      /* headerCount       */
    pl_put_be64(b + PL_OFF_BASE_OFFSET, (uint64_t)seg->next_offset);
    pl_put_be32(b + PL_OFF_BATCH_LENGTH, (uint32_t)(total - PL_LOG_OVERHEAD));
    pl_put_be32(b + PL_OFF_LEADER_EPOCH, 0);
    b[PL_OFF_MAGIC] = PL_MAGIC_V2;
    pl_put_be16(b + PL_OFF_ATTRIBUTES, (uint16_t)attributes);
    pl_put_be32(b + PL_OFF_LAST_OFFSET_DELTA, 0);
    pl_put_be64(b + PL_OFF_BASE_TIMESTAMP, (uint64_t)timestamp);
    pl_put_be64(b + PL_OFF_MAX_TIMESTAMP, (uint64_t)timestamp);
    pl_put_be64(b + PL_OFF_PRODUCER_ID, UINT64_MAX);            /* -1 */
    pl_put_be16(b + PL_OFF_PRODUCER_EPOCH, UINT16_MAX);         /* -1 */
    pl_put_be32(b + PL_OFF_BASE_SEQUENCE, UINT32_MAX);          /* -1 */
    pl_put_be32(b + PL_OFF_RECORDS_COUNT, 1);
    pl_put_be32(b + PL_OFF_CRC,
                pl_crc32c(0, b + PL_OFF_ATTRIBUTES, (size_t)total - PL_OFF_ATTRIBUTES));
    track_batch(seg, at, seg->next_offset, timestamp, total);
    *out_base = seg->next_offset;
    publish(seg, at + total, seg->next_offset + 1);
    return PL_OK;
}

int pl_segment_append_one(pl_segment *seg, const void *key, int32_t key_len,
                          const void *value, int32_t value_len, int64_t timestamp,
                          int16_t attributes, int64_t *out_base)
{
    if (seg == NULL || out_base == NULL)
        return PL_EINVAL;
    return append_single(seg, key, key_len, value, value_len, timestamp, attributes,
                         out_base);
}

int pl_segment_append_now(pl_segment *seg, const void *key, int32_t key_len,
                          const void *value, int32_t value_len, pl_append_now *io)
{
    struct timespec now;

    if (seg == NULL || io == NULL)
        return PL_EINVAL;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return errno;
    io->timestamp = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    if (io->timestamp > io->roll_deadline_ms)
        return PL_EROLL;
    return append_single(seg, key, key_len, value, value_len, io->timestamp,
                         io->attributes, &io->offset);
}

/* ---- lookups ------------------------------------------------------------------- */

/* Walk the batch chain from pos (claimed to be a batch start whose baseOffset is
 * <= offset) to the batch holding offset.  Every header must look like a batch of
 * this segment (magic 2, offsets chained), so a garbage index entry is caught
 * here instead of being followed. */
static int walk_to_offset(const pl_segment *seg, uint64_t pos, int64_t anchor,
                          int64_t offset, uint64_t *out_pos, pl_batch_header *h)
{
    int64_t expect = -1;
    uint64_t next;
    int rc;

    for (;; pos = next) {
        *out_pos = pos;                     /* on an error: the batch at fault */
        if ((rc = pl_segment_batch_at(seg, pos, h, &next)) != PL_OK)
            return rc;
        if (h->magic != PL_MAGIC_V2 || h->last_offset_delta < 0 ||
            h->base_offset < seg->base_offset || h->base_offset >= seg->next_offset ||
            (expect < 0 ? h->base_offset > offset : h->base_offset != expect))
            return PL_EBADOFFSET;
        /* the first batch is the anchor: the one the index entry names (its last
         * offset is the entry's), or the segment's first batch */
        if (expect < 0 && (pos == 0 ? h->base_offset != seg->base_offset
                                    : h->base_offset + h->last_offset_delta != anchor))
            return PL_EBADOFFSET;
        if (h->base_offset + h->last_offset_delta >= offset)
            return PL_OK;
        expect = h->base_offset + h->last_offset_delta + 1;
    }
}

int pl_segment_find(const pl_segment *seg, int64_t offset, uint64_t *out_pos,
                    pl_batch_header *h)
{
    int64_t entry_offset;
    uint64_t pos;
    int rc;

    if (offset < seg->base_offset || offset >= seg->next_offset)
        return PL_ERANGE;
    pl_index_lookup(&seg->index, seg->base_offset, offset, &entry_offset, &pos);
    rc = pos < seg->log.size ? walk_to_offset(seg, pos, entry_offset, offset, out_pos, h)
                             : PL_ERANGE;
    if (rc != PL_OK && pos != 0)            /* bad index entry: the log decides */
        rc = walk_to_offset(seg, 0, seg->base_offset, offset, out_pos, h);
    return rc;
}

int pl_segment_find_time(const pl_segment *seg, int64_t ts, uint64_t *out_pos,
                         pl_batch_header *h)
{
    int64_t entry_ts, entry_offset;
    uint64_t pos = 0, next;
    int rc;

    pl_timeindex_lookup(&seg->timeindex, seg->base_offset, ts, &entry_ts, &entry_offset);
    if (entry_ts >= 0 && pl_segment_find(seg, entry_offset, &pos, h) != PL_OK)
        pos = 0;
    for (; pos < seg->log.size; pos = next) {
        if ((rc = pl_segment_batch_at(seg, pos, h, &next)) != PL_OK)
            return rc;
        if (h->max_timestamp >= ts) {
            *out_pos = pos;
            return PL_OK;
        }
    }
    return PL_ENOTFOUND;
}

int pl_segment_span_upto(const pl_segment *seg, uint64_t pos, uint64_t max_bytes,
                         int64_t last_offset, uint64_t *out_end,
                         int64_t *out_next_offset)
{
    uint64_t end = pos, next;
    int64_t expect = -1;
    pl_batch_header h;
    int rc;

    if (pos >= seg->log.size)
        return PL_ERANGE;
    while (end < seg->log.size) {
        rc = pl_segment_batch_at(seg, end, &h, &next);
        if (rc == PL_OK && !(end > pos && next - pos > max_bytes))
            rc = pl_segment_check_batch(seg, end, next, &h, expect);
        else if (rc == PL_OK)
            break;                          /* the next batch does not fit */
        if (rc != PL_OK) {
            if (end == pos)
                return rc;
            break;                          /* serve the good run; the next read fails */
        }
        end = next;
        expect = h.base_offset + h.last_offset_delta + 1;
        if (expect - 1 >= last_offset)
            break;
    }
    pl_segment_mark_verified(seg, pos, end);
    *out_end = end;
    if (out_next_offset != NULL)
        *out_next_offset = expect;
    return PL_OK;
}

int pl_segment_span(const pl_segment *seg, uint64_t pos, uint64_t max_bytes,
                    uint64_t *out_end)
{
    return pl_segment_span_upto(seg, pos, max_bytes, INT64_MAX, out_end, NULL);
}

int pl_segment_decode_upto(const pl_segment *seg, uint64_t pos, uint64_t end,
                           int64_t min_offset, uint64_t max_count, pl_record_cols *cols,
                           uint64_t *out_pos)
{
    pl_batch_header h;
    uint64_t next, mapped = pos, window = PL_PREFAULT_FIRST, start = pos;
    int64_t expect = -1;
    int rc = PL_OK, stopped = 0;

    if (end > seg->log.size || pos > end)
        return PL_ERANGE;
    while (pos < end && cols->count < max_count) {
        if (pos >= mapped) {
            mapped = end - pos > window ? pos + window : end;
            pl_mfile_prefault(&seg->log, pos, mapped);
            if (window < PL_PREFAULT_MAX)
                window *= 2;
        }
        if ((rc = pl_segment_batch_at(seg, pos, &h, &next)) != PL_OK)
            break;
        if (next > end) {
            rc = PL_EINVAL;
            break;
        }
        if ((rc = pl_segment_check_batch(seg, pos, next, &h, expect)) != PL_OK)
            break;
        expect = h.base_offset + h.last_offset_delta + 1;
        if (h.base_offset + h.last_offset_delta >= min_offset &&
            !(h.attributes & PL_ATTR_CONTROL)) {
            if (h.attributes & PL_ATTR_COMPRESSION_MASK) {
                rc = PL_ECOMPRESSED;
                break;
            }
            rc = pl_records_decode_upto(seg->log.map + pos + PL_BATCH_HEADER_SIZE,
                                        (size_t)(next - pos - PL_BATCH_HEADER_SIZE), &h,
                                        min_offset, seg->log.map, max_count, cols,
                                        &stopped);
            if (rc != PL_OK || stopped)
                break;
        }
        pos = next;
    }
    pl_segment_mark_verified(seg, start, pos);
    *out_pos = pos;
    return rc;
}

int pl_segment_decode(const pl_segment *seg, uint64_t pos, uint64_t end,
                      int64_t min_offset, pl_record_cols *cols, uint64_t *out_pos)
{
    return pl_segment_decode_upto(seg, pos, end, min_offset, UINT64_MAX, cols, out_pos);
}

/* ---- barrier, seal, close ------------------------------------------------------ */

int pl_segment_sync(pl_segment *seg)
{
    int rc = pl_mfile_sync(&seg->log);
    if (rc == PL_OK)
        rc = pl_mfile_sync(&seg->index);
    if (rc == PL_OK)
        rc = pl_mfile_sync(&seg->timeindex);
    return rc;
}

int pl_segment_seal(pl_segment *seg)
{
    int rc;

    if (!seg->active)
        return PL_OK;
    if ((rc = timeindex_maybe_append(seg)) != PL_OK && rc != PL_EFULL)
        return rc;
    if ((rc = pl_mfile_seal(&seg->log)) != PL_OK ||
        (rc = pl_mfile_seal(&seg->index)) != PL_OK ||
        (rc = pl_mfile_seal(&seg->timeindex)) != PL_OK)
        return rc;
    seg->active = 0;
    scratch_free(seg);
    return PL_OK;
}

int pl_segment_close(pl_segment *seg)
{
    int a = pl_mfile_close(&seg->log), b = pl_mfile_close(&seg->index);
    int c = pl_mfile_close(&seg->timeindex);
    seg->active = 0;
    scratch_free(seg);
    return a ? a : b ? b : c;
}
