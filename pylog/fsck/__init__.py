"""pylog-fsck: verify, and with --repair fix, a pylog data directory (DESIGN.md §6).

    pylog-fsck DATA_DIR [--topic T] [--repair] [--json] [--deep] [-v]

Read-only unless --repair.  Checks every batch of every segment (length bounds,
magic, CRC-32C, offsets contiguous and increasing within and across segments,
timestamps; --deep also decodes every record), every index and time-index entry
against the log, segment names against their first batch, gaps and overlaps,
both offset checkpoints against the logs, ``topic-metadata.json``, and stray or
temporary files.  Each finding names the topic, partition, file, byte position and
offset range.  --repair (refused while another process holds ``<data>/.lock``)
truncates torn or corrupt tails into ``<data>/quarantine/``, rebuilds indexes and
``topic-metadata.json``, rewrites checkpoints, then checks again; see pylog/fsck/repair.py.

Finding kinds (severity, what --repair does):

    torn-batch bad-length bad-magic bad-crc bad-offset   error  the log's valid prefix
        ends at a batch that fails FORMAT.md V1-V8 and non-zero bytes follow: when valid
        batches or segments follow, salvage as recovery does (the bad batch to
        quarantine/, its offsets to lost-offsets.json, the rest kept); else truncate
        there (bytes to quarantine/)
    gap overlap after-corruption                          error  same cut, at the segment
                              (gap, overlap: later segments to quarantine/)
    log-truncated             error  an index or the recovery point names data the .log
                              no longer has: rebuild indexes / rewrite checkpoints
    untrimmed                 error (warning on the last segment): zero tail of a sealed
                              segment: trim
    index-* timeindex-*       error  missing, wrong length, an entry that is not a batch
                              of the log, or not what a rebuild gives: rebuild both
    bad-records               error  --deep: records inside a CRC-valid batch do not
                              parse: reported only (cutting would drop valid data)
    recovery-point-beyond-end log-start-* checkpoint-malformed
                              error  rewrite both checkpoints, clamped to the logs
    metadata metadata-missing error  topic-metadata.json damaged (bad JSON, checksum,
                              truncated) or lost: rebuilt as pylog.open would, from
                              .prev + the partition directories, else the directories
                              with default configs (old file to quarantine/); a file
                              that is intact but unusable (newer version): reported only
    metadata-rebuild metadata-prev  warning  what the rebuild recovers or resets; an
                              unusable .prev: rewritten from the main file
    txnindex txn-snapshot     error  a .txnindex or txn-state.snapshot that is malformed,
                              names no ABORT marker, lacks an aborted transaction, or is
                              missing: rebuilt from the log (fsck/txn.py)
    bad-control               error  a control batch that is not a transaction marker:
                              reported only;   txnindex-pending  info
    orphan-index              error  quarantine
    leader-epoch              warning  partitionLeaderEpoch != 0 (outside the CRC): 0
    temp-file                 warning  quarantine;   stray-file, unknown-topic,
    timestamps, empty-segment warning  reported (empty-segment: removed)
    preallocated-tail live tail-in-progress partition-dir-missing   info

Exit codes (fsck(8)): 0 clean, 1 errors corrected, 4 errors left uncorrected,
8 operational error (missing or unreadable path, not a pylog directory, locked for
--repair), 16 usage error.  Layout of this package: model.py (findings, report),
segments.py (one segment), partition.py (one partition), datadir.py (the
directory), repair.py (--repair), cli.py (arguments, output, progress).
"""
from __future__ import annotations

from pylog.fsck.cli import main, run
from pylog.fsck.model import (EXIT_CLEAN, EXIT_CORRECTED, EXIT_OPERATIONAL,
                              EXIT_UNCORRECTED, EXIT_USAGE, Finding, Report)

__all__ = ["main", "run", "Finding", "Report", "EXIT_CLEAN", "EXIT_CORRECTED",
           "EXIT_UNCORRECTED", "EXIT_OPERATIONAL", "EXIT_USAGE"]
