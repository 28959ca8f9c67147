/*
 * pylog.h -- the C core's API: status codes, format constants, structs, functions.
 *
 * The C core does the hot path of the commit log: CRC-32C, RecordBatch v2 (Kafka's
 * "magic 2") build/validate/decode, mmap'd segment files (.log, .index, .timeindex)
 * that grow with posix_fallocate in chunks, sparse index lookups, and the recovery
 * scan of a segment's valid prefix.  FORMAT.md is the normative description of the
 * bytes; the constants below use its field names.
 *
 * Rules (DESIGN.md section 8, STYLE.md):
 *   - Every function that can fail returns int: 0 (PL_OK), a negative PL_E* status,
 *     or a positive errno from the failing syscall.  pl_strerror() names each.
 *   - No abort(), no printing, no global mutable state.  Invalid bytes on disk or
 *     from the network are a normal return, never a crash.
 *   - Outputs are marked OUT.  Structs are owned and allocated by the caller
 *     (Python allocates them with ffi.new); the C core never mallocs them.
 *   - io.c is the only file that calls mmap/munmap/msync/fallocate/ftruncate/fsync/pwrite.
 *   - Mapping lifetime: a pl_mfile reserves `reserved` bytes of address space once
 *     (PROT_READ|PROT_WRITE, MAP_SHARED) and never moves it, so pointers handed to
 *     Python stay valid.  Only the first `allocated` bytes are backed by fallocated
 *     blocks and only the first `size` bytes hold data.  Closing a segment closes
 *     its fds but does NOT unmap: the Python owner calls pl_io_unmap() when the last
 *     view of the mapping is gone.  On seal (roll/close) the pages wholly beyond the
 *     logical size are unmapped first and only then is the file trimmed, so no mapped
 *     page ever lies beyond end of file (no SIGBUS).
 *
 * Not thread-safe: one writer per pl_segment; the Python layer holds the partition
 * lock around every call that mutates one.  Readers may call the const functions
 * concurrently with an append as long as they only look below the `size` they read
 * under the lock.  Appends store the bytes and index entries first, then publish
 * log.size and then next_offset with release stores.
 */
#ifndef PYLOG_H
#define PYLOG_H

#include <stddef.h>
#include <stdint.h>

/* ---- status codes (0 = ok, negative = pylog, positive = errno) ------------------ */
#define PL_OK            0
#define PL_ETRUNCATED   -1   /* the buffer ends inside a batch (torn tail)            */
#define PL_EBADLEN      -2   /* batchLength below the minimum or beyond the limit     */
#define PL_EBADMAGIC    -3   /* magic byte is not 2                                   */
#define PL_EBADCRC      -4   /* CRC-32C over attributes..end does not match           */
#define PL_EBADOFFSET   -5   /* lastOffsetDelta vs recordsCount, or baseOffset not    */
                             /*   the expected next offset                            */
#define PL_EBADRECORD   -6   /* a record inside the batch is malformed                */
#define PL_ETOOLARGE    -7   /* batch larger than max_batch_bytes                     */
#define PL_EFULL        -8   /* segment or one of its indexes is full: roll           */
#define PL_EINVAL       -9   /* invalid argument from the caller                      */
#define PL_ERANGE      -10   /* offset or position outside the segment                */
#define PL_ENOTFOUND   -11   /* lookup found no entry (e.g. no timestamp >= target)   */
#define PL_ECOMPRESSED -12   /* decode stopped at a compressed batch: caller inflates */
#define PL_ECLOSED     -13   /* segment is sealed/read-only or closed                 */
#define PL_ENOSPACE_CAP -14  /* output arrays are full (decode)                       */
#define PL_ECONTROL    -15   /* a client sent a control batch (Kafka: INVALID_RECORD)  */
#define PL_EROLL       -16   /* segment.ms deadline passed: roll, then append         */
#define PL_EBADHEADER  -17   /* a header field outside the CRC holds a value pylog    */
                             /* never writes (partitionLeaderEpoch other than 0/-1)   */
#define PL_EMSGID      -18   /* a record carries a pylog-msg-id header and the caller */
                             /* asked (PL_APPEND_MSG_IDS): nothing was appended       */
#define PL_ETXN        -19   /* a batch is transactional and the caller asked          */
                             /* (PL_APPEND_NO_TXN): nothing was appended              */

const char *pl_strerror(int code);

