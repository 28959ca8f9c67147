"""``partition.metadata``: the topic id, in every partition directory (Kafka's file).

    version: 0
    topic_id: <22 characters: the UUID's 16 bytes, URL-safe base64, no padding>

Kafka writes this file in each partition directory (``PartitionMetadataFile``) when
the topic gets its id (KIP-516) and checks it on load: a directory whose id differs
from the topic's belongs to another topic of the same name (deleted and re-created).
pylog does the same: ``read_topic_id`` returns the id a directory carries (None if
the file is missing), ``write_topic_id`` writes it atomically (fsync, rename).

Topic ids reach clients in Metadata v10+, Fetch v13+, Produce v13 and
CreateTopics v7; the all-zero UUID means "no id" on the wire and is never used.
"""
from __future__ import annotations

import base64
import uuid
from pathlib import Path

from pylog.errors import StorageError

from .files import atomic_write

__all__ = ["PARTITION_METADATA_FILE", "read_topic_id", "write_topic_id", "new_topic_id",
           "format_topic_id", "parse_topic_id"]

PARTITION_METADATA_FILE = "partition.metadata"
_VERSION = 0


def new_topic_id() -> uuid.UUID:
    """A random id; never the all-zero (``Uuid.ZERO_UUID``) or Kafka's reserved
    ``METADATA_TOPIC_ID`` (0...01) value."""
    while True:
        u = uuid.uuid4()
        if u.int > 1:
            return u


def format_topic_id(topic_id: uuid.UUID) -> str:
    """Kafka's ``Uuid.toString``: URL-safe base64 of the 16 bytes, unpadded."""
    return base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode("ascii")


def parse_topic_id(text: str) -> uuid.UUID:
    """Inverse of ``format_topic_id``; ValueError if it is not 16 bytes of base64."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 16:
        raise ValueError(f"topic id {text!r} is {len(raw)} bytes, not 16")
    return uuid.UUID(bytes=raw)


def read_topic_id(directory: Path) -> uuid.UUID | None:
    """The id in ``directory/partition.metadata``; None if there is no such file;
    StorageError naming the file when it cannot be parsed."""
    path = Path(directory) / PARTITION_METADATA_FILE
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise StorageError(f"{path}: unreadable ({e})") from e
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        if int(fields.get("version", "")) != _VERSION:
            raise ValueError(f"version {fields.get('version')!r}")
        return parse_topic_id(fields["topic_id"])
    except (KeyError, ValueError) as e:
        raise StorageError(f"{path}: not a partition.metadata file ({e})") from e


def write_topic_id(directory: Path, topic_id: uuid.UUID) -> None:
    atomic_write(Path(directory) / PARTITION_METADATA_FILE,
                 f"version: {_VERSION}\ntopic_id: {format_topic_id(topic_id)}\n".encode())
