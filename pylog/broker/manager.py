"""The data directory: ``Log`` (what ``pylog.open`` returns) and ``Topic``.

    <data>/.lock                               flock held while open; holds the pid
    <data>/.kafka_cleanshutdown                written LAST on close, deleted FIRST on open
    <data>/topic-metadata.json                 {"version": 1, "topics": {name:
                                                 {"partitions": N, "config": {...}}},
                                                 "crc32c": C}  (storage/metadata.py)
    <data>/topic-metadata.json.prev            the generation before it
    <data>/recovery-point-offset-checkpoint    Kafka's text format (storage/checkpoint.py)
    <data>/log-start-offset-checkpoint
    <data>/broker-configs.json                 dynamic broker configs (broker/broker_configs.py)
    <data>/<topic>-<partition>/...             one PartitionLog each

Open, as steps: take the lock (a second opener gets LogLockedError naming the pid);
note and delete the clean-shutdown marker (KAFKA-10471: deleted before anything loads,
so a crash while loading means a full recovery next time); read the checkpoints; read
the topic metadata (falling back to its previous generation or the partition
directories, storage/metadata.py); load every partition (storage/loader.py); start the flusher.

Close, as steps: stop the flusher; close every partition (barrier, seal: trim + fsync);
write both checkpoints; write the clean-shutdown marker last; release the lock.

``pylog.open(None)`` is an in-memory log for tests: a private directory under /dev/shm
(tempfile's default directory if /dev/shm is unavailable), removed on close.  Flushing is
disabled there: no barriers run and ``flush.messages=1`` does not wait (nothing would
survive a power loss anyway).

Thread-safe: topic creation/deletion and metadata writes hold ``Log._lock``; appends and
reads go straight to the partition (its own lock).
"""
from __future__ import annotations

import atexit
import errno
import fcntl
import functools
import gc
import logging
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

from pylog.broker import broker_configs
from pylog.config import MAX_PARTITIONS, TopicConfig
from pylog.errors import (InvalidPartitionsError, InvalidTopicError, LogLockedError,
                          StorageError, TopicExistsError, UnknownTopicError,
                          UnknownTopicIdError)
from pylog.storage import checkpoint, files, metadata
from pylog.storage.cleaner import DEFAULT_BACKOFF_MS, LogCleaner
from pylog.storage.flusher import Flusher
from pylog.storage.loader import RecoveryReport, load_segments
from pylog.storage.quarantine import Quarantine
from pylog.storage.log import PartitionLog

from .topic import Topic
from pylog.storage.segment import GROW_CHUNK, MEMORY_GROW_CHUNK, segment_config

__all__ = ["Log", "Topic", "open_log"]

_log = logging.getLogger("pylog.manager")