/* ---- RecordBatch v2 header layout (all big-endian) ------------------------------ */
#define PL_OFF_BASE_OFFSET        0   /* i64 */
#define PL_OFF_BATCH_LENGTH       8   /* i32: bytes after this field */
#define PL_OFF_LEADER_EPOCH      12   /* i32 partitionLeaderEpoch */
#define PL_OFF_MAGIC             16   /* i8 = 2 */
#define PL_OFF_CRC               17   /* u32 CRC-32C of bytes [21, end) */
#define PL_OFF_ATTRIBUTES        21   /* i16 */
#define PL_OFF_LAST_OFFSET_DELTA 23   /* i32 */
#define PL_OFF_BASE_TIMESTAMP    27   /* i64 */
#define PL_OFF_MAX_TIMESTAMP     35   /* i64 */
#define PL_OFF_PRODUCER_ID       43   /* i64 */
#define PL_OFF_PRODUCER_EPOCH    51   /* i16 */
#define PL_OFF_BASE_SEQUENCE     53   /* i32 */
#define PL_OFF_RECORDS_COUNT     57   /* i32 */
#define PL_BATCH_HEADER_SIZE     61   /* records start here */
#define PL_LOG_OVERHEAD          12   /* baseOffset + batchLength */
#define PL_MAGIC_V2               2
#define PL_ATTR_COMPRESSION_MASK  0x07
#define PL_ATTR_TIMESTAMP_TYPE    0x08
#define PL_ATTR_TRANSACTIONAL     0x10
#define PL_ATTR_CONTROL           0x20
#define PL_INDEX_ENTRY_SIZE       8   /* u32 relativeOffset, u32 physicalPosition */
#define PL_TIMEINDEX_ENTRY_SIZE  12   /* i64 timestamp, u32 relativeOffset        */
#define PL_MAX_RECORD_OVERHEAD   21   /* DefaultRecord.MAX_RECORD_OVERHEAD        */
#define PL_MIN_BATCH_LENGTH      49   /* batchLength of a header with no records  */

/* ---- CRC-32C (crc32c.c) --------------------------------------------------------- */
/* CRC-32C (Castagnoli) of buf, continuing from crc (pass 0 to start).  Uses SSE4.2
 * when the CPU has it (checked at run time), slice-by-8 otherwise.  pl_crc32c_sw
 * always uses the portable path (for tests).  pl_crc32c_hw_available: 1 or 0.       */
uint32_t pl_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t pl_crc32c_sw(uint32_t crc, const void *buf, size_t len);
int pl_crc32c_hw_available(void);

/* ---- batches (batch.c) ---------------------------------------------------------- */
typedef struct pl_batch_header {
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t  magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t records_count;
} pl_batch_header;

/* Decode the 61-byte header at buf without checking anything but len.
 * Returns PL_ETRUNCATED if len < 61.  OUT: h. */
int pl_batch_read_header(const uint8_t *buf, size_t len, pl_batch_header *h);

/* deep values of pl_batch_validate: 1 walks the records of an uncompressed batch;
 * PL_DEEP_MSG_IDS also returns PL_EMSGID for a valid batch one of whose records has
 * a header named "pylog-msg-id" (dedup ids, pylog/storage/dedup.py). */
#define PL_DEEP_MSG_IDS 2

/* Validate one batch at buf (avail bytes readable): avail >= 12; 49 <= batchLength;
 * 12 + batchLength <= max_batch_bytes (else PL_ETOOLARGE; 0 = no limit); the whole
 * batch inside avail (else PL_ETRUNCATED); magic == 2; CRC; recordsCount >= 0;
 * lastOffsetDelta >= recordsCount - 1 and >= 0 when recordsCount > 0 (recordsCount == 0
 * is PL_EBADOFFSET).  For an uncompressed batch also walks every record (length
 * varints inside the batch, offsetDelta increasing and <= lastOffsetDelta, exactly
 * recordsCount records) when deep != 0.  OUT: h (may be NULL). */
int pl_batch_validate(const uint8_t *buf, size_t avail, uint32_t max_batch_bytes,
                      int deep, pl_batch_header *h);

/* Set baseOffset and partitionLeaderEpoch in place (outside the CRC). */
void pl_batch_stamp(uint8_t *buf, int64_t base_offset, int32_t leader_epoch);

/* Validate consecutive batches of buf[0, size) from `start` (pl_batch_validate, not
 * deep), recording each valid batch's start position in positions (cap entries)
 * and, unless headers is NULL, a copy of its 61-byte header in headers (cap * 61
 * bytes) (scan.c).  Stops at the end (PL_OK), at the first invalid batch (its
 * status), or when cap batches are recorded (PL_ENOSPACE_CAP).
 * OUT: *out_count = batches recorded, *out_pos = where the scan stopped. */
int pl_batch_scan(const uint8_t *buf, uint64_t size, uint64_t start,
                  int64_t *positions, uint8_t *headers, uint64_t cap,
                  uint64_t *out_count, uint64_t *out_pos);
/* The index.interval.bytes rule over batch start positions (increasing, n of them):
 * batch i gets an index entry when positions[i] - positions[r] > interval, r being
 * the last batch that got one (0 at first: the first batch never does).  Writes the
 * chosen batch numbers to selected (n entries suffice) (scan.c).
 * OUT: *out_count = entries chosen. */
/* First position p in [start, stop) where a valid batch (pl_batch_validate: length,
 * magic, CRC-32C; the batch inside buf[0, size)) with baseOffset >= min_base begins:
 * where recovery picks the log up again after a corrupt batch.  PL_ENOTFOUND if
 * there is none. OUT: *out_pos. */
int pl_batch_resync(const uint8_t *buf, uint64_t size, uint64_t start, uint64_t stop,
                    int64_t min_base, uint64_t *out_pos);
int pl_index_rule(const int64_t *positions, uint64_t n, uint32_t interval,
                  int64_t *selected, uint64_t *out_count);

/* Switch the whole batch at buf (len = 12 + batchLength, else PL_EINVAL) to
 * LogAppendTime as Kafka's broker does: set the timestamp-type attribute bit,
 * maxTimestamp = timestamp, recompute the CRC.  Readers then give every record
 * the batch's maxTimestamp. */
