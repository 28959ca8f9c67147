"""Names and paths in a pylog data directory, laid out as Kafka lays out a log dir.

    <data>/<topic>-<partition>/<20-digit baseOffset>.log|.index|.timeindex
    <data>/recovery-point-offset-checkpoint, log-start-offset-checkpoint
    <data>/topic-metadata.json, .lock, .kafka_cleanshutdown

Topic names are validated (Kafka's ``Topic.validate``) and the resolved partition path is
checked to stay under the data directory *before* any path is built from them, so no name
from a client can reach a file outside ``<data>/``.  ``atomic_write`` is the one way small
metadata files are replaced: tmp -> fsync -> rename -> fsync(dir) (research/reliability.md
section 3, pattern 5).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from pylog.errors import InvalidTopicError

__all__ = [
    "LOG_SUFFIX", "INDEX_SUFFIX", "TIMEINDEX_SUFFIX", "DELETED_SUFFIX", "CLEANED_SUFFIX",
    "SWAP_SUFFIX", "TXNINDEX_SUFFIX", "TXN_SNAPSHOT_FILE", "CLEAN_SHUTDOWN_FILE", "LOCK_FILE", "METADATA_FILE",
    "RECOVERY_POINT_CHECKPOINT", "LOG_START_CHECKPOINT", "MAX_TOPIC_NAME_LENGTH",
    "filename_prefix", "log_file", "index_file", "timeindex_file", "txnindex_file",
    "parse_base_offset",
    "holds_no_records",
    "partition_dir_name", "parse_partition_dir", "validate_topic_name", "partition_dir",
    "fsync_dir", "atomic_write",
]

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
# Temporary suffixes Kafka uses for deletes, compaction and splits (LogFileUtils.java).
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
TXNINDEX_SUFFIX = ".txnindex"          # per segment, aborted transactions (txn_index.py)
TXN_SNAPSHOT_FILE = "txn-state.snapshot"   # per partition (txn_index.py)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
LOCK_FILE = ".lock"
METADATA_FILE = "topic-metadata.json"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_CHECKPOINT = "log-start-offset-checkpoint"

# Kafka's Topic.MAX_NAME_LENGTH: 249, so "<topic>-<partition>" plus a "-delete" suffix
# and a uuid still fit in a 255-byte file name.
MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
_OFFSET_WIDTH = 20
_SEGMENT_NAME = re.compile(r"(\d{20})(\.log|\.index|\.timeindex|\.txnindex)")


def filename_prefix(offset: int) -> str:
    """The 20-digit zero-padded base offset every segment file name starts with."""
    return "%020d" % offset


def log_file(directory: Path, base_offset: int) -> Path:
    return directory / (filename_prefix(base_offset) + LOG_SUFFIX)


def index_file(directory: Path, base_offset: int) -> Path:
    return directory / (filename_prefix(base_offset) + INDEX_SUFFIX)


def timeindex_file(directory: Path, base_offset: int) -> Path:
    return directory / (filename_prefix(base_offset) + TIMEINDEX_SUFFIX)


def txnindex_file(directory: Path, base_offset: int) -> Path:
    return directory / (filename_prefix(base_offset) + TXNINDEX_SUFFIX)


def parse_base_offset(name: str) -> tuple[int, str] | None:
    """(baseOffset, suffix) of a segment file name, or None if it is not one."""
    m = _SEGMENT_NAME.fullmatch(name)
    if m is None:
        return None
    return int(m.group(1)), m.group(2)


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """(topic, partition) of a partition directory name, or None if it is not one."""
    topic, sep, num = name.rpartition("-")
    if not sep or not num.isdigit() or not num.isascii():
        return None
    try:
        validate_topic_name(topic)
    except InvalidTopicError:
        return None
    return topic, int(num)


def validate_topic_name(name: object) -> str:
    """Kafka's ``Topic.validate``: 1-249 chars of ``[a-zA-Z0-9._-]``, not "." or "..".

    Raises InvalidTopicError naming the offending name; returns the name when valid.
    """
    if not isinstance(name, str):
        raise InvalidTopicError(f"Topic name must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidTopicError("Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"Topic name cannot be \".\" or \"..\": {name!r}")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} "
            f"characters, topic name: {name[:40]!r}... ({len(name)} characters)")
    if not _LEGAL_TOPIC.fullmatch(name):
        raise InvalidTopicError(
            f"Topic name {name!r} is illegal, it contains a character other than "
            "ASCII alphanumerics, '.', '_' and '-'")
    return name


def partition_dir(data_dir: Path, topic: str, partition: int) -> Path:
    """The directory of one partition, after validating the name and the resolved path.

    The resolved-path check is belt and braces: a valid name cannot contain a separator,
    but a symlink planted in the data dir could still point elsewhere.
    """
    validate_topic_name(topic)
    if not isinstance(partition, int) or partition < 0:
        raise InvalidTopicError(f"Invalid partition {partition!r} for topic {topic!r}")
    root = Path(data_dir).resolve()
    path = (root / partition_dir_name(topic, partition)).resolve()
    if path.parent != root:
        raise InvalidTopicError(
            f"Topic {topic!r} partition {partition} resolves outside the data directory")
    return path


def fsync_dir(path: Path | str) -> None:
    """fsync a directory so a create, rename or unlink in it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file.

    tmp -> write -> fsync -> rename over -> fsync(dir), as Kafka's CheckpointFile does.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


# Files a partition directory may hold besides its segments (checked by name only).
_PARTITION_FILES = ("partition.metadata", "lost-offsets.json", "leader-epoch-checkpoint",
                    TXN_SNAPSHOT_FILE)
_TEMP_SUFFIXES = (DELETED_SUFFIX, CLEANED_SUFFIX, SWAP_SUFFIX, ".tmp")


def holds_no_records(directory: Path | str) -> bool:
    """True when a partition directory has no .log with a non-zero byte and nothing that
    is not a pylog partition file (an empty or never-written segment, indexes, temp
    files): removing it loses nothing.  Any other file or a subdirectory is not ours to
    judge: False."""
    for entry in os.scandir(directory):
        if not entry.is_file(follow_symlinks=False):
            return False                  # a subdirectory or link: not ours to judge
        name = entry.name
        if parse_base_offset(name) is None and name not in _PARTITION_FILES \
                and not name.endswith(_TEMP_SUFFIXES):
            return False                  # someone else's file
        if name.endswith(LOG_SUFFIX) and entry.stat().st_size:
            with open(entry.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    if chunk.count(0) != len(chunk):
                        return False
    return True
