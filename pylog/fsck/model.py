"""What pylog-fsck finds and reports: findings, per-segment scan results, the report.

A *finding* is one thing wrong (or worth knowing) about a data directory, located as
precisely as the bytes allow: topic, partition, file (relative to the data dir), byte
position, offset range.  Severities follow fsck(8):

    error      the directory breaks a FORMAT.md rule; the exit code is 4 unless
               --repair fixed it (then 1)
    warning    odd but harmless to readers (stray files, timestamps a client sent);
               never changes the exit code unless --repair acted on it
    info       context (an unclean stop's preallocated tail, a live directory)

``fix`` names the repair action that addresses a finding (None: nothing to do, or
nothing fsck can do safely); ``fixed`` is set once --repair has done it.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field

__all__ = ["Finding", "SegmentScan", "PartitionScan", "Report",
           "ERROR", "WARNING", "INFO", "EXIT_CLEAN", "EXIT_CORRECTED",
           "EXIT_UNCORRECTED", "EXIT_OPERATIONAL", "EXIT_USAGE"]

ERROR, WARNING, INFO = "error", "warning", "info"

# fsck(8) exit codes.
EXIT_CLEAN = 0
EXIT_CORRECTED = 1
EXIT_UNCORRECTED = 4
EXIT_OPERATIONAL = 8
EXIT_USAGE = 16


@dataclass
class Finding:
    severity: str
    kind: str                       # short stable name, e.g. "bad-crc", "index-entry"
    message: str
    topic: str | None = None
    partition: int | None = None
    file: str | None = None         # relative to the data directory
    position: int | None = None     # byte position in `file`
    offsets: tuple[int, int | None] | None = None   # (first, last); last None = open
    fix: str | None = None          # repair action, None = not repairable here
    fixed: bool = False

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        elif self.topic is not None:
            parts.append(f"{self.topic}-{self.partition}" if self.partition is not None
                         else self.topic)
        if self.position is not None:
            parts.append(f"@{self.position}")
        if self.offsets is not None:
            first, last = self.offsets
            parts.append(f"offsets {first}..{'' if last is None else last}")
        return " ".join(parts)

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in ("severity", "kind", "message", "topic",
                                            "partition", "file", "position", "fix",
                                            "fixed")}
        d["offsets"] = list(self.offsets) if self.offsets is not None else None
        return d


@dataclass
class SegmentScan:
    """One segment after the scan: its valid prefix and the batches in it.

    ``positions``/``lasts``/``sizes``/``max_ts`` hold one entry per valid batch (arrays,
    not lists: a segment may hold millions of small batches).
    """
    base_offset: int
    log_path: str                    # relative to the data directory
    file_size: int = 0
    valid_end: int = 0               # end of the valid prefix
    data_end: int = 0                # end of the last non-zero byte (>= valid_end)
    stop_status: int = 0             # PL_E* of the batch the scan stopped at (0 = clean)
    stop_detail: str = ""
    next_offset: int = 0
    records: int = 0
    positions: array = field(default_factory=lambda: array("q"))
    lasts: array = field(default_factory=lambda: array("q"))
    sizes: array = field(default_factory=lambda: array("q"))
    max_ts: array = field(default_factory=lambda: array("q"))
    bad_epochs: array = field(default_factory=lambda: array("q"))   # positions
    index_ok: bool = True
    timeindex_ok: bool = True
    unreadable: bool = False
    _expected: tuple | None = field(default=None, repr=False)   # segments.expected_index

    @property
    def batches(self) -> int:
        return len(self.positions)

    @property
    def corrupt_tail(self) -> bool:
        """Non-zero bytes after the valid prefix: a torn or corrupt tail."""
        return self.data_end > self.valid_end


@dataclass
class PartitionScan:
    topic: str
    partition: int
    dir_name: str
    segments: list[SegmentScan] = field(default_factory=list)
    # (segment index, byte position) where the valid log ends, if it ends early
    cut: tuple[int, int] | None = None
    log_end_offset: int = 0
    log_start_offset: int = 0
    unreadable: bool = False
    interval: int = 4096             # index.interval.bytes of the topic


@dataclass
class Report:
    data_dir: str
    findings: list[Finding] = field(default_factory=list)
    partitions: list[PartitionScan] = field(default_factory=list)
    bytes_checked: int = 0
    batches: int = 0
    records: int = 0
    segments: int = 0
    seconds: float = 0.0
    repaired: bool = False
    live_pid: int | None = None      # a process holds the directory's lock
    operational: list[str] = field(default_factory=list)
    topic_filter: str | None = None

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        return finding

    def count(self, severity: str, fixed: bool | None = None) -> int:
        return sum(1 for f in self.findings if f.severity == severity
                   and (fixed is None or f.fixed == fixed))

    def exit_code(self) -> int:
        if self.operational:
            return EXIT_OPERATIONAL
        if any(f.severity == ERROR and not f.fixed for f in self.findings):
            return EXIT_UNCORRECTED
        if any(f.fixed for f in self.findings):
            return EXIT_CORRECTED
        return EXIT_CLEAN

    def summary(self) -> dict:
        gib_s = (self.bytes_checked / self.seconds / 2**30) if self.seconds > 0 else None
        return {
            "partitions": len(self.partitions), "segments": self.segments,
            "batches": self.batches, "records": self.records,
            "bytes_checked": self.bytes_checked, "seconds": round(self.seconds, 4),
            "gib_per_s": None if gib_s is None else round(gib_s, 3),
            "errors": self.count(ERROR), "warnings": self.count(WARNING),
            "fixed": sum(1 for f in self.findings if f.fixed),
            "errors_left": sum(1 for f in self.findings
                               if f.severity == ERROR and not f.fixed),
            "live_pid": self.live_pid, "operational_errors": list(self.operational),
            "exit_code": self.exit_code(),
        }

    def to_json(self) -> dict:
        return {"data_dir": self.data_dir, "repair": self.repaired,
                "summary": self.summary(),
                "findings": [f.to_json() for f in self.findings]}