int pl_batch_set_log_append_time(uint8_t *buf, size_t len, int64_t timestamp);

/* Records to build one batch from.  Spans are given as one concatenated blob plus a
 * length per item; a length of -1 means null (no bytes consumed from the blob). */
typedef struct pl_records_in {
    uint32_t count;                     /* number of records, >= 1                 */
    int64_t timestamp;                  /* used for every record if timestamps NULL */
    const int64_t *timestamps;          /* per-record timestamps, or NULL           */
    const uint8_t *keys;                /* key blob (may be NULL if all null)       */
    const int32_t *key_lens;            /* count entries, or NULL = all keys null   */
    const uint8_t *values;              /* value blob                               */
    const int32_t *value_lens;          /* count entries (-1 = null value)          */
    const uint8_t *const *value_ptrs;   /* or, when not NULL, value i at value_ptrs[i]
                                           (the blob is then unused): big batches are
                                           written from there without a copy        */
    const int32_t *header_counts;       /* count entries, or NULL = no headers      */
    const uint8_t *header_keys;         /* blob of UTF-8 header keys                */
    const int32_t *header_key_lens;     /* sum(header_counts) entries, >= 0         */
    const uint8_t *header_values;       /* blob of header values                    */
    const int32_t *header_value_lens;   /* sum(header_counts) entries, -1 = null    */
    int64_t producer_id;                /* -1 = none                                */
    int16_t producer_epoch;             /* -1 = none                                */
    int32_t base_sequence;              /* -1 = none                                */
    int16_t attributes;                 /* must have compression bits 0             */
} pl_records_in;

/* Upper bound on the encoded size of the batch for r (header + worst-case varints).
 * Returns 0 if r is invalid (count 0, negative lengths other than -1). */
size_t pl_batch_size_bound(const pl_records_in *r);

/* Encode r as one uncompressed RecordBatch v2 at out (cap bytes), baseOffset =
 * base_offset, leader epoch 0, CRC computed.  OUT: *out_len = bytes written.
 * PL_EINVAL on bad input, PL_ETRUNCATED if cap is too small. */
int pl_batch_build(uint8_t *out, size_t cap, int64_t base_offset,
                   const pl_records_in *r, size_t *out_len);

/* Decoded records in columns.  Positions (key_pos, value_pos, headers_pos) are byte
 * offsets from `origin` passed to the decode call, so they can index a numpy view
 * of the mapping; null key/value has len -1 and pos 0.  The caller allocates every
 * array with `capacity` entries and sets count = 0 before the first call. */
typedef struct pl_record_cols {
    uint64_t capacity;
    uint64_t count;                     /* IN/OUT: entries filled so far            */
    int64_t *offsets;
    int64_t *timestamps;
    int64_t *key_pos;   int32_t *key_lens;
    int64_t *value_pos; int32_t *value_lens;
    int64_t *headers_pos; int32_t *header_counts;  /* headers_pos: first header key
                                                      varint of the record            */
} pl_record_cols;

/* Decode the records section (uncompressed bytes) of one batch whose header is h:
 * records at rec (rec_len bytes).  Appends to cols every record with offset >=
 * min_offset.  origin: positions are reported as (pointer - origin).  Returns
 * PL_ENOSPACE_CAP (with nothing appended) if cols cannot take all the records of
 * this batch that qualify, PL_EBADRECORD on malformed records. */
int pl_records_decode(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                      int64_t min_offset, const uint8_t *origin, pl_record_cols *cols);
/* pl_records_decode that stops once cols->count reaches max_count: the records
 * after that point are neither decoded nor checked; OUT *out_stopped (may be NULL)
 * = 1 then.  PL_ENOSPACE_CAP only when capacity is reached before max_count. */
int pl_records_decode_upto(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                           int64_t min_offset, const uint8_t *origin, uint64_t max_count,
                           pl_record_cols *cols, int *out_stopped);

/* ---- mapped files (io.c) -------------------------------------------------------- */
typedef struct pl_mfile {
    int fd;                   /* -1 when closed                                      */
    uint8_t *map;             /* reserved mapping, never moves                       */
    uint64_t reserved;        /* bytes of address space reserved                     */
    uint64_t allocated;       /* bytes fallocated (file length while writable)       */
    uint64_t size;            /* logical bytes holding data                          */
    uint64_t synced;          /* bytes known durable (after the last good barrier)   */
    uint64_t grow_chunk;      /* fallocate step                                      */
    uint64_t limit;           /* most bytes appends may fill (<= reserved): an index's
                                 entry capacity x entry size; = reserved for a .log     */
    int writable;
} pl_mfile;

/* `create` argument of pl_mfile_open. */
#define PL_MF_EXISTING  0     /* the file must exist                                 */
#define PL_MF_CREATE    1     /* create it if missing                                */
#define PL_MF_EXCL      2     /* create it; it must not exist (EEXIST)               */

/* Open path (create per `create`: PL_MF_*) and reserve `reserved` bytes of mapping
 * (rounded up to the page size, and at least the file length).  size = allocated =
 * file length (the caller may lower size after a scan); limit = reserved.
 * Read-only when !writable (then reserved is the file length; map is NULL for an
 * empty file).  On failure nothing stays open or mapped. */
