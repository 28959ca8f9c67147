"""Kafka's offset-checkpoint files: ``recovery-point-offset-checkpoint`` and
``log-start-offset-checkpoint`` in the data-dir root.

Format (Kafka ``CheckpointFile`` / ``OffsetCheckpointFile``), text, one item per line:

    0                      version
    N                      number of entries
    <topic> <partition> <offset>     N lines, separated by single spaces

Written tmp -> fsync -> rename -> fsync(dir) (``files.atomic_write``), so a reader sees the
old or the new file, never a torn one.  A file that does not parse is treated as absent:
the caller gets an empty mapping and a warning for its recovery report, never an exception
(recovery then scans more, which is always safe).
"""
from __future__ import annotations

import os
from pathlib import Path

from pylog.storage.files import atomic_write, validate_topic_name
from pylog.errors import InvalidTopicError

__all__ = ["CHECKPOINT_VERSION", "write_offset_checkpoint", "read_offset_checkpoint"]

CHECKPOINT_VERSION = 0
TopicPartition = tuple[str, int]


def format_offset_checkpoint(entries: dict[TopicPartition, int]) -> bytes:
    lines = [str(CHECKPOINT_VERSION), str(len(entries))]
    for (topic, partition), offset in sorted(entries.items()):
        lines.append(f"{topic} {partition} {offset}")
    return ("\n".join(lines) + "\n").encode("ascii")


def write_offset_checkpoint(path: Path | str, entries: dict[TopicPartition, int]) -> None:
    """Atomically replace the checkpoint at ``path`` with ``entries``."""
    atomic_write(path, format_offset_checkpoint(entries))


def read_offset_checkpoint(path: Path | str) -> tuple[dict[TopicPartition, int], str | None]:
    """Parse a checkpoint: (entries, warning).  A missing file is ({}, None); a file that
    does not parse is ({}, "why") so the caller can report it and carry on."""
    try:
        text = Path(path).read_bytes().decode("ascii")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as e:
        return {}, f"{os.fspath(path)}: unreadable ({e}); treated as absent"
    try:
        return _parse(text), None
    except ValueError as e:
        return {}, f"{os.fspath(path)}: malformed ({e}); treated as absent"


def _parse(text: str) -> dict[TopicPartition, int]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        raise ValueError("missing version or entry count")
    if lines[0].strip() != str(CHECKPOINT_VERSION):
        raise ValueError(f"unsupported version {lines[0][:20]!r}")
    count = int(lines[1])
    if count < 0 or count != len(lines) - 2:
        raise ValueError(f"entry count {count} but {len(lines) - 2} entry lines")
    entries: dict[TopicPartition, int] = {}
    for i, line in enumerate(lines[2:], start=3):
        parts = line.split(" ")
        if len(parts) != 3:
            raise ValueError(f"line {i}: expected 'topic partition offset'")
        topic, partition, offset = parts[0], int(parts[1]), int(parts[2])
        try:
            validate_topic_name(topic)
        except InvalidTopicError as e:
            raise ValueError(f"line {i}: {e}") from None
        if partition < 0 or offset < 0:
            raise ValueError(f"line {i}: negative partition or offset")
        entries[(topic, partition)] = offset
    return entries