class Log:
    """A pylog data directory: topics of partitioned logs.  Use ``pylog.open``."""

    def __init__(self, path: str | os.PathLike | None = None, *,
                 retention_check_interval_ms: int = 30_000,
                 log_cleaner_enable: bool = True,
                 log_cleaner_backoff_ms: int = DEFAULT_BACKOFF_MS):
        self._memory = path is None
        self._dir = Path(_memory_dir() if path is None else path).absolute()
        self.data_dir: Path | None = None if self._memory else self._dir
        self._lock = threading.RLock()
        self._topics: dict[str, Topic] = {}
        self._closed = False
        self._lock_fd = -1
        self.recovery_reports: list[RecoveryReport] = []
        self.warnings: list[str] = []
        self._groups = None                    # GroupCoordinator, created on first use
        self._group_configs = None             # GroupConfigs, created on first use
        self._share_groups = None              # ShareGroups (queues.py), on first use
        self._share_members = None             # ShareMembers (share_members.py), ditto
        self._producer_ids = None              # ProducerStateManager (producers.py), ditto
        self._transactions = None              # TransactionCoordinator, on first use
        self._txn_producers: dict = {}         # embedded transactional producers by id
        self._txn_options: dict = {}           # TransactionCoordinator keyword arguments
        # Broker defaults of topic configs (Kafka-named topic keys: the dynamic log.*
        # broker configs), used by every topic key the topic does not set itself.
        self.topic_defaults: dict = {}
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create data directory {self._dir}: {e}") from e
        self._cleanup = None
        if self._memory:             # removed on close, or at exit if never closed
            self._cleanup = functools.partial(shutil.rmtree, self._dir, ignore_errors=True)
            atexit.register(self._cleanup)
        self.cleaner: LogCleaner | None = None   # compaction (storage/cleaner.py)
        self._take_lock()
        try:
            self._open(retention_check_interval_ms / 1000.0)
            self.cleaner = LogCleaner(self._dir, self._all_partitions,
                                      backoff_ms=log_cleaner_backoff_ms,
                                      enabled=log_cleaner_enable)
            if "__transaction_state" in self._topics:
                self.transactions     # completes what a crash left prepared; timeouts
        except BaseException:
            self._abort_open()
            raise

    # ---- open ------------------------------------------------------------------------
    def _take_lock(self) -> None:
        path = self._dir / files.LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StorageError(f"cannot lock {path}: {e}") from e
            try:
                holder = path.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise LogLockedError(f"data directory {self._dir} is locked by another "
                                 f"process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _abort_open(self) -> None:
        """Undo a failed open: stop the flusher, close what was loaded, unlock."""
        if self._transactions is not None:
            self._transactions.close()
        if self.cleaner is not None:
            self.cleaner.stop()
        flusher = getattr(self, "_flusher", None)
        if flusher is not None:
            flusher.stop()
        for p in self._all_partitions():
            try:
                p.close()
            except Exception:                   # noqa: BLE001 - already failing
                pass
        self._release_lock()
        if self._cleanup is not None:
            atexit.unregister(self._cleanup)
            self._cleanup()

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)            # closing the fd releases the flock
            self._lock_fd = -1

    def _open(self, tick_s: float) -> None:
        marker = self._dir / files.CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        if clean:                               # deleted before anything loads
            marker.unlink()
            files.fsync_dir(self._dir)
        rps, warn1 = checkpoint.read_offset_checkpoint(
            self._dir / files.RECOVERY_POINT_CHECKPOINT)
        starts, warn2 = checkpoint.read_offset_checkpoint(
            self._dir / files.LOG_START_CHECKPOINT)
        self.warnings += [w for w in (warn1, warn2) if w]
        self._open_warnings = list(self.warnings)     # also in each partition's report
        # dynamic broker defaults (broker-configs.json) before any retention can run
        self.topic_defaults = broker_configs.read_topic_defaults(self._dir)
        self._flusher = Flusher(name=f"pylog-flusher:{self._dir.name}",
                                tick=self._maintenance, tick_interval_s=tick_s)
        for name, (n, config) in self._read_metadata().items():
            config = config.with_defaults(self.topic_defaults)
            parts = [self._load_partition(name, i, config, clean, rps, starts)
                     for i in range(n)]
            self._topics[name] = Topic(name, config, parts)
        if self._metadata_recovered is not None:      # a good file again, from now on
            with self._lock:
                kept = metadata.rebuild(self._dir, self._metadata_recovered,
                                        by="pylog.open")
            if kept:
                _log.warning("%s: the damaged %s was moved to %s", self._dir,
                             files.METADATA_FILE, kept)
        self._note_stray_dirs()
        self._open_warnings = []

    def _load_partition(self, topic: str, i: int, config: TopicConfig, clean: bool,
                        rps: dict, starts: dict) -> PartitionLog:
        directory = files.partition_dir(self._dir, topic, i)
        chunk = MEMORY_GROW_CHUNK if self._memory else GROW_CHUNK
        segs, start, rp, report = load_segments(
            directory, topic, i, segment_config(config, chunk), clean=clean,
            recovery_point=rps.get((topic, i)), log_start_offset=starts.get((topic, i)))
        report.warnings[:0] = getattr(self, "_open_warnings", [])
        self.recovery_reports.append(report)
        if report.bytes_dropped:
            _log.warning("recovery of %s-%d cut %d bytes of a torn tail (never synced); "
                         "log end %d", topic, i, report.bytes_dropped, report.log_end_offset)
        # each quarantined range was logged at WARNING by storage.salvage
        return PartitionLog(topic, i, directory, config, segs, start, rp,
                            flusher=self._flusher, durable=not self._memory,
                            on_checkpoint=self._write_log_start_checkpoint,
                            grow_chunk=chunk)

    def _read_metadata(self) -> dict:
        """{name: (partitions, TopicConfig)} by storage/metadata.py's fallback order: the
        main file, else its previous generation or the partition directories (each
        step logged at WARNING and kept in ``warnings``; the file is then rewritten)."""
        rec = metadata.load(self._dir)
        for note in rec.notes:
            _log.warning("%s: %s", self._dir, note)
            self.warnings.append(note)
        self._metadata_recovered = rec if rec.needs_rewrite else None
        return rec.topics

    def _note_stray_dirs(self) -> None:
        for entry in os.listdir(self._dir):
            tp = files.parse_partition_dir(entry)
            if tp is None or not (self._dir / entry).is_dir():
                continue
            t = self._topics.get(tp[0])
            if t is None or tp[1] >= t.num_partitions:
                if files.holds_no_records(self._dir / entry):
                    # an interrupted creation by an older pylog, or of a partition
                    # whose metadata never made it to disk: nothing to keep
                    shutil.rmtree(self._dir / entry)
                    files.fsync_dir(self._dir)
                    self.warnings.append(f"{entry}: empty partition directory not in the "
                                         "topic metadata (an interrupted creation); removed")
                else:
                    self.warnings.append(f"{entry}: partition directory not in the topic "
                                         "metadata; left untouched")

    # ---- metadata and checkpoints ------------------------------------------------------
    def _write_metadata_locked(self, pending: tuple | None = None) -> None:
        """``pending``: (name, partitions, config) of a topic being created.  The file
        it replaces is kept as ``topic-metadata.json.prev`` (storage/metadata.py)."""
        topics = {name: (t.num_partitions, t.config) for name, t in self._topics.items()}
        if pending is not None:
            topics[pending[0]] = pending[1:]
        metadata.write(self._dir, topics)

    def _all_partitions(self) -> list[PartitionLog]:
        with self._lock:
            return [p for t in self._topics.values() for p in t._partitions]

    def write_checkpoints(self) -> None:
        """Write both offset checkpoints (recovery points, log start offsets)."""
        parts = self._all_partitions()
        with self._lock:
            try:
                checkpoint.write_offset_checkpoint(
                    self._dir / files.RECOVERY_POINT_CHECKPOINT,
                    {(p.topic, p.partition): p.recovery_point for p in parts})
                self._write_log_start_checkpoint_locked(parts)
            except OSError as e:
                raise StorageError(f"writing checkpoints in {self._dir}: {e}") from e

    def _write_log_start_checkpoint(self) -> None:
        with self._lock:
            if not self._closed:
                self._write_log_start_checkpoint_locked(self._all_partitions())

    def _write_log_start_checkpoint_locked(self, parts) -> None:
        checkpoint.write_offset_checkpoint(
            self._dir / files.LOG_START_CHECKPOINT,
            {(p.topic, p.partition): p.log_start_offset for p in parts})

    def _maintenance(self) -> None:
        """Flusher tick: retention for every partition, then the checkpoints."""
        if self._closed:
            return
        self.enforce_retention()
        with self._lock:
            if not self._closed:
                self.write_checkpoints()

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Apply retention.ms / retention.bytes everywhere; returns segments deleted."""
        return sum(p.enforce_retention(now_ms) for p in self._all_partitions())

    # ---- topics ------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1, config=None) -> Topic:
        """Create a topic (TopicExistsError, InvalidTopicError, InvalidPartitionsError,
        InvalidConfigError)."""
        files.validate_topic_name(name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or \
                not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartitionsError(f"topic {name!r}: number of partitions must be "
                                         f"an integer from 1 to {MAX_PARTITIONS}, "
                                         f"not {partitions!r}")
        cfg = config if isinstance(config, TopicConfig) else TopicConfig.from_dict(config)
        cfg = cfg.with_defaults(self.topic_defaults)
        with self._lock:
            self._check_open()
            if name in self._topics:
                raise TopicExistsError(f"topic {name!r} already exists")
            self._check_collision(name)
            for i in range(partitions):
                directory = files.partition_dir(self._dir, name, i)
                if directory.exists():          # leftovers of a topic not in metadata
                    self._clear_leftover(name, i, directory)
            # Metadata first, then the directories: a crash in between leaves a topic
            # whose missing partition directories the next open creates, never
            # directories no metadata explains (issue 18, defect 9).
            parts = []
            try:
                self._write_metadata_locked(pending=(name, partitions, cfg))
                for i in range(partitions):
                    parts.append(self._load_partition(name, i, cfg, True, {}, {}))
            except BaseException:
                for p in parts:
                    p.close()
                self._write_metadata_locked()
                raise
            self.recovery_reports = [r for r in self.recovery_reports if r.topic != name
                                     or r.mode != "new"]
            topic = self._topics[name] = Topic(name, cfg, parts)
            files.fsync_dir(self._dir)
            return topic

    def _clear_leftover(self, name: str, i: int, directory: Path) -> None:
        """A directory of a topic the metadata does not know: removed when it holds
        nothing (an interrupted creation), else moved to the quarantine: a new topic of
        the same name never deletes records."""
        if files.holds_no_records(directory):
            shutil.rmtree(directory)
            return
        target = Quarantine(self._dir, by="create_topic").move_file(
            f"{name}-{i}", directory, {"reason": "partition directory with records, not in "
                                                 "the topic metadata, in the way of a new "
                                                 f"topic {name!r}"})
        files.fsync_dir(self._dir)
        _log.warning("%s: not in the topic metadata but holds records; moved to %s before "
                     "creating topic %r", directory, target, name)
        self.warnings.append(f"{directory.name}: moved to {target} (records of a topic "
                             "not in the metadata)")

    def _check_collision(self, name: str) -> None:
        # Kafka: topics whose names differ only in '.' vs '_' collide in metric names.
        norm = name.replace(".", "_")
        for other in self._topics:
            if other.replace(".", "_") == norm:
                raise InvalidTopicError(f"topic {name!r} collides with existing topic "
                                        f"{other!r} ('.' and '_' are equivalent)")

    def topic(self, name: str) -> Topic:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopicError(f"unknown topic {name!r}") from None

    def topics(self) -> list[str]:
        with self._lock:
            return sorted(self._topics)

    def has_topic(self, name: str) -> bool:
        return name in self._topics

    def topic_by_id(self, topic_id: uuid.UUID) -> Topic:
        """The topic with this id (KIP-516); UnknownTopicIdError if there is none."""
        for topic in list(self._topics.values()):
            if topic.topic_id == topic_id:
                return topic
        raise UnknownTopicIdError(f"unknown topic id {topic_id}")

    def partition(self, topic: str, i: int) -> PartitionLog:
        return self.topic(topic).partition(i)

    def delete_topic(self, name: str) -> None:
        """Close the topic's partitions and delete their directories.

        The disk space comes back when the last reference to the partitions' mappings
        goes (an unlinked file stays allocated while it is mapped): drop the Topic and
        PartitionLog objects and any views read from them."""
        with self._lock:
            self._check_open()
            topic = self.topic(name)
            del self._topics[name]
            for p in topic._partitions:      # files first: this must work on a full disk
                p.discard()
                shutil.rmtree(p.directory, ignore_errors=True)
            topic._partitions = []
            del p
            if self.cleaner is not None:
                self.cleaner.forget(name)
            # An exception raised by a failed append (e.g. ENOSPC) sits in a reference
            # cycle with the frame that raised it, which holds the partition and so its
            # mappings: the space of the unlinked files returns only when they go.
            gc.collect()
            files.fsync_dir(self._dir)
            try:
                self._write_metadata_locked()
            except OSError as e:
                raise StorageError(f"topic {name!r} deleted but {files.METADATA_FILE} "
                                   f"could not be rewritten: {e}") from e
            self.write_checkpoints()

    def alter_topic_config(self, name: str, updates: dict, replace: bool = False
                           ) -> TopicConfig:
        """Set Kafka-named config keys on a topic (None resets a nullable one), applied
        live; ``replace`` (Kafka's AlterConfigs): keys not named revert to the default."""
        with self._lock:
            topic = self.topic(name)
            cfg = (TopicConfig.from_dict(updates).with_defaults(self.topic_defaults)
                   if replace else topic.config.with_updates(updates))
            self._apply_config_locked(topic, cfg)
            self._write_metadata_locked()
            return cfg

    def apply_topic_defaults(self, defaults: dict) -> None:
        """New broker defaults for topic configs (the dynamic ``log.*`` ones), applied
        live to the keys each topic does not set itself; nothing changes on a bad one."""
        with self._lock:
            new = {n: t.config.with_defaults(defaults) for n, t in self._topics.items()}
            self.topic_defaults = dict(defaults)
            for name, cfg in new.items():
                self._apply_config_locked(self._topics[name], cfg)

    def _apply_config_locked(self, topic: Topic, cfg: TopicConfig) -> None:
        topic.config = cfg
        for p in topic._partitions:
            p.update_config(cfg)

    def create_partitions(self, name: str, total: int) -> None:
        """Grow a topic to ``total`` partitions (Kafka CreatePartitions)."""
        with self._lock:
            topic = self.topic(name)
            if not isinstance(total, int) or total <= topic.num_partitions:
                raise InvalidPartitionsError(
                    f"topic {name!r} has {topic.num_partitions} partitions; "
                    f"the new count must be larger, not {total!r}")
            for i in range(topic.num_partitions, total):
                topic._partitions.append(
                    self._load_partition(name, i, topic.config, True, {}, {}))
            topic._write_topic_id(topic.topic_id)
            self._write_metadata_locked()

    # ---- consumer groups (pylog/broker/groups.py, consumer.py) -------------------------
    @property
    def groups(self):
        """The group coordinator (committed offsets, groups, lag), created on first use;
        it loads ``__consumer_offsets`` in the background."""
        with self._lock:
            if self._groups is None:
                self._check_open()
                from pylog.broker.groups import GroupCoordinator
                self._groups = GroupCoordinator(self)
            return self._groups

    def start_groups(self, **options):
        """Create the group coordinator now with ``options`` (GroupCoordinator keyword
        arguments, e.g. ``initial_rebalance_delay_ms``); the server calls this at startup
        so loading committed offsets starts before the first JoinGroup."""
        with self._lock:
            self._check_open()
            if self._groups is None:
                from pylog.broker.groups import GroupCoordinator
                self._groups = GroupCoordinator(self, **options)
            return self._groups

    @property
    def group_configs(self):
        """Dynamic group configs (pylog/broker/group_configs.py), created on first use."""
        with self._lock:
            if self._group_configs is None:
                from pylog.broker.group_configs import GroupConfigs
                self._group_configs = GroupConfigs(self.data_dir)
            return self._group_configs

    def consumer(self, group: str, topics, **options):
        """An embedded consumer in ``group`` (see pylog/broker/consumer.py)."""
        from pylog.broker.consumer import Consumer
        return Consumer(self, group, topics, **options)

    # ---- share groups (pylog/broker/queues.py, share_state.py, share_store.py) ---------
    @property
    def share_groups(self):
        """The share-group coordinator, created on first use; it loads
        ``__share_group_state`` in the background."""
        with self._lock:
            if self._share_groups is None:
                self._check_open()
                from pylog.broker.queues import ShareGroups
                self._share_groups = ShareGroups(self)
            return self._share_groups

    @property
    def share_members(self):
        """Members of share groups joined through the Kafka share APIs."""
        with self._lock:
            if self._share_members is None:
                self._check_open()
                from pylog.broker.share_members import ShareMembers
                self._share_members = ShareMembers(self)
            return self._share_members

    def queue(self, group: str, topic: str, **configs):
        """A member of share group ``group`` on ``topic`` (see pylog/broker/queues.py)."""
        from pylog.broker.queues import Queue
        return Queue(self, group, topic, **configs)

    # ---- transactions (pylog/broker/transactions.py, txn_producer.py) -----------------
    @property
    def producer_ids(self):
        """Producer ids, never handed out twice (broker/producers.py); shared by the
        Kafka API and embedded transactions."""
        with self._lock:
            if self._producer_ids is None:
                from pylog.broker.producers import ProducerStateManager
                self._producer_ids = ProducerStateManager(self.data_dir)
            return self._producer_ids

    @property
    def transactions(self):
        """The transaction coordinator, created on first use (it loads
        ``__transaction_state`` and completes what a crash left prepared)."""
        with self._lock:
            if self._transactions is None:
                self._check_open()
                from pylog.broker.transactions import TransactionCoordinator
                self._transactions = TransactionCoordinator(self, **self._txn_options)
            return self._transactions

    def start_transactions(self, **options) -> None:
        """TransactionCoordinator keyword arguments (``max_timeout_ms``,
        ``check_interval_ms``) for the coordinator, applied now if it runs; the server
        calls this at startup."""
        with self._lock:
            self._txn_options = dict(options)
            if self._transactions is not None:
                self._transactions.configure(**options)

    @property
    def transactions_if_started(self):
        """The transaction coordinator if something created it, else None."""
        return self._transactions

    def transaction(self, transactional_id: str, *, timeout_ms: int = 60_000):
        """``with log.transaction("id") as tx:`` -- appends and offsets committed
        atomically (see pylog/broker/txn_producer.py)."""
        from pylog.broker.txn_producer import transaction
        return transaction(self, transactional_id, timeout_ms)

    # ---- close -------------------------------------------------------------------------
    def table(self, topic: str):
        """A read-only latest-per-key view of ``topic`` (storage/table.py)."""
        from pylog.storage.table import Table
        return Table(self.topic(topic))

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"log {self._dir} is closed")

    def close(self) -> None:
        """Flush, seal, checkpoint, write the clean marker (last), unlock.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._transactions is not None:
            self._transactions.close()
        if self._groups is not None:
            self._groups.close()
        if self._share_members is not None:
            self._share_members.close()
        if self._share_groups is not None:
            self._share_groups.close()
        if self.cleaner is not None:
            self.cleaner.stop()
        self._flusher.stop()
        parts = self._all_partitions()
        errors = []
        for p in parts:
            try:
                p.close()
            except Exception as e:          # keep closing the others
                errors.append(e)
        try:
            if not self._memory:
                self.write_checkpoints()
                if not errors and not any(p.fenced for p in parts):
                    files.atomic_write(self._dir / files.CLEAN_SHUTDOWN_FILE,
                                       b'{"version":0,"brokerEpoch":0}\n')
        finally:
            self._release_lock()
            if self._cleanup is not None:
                atexit.unregister(self._cleanup)
                self._cleanup()
        if errors:
            raise errors[0]

    def _simulate_crash(self) -> None:
        """For tests: leave the directory as kill -9 would (no barrier, no seal, no
        checkpoint, no marker), close fds and release the lock so it can be reopened."""
        with self._lock:
            self._closed = True
        if self._transactions is not None:
            self._transactions.close()
        if self._groups is not None:
            self._groups.close()
        if self._share_groups is not None:
            self._share_groups.close()
        if self.cleaner is not None:
            self.cleaner.stop()
        self._flusher.stop()
        for p in self._all_partitions():
            p._abandon()
        self._release_lock()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Log":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self._memory else str(self._dir)
        return f"Log({where}, topics={len(self._topics)})"


def _memory_dir() -> str:
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        try:
            return tempfile.mkdtemp(prefix="pylog-mem-", dir=shm)
        except OSError:
            pass
    return tempfile.mkdtemp(prefix="pylog-mem-")


def open_log(path: str | os.PathLike | None = None, **options) -> Log:
    """Open (creating if needed) the data directory at ``path``; None = in-memory."""
    return Log(path, **options)