int pl_mfile_open(pl_mfile *f, const char *path, int create, int writable,
                  uint64_t reserved, uint64_t grow_chunk);
/* Make sure [0, need) is fallocated (in grow_chunk steps, never past reserved:
 * PL_EFULL; PL_ECLOSED if not writable).  ENOSPC/EFBIG come back as positive
 * errno; nothing is mapped into unallocated blocks. */
int pl_mfile_ensure(pl_mfile *f, uint64_t need);
/* Barrier: fdatasync (covers pages dirtied through the mapping); on success
 * synced = size.  On failure synced is unchanged and the error returned. */
int pl_mfile_sync(pl_mfile *f);
/* Set size to new_size (<= size), zero [new_size, allocated) and sync, so stale bytes
 * cannot come back after a later crash (DESIGN section 2 rule 5). */
int pl_mfile_truncate(pl_mfile *f, uint64_t new_size);
/* Seal: replace whole pages beyond round_up(size) by an inaccessible anonymous
 * reservation (so the address range can never be reused by another mapping while
 * Python still owns [map, map + reserved)), ftruncate the file to size, fsync,
 * drop write access (writable = 0).  Idempotent; `reserved` is unchanged. */
int pl_mfile_seal(pl_mfile *f);
/* Close the fd (not the mapping).  Idempotent. */
int pl_mfile_close(pl_mfile *f);
/* Release a mapping returned by a pl_mfile (called by the Python owner with the
 * map and reserved it saw right after open/create; NULL/0 is a no-op). */
int pl_io_unmap(void *addr, uint64_t len);
int pl_io_fsync_dir(const char *dir_path);

/* ---- offset index / time index (index.c, timeindex.c) --------------------------- */
/* Offset index: entries (relativeOffset u32 BE, physicalPosition u32 BE), strictly
 * increasing in both.  Lookup: greatest entry with offset <= target.               */
int pl_index_append(pl_mfile *idx, int64_t base_offset, int64_t offset, uint64_t pos);
/* OUT: *out_offset, *out_pos = floor entry, or (base_offset, 0) when none (returns 0). */
int pl_index_lookup(const pl_mfile *idx, int64_t base_offset, int64_t target,
                    int64_t *out_offset, uint64_t *out_pos);
/* Check every entry: file size a multiple of 8, monotonic, offset < next_offset,
 * and (if log != NULL) position < log->size and a batch start whose baseOffset is
 * <= the entry offset (what the floor lookup needs; also true of indexes written by
 * Kafka versions that indexed whole multi-batch appends).  Walks the log headers.
 * OUT: *bad_entry = index of first bad entry (or -1).  PL_OK when all good. */
int pl_index_check(const pl_mfile *idx, int64_t base_offset, int64_t next_offset,
                   const pl_mfile *log, int64_t *bad_entry);
int pl_index_truncate_entries(pl_mfile *idx, uint64_t entries);

/* Time index: entries (timestamp i64 BE, relativeOffset u32 BE); timestamps strictly
 * increasing.  Lookup: greatest entry with timestamp <= target (none: timestamp -1,
 * base_offset).  As in Kafka's LogSegment.append, segment.c adds a time entry only
 * together with an offset-index entry (max timestamp so far, if it grew), plus a
 * final one at seal and after recovery.                                             */
int pl_timeindex_append(pl_mfile *ti, int64_t base_offset, int64_t timestamp,
                        int64_t offset);
int pl_timeindex_lookup(const pl_mfile *ti, int64_t base_offset, int64_t target,
                        int64_t *out_timestamp, int64_t *out_offset);
int pl_timeindex_check(const pl_mfile *ti, int64_t base_offset, int64_t next_offset,
                       int64_t *bad_entry);
int pl_timeindex_truncate_entries(pl_mfile *ti, uint64_t entries);

/* ---- segments (segment.c) ------------------------------------------------------- */
typedef struct pl_segment_config {
    uint64_t segment_bytes;        /* segment.bytes: .log reservation and roll size  */
    uint64_t index_bytes;          /* segment.index.bytes (10 MiB)                   */
    uint32_t index_interval_bytes; /* index.interval.bytes (4096)                    */
    uint32_t max_batch_bytes;      /* max.message.bytes (1,048,588)                  */
    uint64_t grow_chunk;           /* fallocate step for .log (16 MiB)               */
} pl_segment_config;

typedef struct pl_segment {
    pl_mfile log, index, timeindex;
    int64_t base_offset;
    int64_t next_offset;               /* offset after the last batch               */
    int64_t max_timestamp;             /* largest maxTimestamp seen, -1 if none     */
    int64_t offset_of_max_timestamp;   /* last offset of the batch holding it       */
    int64_t first_batch_timestamp;     /* maxTimestamp of batch 0, -1 if empty      */
    uint64_t bytes_since_index;        /* bytes appended since the last index entry */
    pl_segment_config cfg;
    int active;                        /* 1 while writable                          */
    uint8_t *scratch;                  /* heap buffer big appends are built in     */
    uint64_t scratch_cap;              /* (PL_WRITE_MIN); freed by seal and close   */
    /* Read-side verification (verify.c).  Batches starting at or after trusted_from
     * were written by this process or checked by load/recovery; below it a read
     * checks each batch's CRC unless it starts inside the verified prefix of its
     * PL_VERIFY_CHUNK chunk: verified[c] = how many bytes from the chunk's start
     * are covered by checked batches (caller-owned, zeroed, verified_chunks entries;
     * NULL: check always). */
    uint64_t trusted_from;
    uint32_t *verified;
    uint64_t verified_chunks;
    /* OR of the attributes of the batches the last successful
     * pl_segment_append_flags stored: the caller tests PL_ATTR_TRANSACTIONAL there
     * instead of walking the batches again (transactions.py). */
    uint16_t append_attributes;
} pl_segment;

