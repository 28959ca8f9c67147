"""pylog: a Kafka-style commit log for Python (DESIGN.md section 4).

    import pylog
    with pylog.open("data") as log:                 # pylog.open(None): in-memory
        t = log.create_topic("orders", partitions=3)
        md = t.append(b"value", key=b"k")           # RecordMetadata(topic, partition, ...)
        recs = t.partition(md.partition).read(md.offset)

``pylog.open(None)`` keeps its files in a private directory under /dev/shm that is removed
on close; flushing (barriers) is disabled there.
"""
from __future__ import annotations

from pylog import errors
from pylog.broker.manager import Log, Topic
from pylog.config import TopicConfig
from pylog.errors import *  # noqa: F401,F403 - the exception tree is public API
from pylog.records import Record, RecordMetadata
from pylog.storage.log import AppendResult, PartitionLog
from pylog.storage.reader import Columns

Partition = PartitionLog

__version__ = "0.1.0"

__all__ = ["open", "Log", "Topic", "Partition", "PartitionLog", "Record",
           "RecordMetadata", "TopicConfig", "AppendResult", "Columns", "errors",
           *errors.__all__]


def open(path=None, **options) -> Log:  # noqa: A001 - pylog.open is the public name
    """Open (creating if needed) the data directory at ``path``; ``None`` = in-memory.

    Takes an exclusive lock on ``<path>/.lock``: a second open, from any process, gets
    LogLockedError naming the holder's pid.  Recovers the partitions (see
    ``Log.recovery_reports``).  Options: ``retention_check_interval_ms`` (30 s),
    ``log_cleaner_enable`` (True: the compaction thread, storage/cleaner.py) and
    ``log_cleaner_backoff_ms`` (15 s).  ``log.table(topic)``: a latest-per-key view.
    """
    return Log(path, **options)