#define PL_VERIFY_CHUNK  65536   /* bytes of .log per entry of pl_segment.verified */

#define PL_OPEN_ACTIVE   1   /* writable, reserve cfg.segment_bytes of mapping      */
#define PL_OPEN_SEALED   0   /* read-only, mapped to the file sizes                 */

/* Create a new empty active segment (files must not exist).  The caller fsyncs the
 * directory afterwards. */
int pl_segment_create(pl_segment *seg, const char *log_path, const char *index_path,
                      const char *timeindex_path, int64_t base_offset,
                      const pl_segment_config *cfg);
/* Open existing files trusting nothing about the log yet: indexes are loaded with
 * entries = file length / entry size (missing index files are created empty).
 * Then call pl_segment_load_clean() or pl_segment_recover(). */
int pl_segment_open(pl_segment *seg, const char *log_path, const char *index_path,
                    const char *timeindex_path, int64_t base_offset,
                    const pl_segment_config *cfg, int mode);
/* After a clean shutdown: size = file length; find next_offset and max timestamp by
 * scanning forward from the last offset-index entry; sanity-check both indexes
 * (a failed check returns PL_EBADOFFSET and the caller falls back to recover). */
int pl_segment_load_clean(pl_segment *seg);

typedef struct pl_recover_report {
    uint64_t valid_bytes;        /* bytes kept                                       */
    uint64_t truncated_bytes;    /* bytes dropped (file length - valid_bytes)        */
    uint64_t batches;            /* batches kept                                     */
    int64_t  next_offset;        /* offset after the last kept batch                 */
    int      stop_reason;        /* PL_OK if the scan reached the end cleanly, else  */
                                 /*   the status of the first invalid batch          */
    uint64_t stop_position;      /* byte position of the first invalid batch         */
    uint64_t dropped_data_bytes; /* bytes from valid_bytes up to the last non-zero
                                    byte: 0 when the tail was only zero fill
                                    (preallocated space), i.e. nothing was lost;
                                    stop_reason is then PL_OK                         */
    uint64_t restamped_epochs;   /* batches whose partitionLeaderEpoch (outside the
                                    CRC) was neither 0 nor -1: set to 0             */
} pl_recover_report;

/* Recovery scan (DESIGN section 2): validate every batch from position 0 (length
 * >= 49 and inside the file -- max.message.bytes is deliberately not applied, it
 * may have been lowered since -- magic, CRC, lastOffsetDelta >= recordsCount - 1,
 * baseOffset == expected next offset, starting at base_offset),
 * rebuild both indexes with the index.interval.bytes rule, stop at the first invalid
 * batch or the zero tail, truncate there (zeroing the dropped tail and syncing).
 * Invalid data is not an error: the report says what was dropped. OUT: rep. */
int pl_segment_recover(pl_segment *seg, pl_recover_report *rep);
/* pl_segment_recover in two steps, so the caller can save what follows an invalid
 * batch (quarantine, split) before the cut: _scan validates, rebuilds the indexes
 * and fills rep, leaving the bytes alone; _cut truncates at rep->valid_bytes
 * (zeroing and syncing the dropped tail) and syncs the indexes. */
int pl_segment_recover_scan(pl_segment *seg, pl_recover_report *rep);
int pl_segment_recover_cut(pl_segment *seg, const pl_recover_report *rep);

/* Append client-built batches (buf holds one or more whole batches, as in a Kafka
 * Produce request).  All-or-nothing: every batch is validated first
 * (pl_batch_validate, deep: the records of uncompressed batches are walked too;
 * lastOffsetDelta must be recordsCount - 1: PL_EBADOFFSET; a control batch is
 * PL_ECONTROL), then space is ensured, then they are copied and stamped with
 * consecutive base offsets from next_offset.  PL_EFULL when the segment cannot
 * take them (caller rolls, then retries on the new segment).  Records inside
 * compressed batches are not checked here (the caller may inflate and check).
 * OUT: *out_base, *out_last (first and last offset assigned). */
int pl_segment_append(pl_segment *seg, const uint8_t *buf, size_t len,
                      int64_t *out_base, int64_t *out_last);
/* pl_segment_append for a topic with message.timestamp.type=LogAppendTime:
 * log_append_time >= 0 rewrites each stored batch with
 * pl_batch_set_log_append_time (the client's bytes are untouched); -1 is exactly
 * pl_segment_append. */
int pl_segment_append_at(pl_segment *seg, const uint8_t *buf, size_t len,
                         int64_t log_append_time, int64_t *out_base, int64_t *out_last);
/* pl_segment_append_at with flags: PL_APPEND_MSG_IDS makes a request whose batches
 * are all valid but where a record of an uncompressed batch carries a pylog-msg-id
 * header return PL_EMSGID with nothing appended (the walk is the validation's own,
 * so records without that header cost nothing more).  OUT: as pl_segment_append. */
#define PL_APPEND_MSG_IDS 1
/* PL_APPEND_CONTROL lets control batches (attributes 0x20: transaction markers)
 * through.  Broker-internal: only PartitionLog.write_txn_marker sets it; every
 * client path leaves it clear, so a control batch from a producer stays
 * PL_ECONTROL. */
#define PL_APPEND_CONTROL 2
/* PL_APPEND_NO_TXN: a request holding a transactional batch returns PL_ETXN with
 * nothing appended (after validating every batch), so a partition that has never
 * held one learns of its first at no cost to the others (transactions.py). */
#define PL_APPEND_NO_TXN 4
int pl_segment_append_flags(pl_segment *seg, const uint8_t *buf, size_t len,
                            int64_t log_append_time, int flags, int64_t *out_base,
                            int64_t *out_last);
/* Build one batch from r straight into the mapping at the end (no copy).
 * For LogAppendTime pass r->attributes |= PL_ATTR_TIMESTAMP_TYPE and
 * r->timestamp = the append time with r->timestamps = NULL.
 * OUT: *out_base (first offset assigned; last = base + count - 1). */
int pl_segment_append_records(pl_segment *seg, const pl_records_in *r,
                              int64_t *out_base);
/* One record without headers (value NULL = null value, key NULL = null key):
 * pl_segment_append_records with count 1 and no struct to fill (the embedded
 * single-record append's fast path).  OUT: *out_base. */
int pl_segment_append_one(pl_segment *seg, const void *key, int32_t key_len,
                          const void *value, int32_t value_len, int64_t timestamp,
                          int16_t attributes, int64_t *out_base);
/* IN/OUT of pl_segment_append_now; the caller keeps one per partition. */
typedef struct pl_append_now {
    int64_t roll_deadline_ms;   /* IN: clock past it: PL_EROLL, nothing appended       */
    int16_t attributes;         /* IN: 0, or PL_ATTR_TIMESTAMP_TYPE (LogAppendTime)    */
    int64_t offset;             /* OUT: the record's offset                            */
    int64_t timestamp;          /* OUT: the clock read (ms since the epoch), set even
                                   when the append fails, for the caller's retry      */
} pl_append_now;
/* pl_segment_append_one stamped with the wall clock read here (CLOCK_REALTIME in
 * ms, as Python's time.time_ns() // 10**6): the embedded append(value, key) path in
 * one C call.  PL_EROLL when that time is past io->roll_deadline_ms (segment.ms):
 * the caller rolls and appends with pl_segment_append_one(io->timestamp). */
int pl_segment_append_now(pl_segment *seg, const void *key, int32_t key_len,
                          const void *value, int32_t value_len, pl_append_now *io);
/* Position of the batch containing offset (index floor lookup + header walk; the
 * walk checks magic and the offset chain, and restarts from position 0 if the
 * index entry led somewhere wrong).  PL_ERANGE if offset < base_offset or >=
 * next_offset. OUT: *out_pos, h; on a bad batch (PL_EBADOFFSET, ...) *out_pos is its position. */
int pl_segment_find(const pl_segment *seg, int64_t offset, uint64_t *out_pos,
                    pl_batch_header *h);
/* Position of the first batch whose maxTimestamp >= ts (time index + walk).
 * PL_ENOTFOUND if none. OUT: *out_pos, h. */
int pl_segment_find_time(const pl_segment *seg, int64_t ts, uint64_t *out_pos,
                         pl_batch_header *h);
/* End of the run of whole batches from pos that fits in max_bytes, but at least one
 * batch.  PL_ERANGE if pos >= size.  Each batch passes pl_segment_check_batch: a bad
 * first batch is its status, a bad later one ends the run before it.  OUT: *out_end. */
int pl_segment_span(const pl_segment *seg, uint64_t pos, uint64_t max_bytes,
                    uint64_t *out_end);
/* pl_segment_span that also stops after the batch holding last_offset (a read that
 * wants offsets up to last_offset walks no further headers).  OUT (unless NULL):
 * *out_next_offset = the offset after the run (from headers that were checked). */
int pl_segment_span_upto(const pl_segment *seg, uint64_t pos, uint64_t max_bytes,
                         int64_t last_offset, uint64_t *out_end,
                         int64_t *out_next_offset);
/* Header of the batch at pos (a batch start below size), bounds-checked against
 * size (length >= 49, whole batch below size).  OUT: h, *out_next = pos of the next
 * batch (== size at the end).  PL_ERANGE if pos >= size. */
int pl_segment_batch_at(const pl_segment *seg, uint64_t pos, pl_batch_header *h,
                        uint64_t *out_next);

/* Decode uncompressed batches from pos (a batch start) to end into cols, keeping
 * records with offset >= min_offset; positions relative to seg->log.map.  Stops
 * early with PL_ECOMPRESSED at a compressed batch (OUT *out_pos = its position, the
 * caller inflates and calls pl_records_decode) or PL_ENOSPACE_CAP when cols is full
 * (OUT *out_pos = first batch not decoded).  PL_OK: *out_pos = end.  Every batch
 * passes pl_segment_check_batch first (its status, *out_pos = its position). */
int pl_segment_decode(const pl_segment *seg, uint64_t pos, uint64_t end,
                      int64_t min_offset, pl_record_cols *cols, uint64_t *out_pos);
/* pl_segment_decode that stops (PL_OK) once cols->count reaches max_count, possibly
 * inside a batch: OUT *out_pos = the position of the batch it stopped in (or of the
 * first batch not decoded).  With max_count <= capacity, never PL_ENOSPACE_CAP. */
int pl_segment_decode_upto(const pl_segment *seg, uint64_t pos, uint64_t end,
                           int64_t min_offset, uint64_t max_count, pl_record_cols *cols,
                           uint64_t *out_pos);
/* Barrier for the log and both indexes (pl_mfile_sync on each). */
/* Check the batch at [pos, next) (header h, from pl_segment_batch_at) before a read
 * serves it (verify.c): magic 2, offsets inside the segment and, when expect >= 0,
 * baseOffset == expect (the chain); below trusted_from and in a chunk not yet
 * verified also epoch 0/-1 and the CRC (PL_EBADCRC, PL_EBADHEADER, PL_EBADOFFSET). */
int pl_segment_check_batch(const pl_segment *seg, uint64_t pos, uint64_t next,
                           const pl_batch_header *h, int64_t expect);

/* Record that the batches [pos, end) (whole, from a batch start) passed
 * pl_segment_check_batch: extends the verified prefix of each chunk the range
 * continues (atomic maximum; concurrent readers need no lock). */
void pl_segment_mark_verified(const pl_segment *seg, uint64_t pos, uint64_t end);

int pl_segment_sync(pl_segment *seg);
/* Seal: append the final time-index entry (max timestamp), seal all three files
 * (pl_mfile_seal), active = 0.  Called on roll and on clean close. */
int pl_segment_seal(pl_segment *seg);
/* Close the three fds; mappings stay for the Python owner to release. */
int pl_segment_close(pl_segment *seg);

/* ---- compaction (compact.c) ---------------------------------------------------- */
/* XXH64 of buf (xxHash's 64-bit hash, seed as in the reference). */
uint64_t pl_xxh64(const void *buf, size_t len, uint64_t seed);

/* Offset map: key (as two XXH64 hashes) -> latest offset.  Caller-owned, zeroed
 * slots; capacity a power of two; max_count < capacity (the load limit). */
/* One aborted transaction for the cleaner: producer_id's data batches with
 * first_offset <= baseOffset and lastOffset < last_offset (its ABORT marker). */
typedef struct pl_txn_range {
    int64_t producer_id;
    int64_t first_offset;
    int64_t last_offset;
} pl_txn_range;

typedef struct pl_offset_slot {
    uint64_t h1, h2;
    uint64_t offset_plus_1;             /* 0 = empty slot                           */
} pl_offset_slot;
typedef struct pl_offset_map {
    pl_offset_slot *slots;
    uint64_t capacity;
    uint64_t max_count;
    uint64_t count;                     /* keys held                                 */
    int64_t max_offset;                 /* largest offset put, -1 at first           */
    /* Aborted transactions (txn.c): a transactional data batch inside one is neither
     * indexed nor kept.  Sorted by (producer_id, first_offset); NULL: none. */
    const pl_txn_range *aborted;
    uint64_t aborted_count;
} pl_offset_map;

/* Record offset for key (the larger of it and what is there).  PL_EFULL when the key
 * is new and count == max_count (nothing changed). */
int pl_offset_map_put(pl_offset_map *m, const uint8_t *key, int32_t key_len,
                      int64_t offset);
/* The offset held for key, -1 if none. */
int64_t pl_offset_map_get(const pl_offset_map *m, const uint8_t *key, int32_t key_len);
/* Put every keyed record of one batch's (uncompressed or inflated) records section. */
int pl_compact_index_records(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                             pl_offset_map *m);
/* Put the keyed records of the batches of buf[pos, end) (a segment mapping), each
 * checked first (pl_batch_validate with CRC, deep; baseOffset == *io_expect when
 * >= 0; epoch 0/-1); control batches skipped.  Stops with PL_ECOMPRESSED at a
 * compressed batch, or a bad batch's status.  OUT: *out_pos = where it stopped (the
 * batch at fault), *io_expect = next offset after the batches done. */
int pl_compact_index_segment(const uint8_t *buf, uint64_t pos, uint64_t end,
                             pl_offset_map *m, int64_t *io_expect, uint64_t *out_pos);

/* The output of a cleaning pass over one group of segments (compact.c doc). */
typedef struct pl_compact_writer {
    uint8_t *out;                       /* caller's buffer                           */
    uint64_t cap;
    uint64_t len;                       /* bytes in out                              */
    uint64_t pending;                   /* start of the last batch, CRC not final;
                                           UINT64_MAX (set by caller) when none      */
    int64_t next_base;                  /* IN: the group's base offset               */
    int64_t now_ms;                     /* IN: the cleaner's clock                   */
    int64_t delete_retention_ms;        /* IN: delete.retention.ms                   */
    uint64_t batches, kept, dropped, tombstones_dropped;   /* OUT: counters          */
    int64_t pending_last;               /* the pending batch's original last offset   */
    int64_t min_horizon;                /* IN/OUT: earliest delete horizon written,
                                           -1 (set by caller) when none              */
} pl_compact_writer;

/* Re-encode one batch (header h, records section rec) keeping the records that
 * survive (keep_all: every record, for control batches) and append it to w->out.
 * Nothing is written when none survives.  PL_EFULL when out may not have room
 * (nothing written: drain and retry).  PL_EBADRECORD on a malformed record. */
int pl_compact_filter(pl_compact_writer *w, const pl_offset_map *m, const uint8_t *rec,
                      size_t rec_len, const pl_batch_header *h, int keep_all);
/* pl_compact_filter over the batches of buf[pos, end), each checked first as in
 * pl_compact_index_segment.  Stops at a compressed batch (PL_ECOMPRESSED), when out
 * is full (PL_EFULL) or at a bad batch.  OUT: *out_pos, *io_expect as there. */
int pl_compact_segment(pl_compact_writer *w, const pl_offset_map *m, const uint8_t *buf,
                       uint64_t pos, uint64_t end, int64_t *io_expect, uint64_t *out_pos);
/* End the group: the last batch's lastOffsetDelta reaches end_offset - 1, CRC set. */
int pl_compact_finish(pl_compact_writer *w, int64_t end_offset);
/* After the caller copied out[0, n) (n = pending, or len if none): drop those
 * bytes, moving the pending batch to the front.  Returns n. */
uint64_t pl_compact_drain(pl_compact_writer *w);
/* Produce to a compacted topic (Kafka's LogValidator): OUT *out_keyless = 1 when a
 * record of the records section has a null key.  PL_EBADRECORD if one is malformed. */
int pl_compact_check_keys(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                          int *out_keyless);

/* ---- transactions (txn.c; FORMAT.md section 6a) --------------------------------- */
#define PL_TXN_DATA   -1   /* pl_txn_batch.type: a transactional data batch            */
#define PL_TXN_ABORT   0   /* control record type ABORT (Kafka's ControlRecordType)    */
#define PL_TXN_COMMIT  1   /* control record type COMMIT                               */
#define PL_TXN_BAD    -2   /* a control batch whose record is not a valid marker       */
#define PL_CONTROL_KEY_SIZE    4   /* version i16 = 0, type i16                       */
#define PL_CONTROL_VALUE_SIZE  6   /* version i16 = 0, coordinatorEpoch i32           */
#define PL_TXN_ENTRY_SIZE     34   /* .txnindex entry: version i16, producerId i64,
                                      firstOffset i64, lastOffset i64, LSO i64        */

/* A transactional batch found by pl_txn_scan. */
typedef struct pl_txn_batch {
    uint64_t position;            /* byte position of the batch                       */
    int64_t base_offset;
    int64_t last_offset;          /* baseOffset + lastOffsetDelta                     */
    int64_t producer_id;
    int64_t marker_offset;        /* control: its record's offset; else -1           */
    int32_t coordinator_epoch;    /* control: from the marker's value; else -1       */
    int16_t producer_epoch;
    int16_t type;                 /* PL_TXN_DATA, _ABORT, _COMMIT or _BAD             */
} pl_txn_batch;

/* Parse the records section of a control batch (header h): exactly one record whose
 * key is version 0 + type 0/1 and whose value is version 0 + coordinatorEpoch.
 * PL_EBADRECORD otherwise.  OUT: *out_type, *out_coordinator_epoch, *out_offset
 * (the record's offset: baseOffset + offsetDelta). */
int pl_control_parse(const uint8_t *rec, size_t rec_len, const pl_batch_header *h,
                     int16_t *out_type, int32_t *out_coordinator_epoch,
                     int64_t *out_offset);
/* Walk the batch headers of buf[pos, end) (batches already validated: a segment
 * mapping below its size) and report each transactional batch in out (cap
 * entries), parsing the record of control batches.  Non-transactional batches cost
 * one header read each.  0 at end; PL_ENOSPACE_CAP when out is full (resume at
 * *out_pos); PL_EBADLEN at a batch whose length runs past end (*out_pos).
 * OUT: *out_n entries filled, *out_pos. */
int pl_txn_scan(const uint8_t *buf, uint64_t pos, uint64_t end, pl_txn_batch *out,
                uint32_t cap, uint32_t *out_n, uint64_t *out_pos);

/* ---- layout pins (FORMAT.md; tests/test_ffi.py checks the same numbers) --------- */
#ifndef PL_NO_STATIC_ASSERTS
_Static_assert(PL_OFF_RECORDS_COUNT + 4 == PL_BATCH_HEADER_SIZE, "61-byte header");
_Static_assert(PL_BATCH_HEADER_SIZE - PL_LOG_OVERHEAD == PL_MIN_BATCH_LENGTH, "49");
_Static_assert(PL_OFF_CRC + 4 == PL_OFF_ATTRIBUTES, "CRC covers attributes..end");
_Static_assert(PL_OFF_MAGIC + 1 == PL_OFF_CRC, "magic before crc");
_Static_assert(PL_INDEX_ENTRY_SIZE == 8 && PL_TIMEINDEX_ENTRY_SIZE == 12, "entries");
_Static_assert(PL_TXN_ENTRY_SIZE == 2 + 8 + 8 + 8 + 8, ".txnindex entry");
_Static_assert(sizeof(int64_t) == 8 && sizeof(uint32_t) == 4, "fixed widths");
#endif

#endif /* PYLOG_H */
