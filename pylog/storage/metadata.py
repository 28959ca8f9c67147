"""``topic-metadata.json`` and its previous generation ``topic-metadata.json.prev``
(FORMAT.md section 9): which topics exist, their partition counts and config overrides.

    {"crc32c": 1609324084, "topics": {"orders": {"config": {"retention.ms": 86400000},
                                                 "partitions": 3}}, "version": 1}

``crc32c`` is the CRC-32C (pylog.crc) of the *canonical* JSON of the document without
it (``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)``), so damage
that leaves valid JSON (a digit flipped, a key changed) is detected.  Files written
before the field existed (version 1, no ``crc32c``) are read as before, strictly.

Writing (``write``), as steps: if the current main file passes its check, copy it to
``.prev`` (tmp -> fsync -> rename -> fsync(dir)); then replace the main file the same
way.  ``.prev`` is therefore the generation before the main one, one metadata change
behind it (a topic created, deleted or reconfigured, partitions added).

Reading (``load``), the fallback order:
1. the main file, if it passes its check;
2. else ``.prev``, reconciled with the partition directories: a topic with directories
   but absent from ``.prev`` (created by the last write) is recovered with its partition
   count from the directories and default configs; a partition count grows to cover
   every ``<topic>-<n>`` directory; a topic of ``.prev`` without any directory (deleted
   by the last write) is not restored;
3. else the partition directories alone (topic names and partition counts, default
   configs).
Every step past 1 is described in ``Recovered.notes`` (the caller logs them at
WARNING); nothing here deletes data.  Refused with StorageError (nothing is guessed):
a file whose checksum is right but whose content this pylog cannot use (a newer
version, a config it does not know), or a file it may not read (permissions).
``rebuild`` moves a damaged main file to ``<data>/quarantine/metadata/`` and writes
the recovered generation.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

from pylog.config import TopicConfig
from pylog.crc import crc32c
from pylog.errors import InvalidConfigError, InvalidTopicError, StorageError
from pylog.storage import files
from pylog.storage.quarantine import Quarantine

__all__ = ["METADATA_VERSION", "PREV_FILE", "Generation", "Recovered", "encode",
           "read_generation", "partition_dirs", "load", "write", "rebuild"]

METADATA_VERSION = 1
PREV_FILE = files.METADATA_FILE + ".prev"
_KEYS = {"version", "topics"}


_log = logging.getLogger("pylog.manager")

def _canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def encode(topics: dict[str, tuple[int, TopicConfig]]) -> bytes:
    """The file's bytes for {name: (partitions, config)}, checksum included."""
    doc = {"version": METADATA_VERSION, "topics": {
        name: {"partitions": n, "config": cfg.to_dict(only_explicit=True)}
        for name, (n, cfg) in sorted(topics.items())}}
    doc["crc32c"] = crc32c(_canonical(doc))
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


@dataclass
class Generation:
    """One metadata file as read: ``topics`` when usable, else why not."""
    name: str                                   # file name in the data directory
    topics: dict[str, tuple[int, TopicConfig]] | None = None
    missing: bool = False
    problem: str | None = None                  # damaged: fall back
    refuse: str | None = None                   # intact but unusable: refuse to guess

    @property
    def ok(self) -> bool:
        return self.topics is not None


def read_generation(data_dir, name: str = files.METADATA_FILE) -> Generation:
    """Read and check one generation (the main file or ``PREV_FILE``)."""
    g = Generation(name)
    path = os.path.join(data_dir, name)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        g.missing = True
        return g
    except PermissionError as e:
        g.refuse = f"cannot read it: {e.strerror}"
        return g
    except OSError as e:                          # EIO, EISDIR: the file is damaged
        g.problem = f"cannot read it: {e.strerror or e}"
        return g
    doc, checked, g.problem = _parse(raw)
    if g.problem:
        return g
    extra = set(doc) - _KEYS
    if extra:
        g.problem = f"unknown top-level key(s) {sorted(extra)}"
    elif doc.get("version") != METADATA_VERSION:
        why = (f"version {doc.get('version')!r} (this pylog reads version "
               f"{METADATA_VERSION})")
        if checked:
            g.refuse = why + ": written by a newer pylog?"
        else:
            g.problem = "unsupported or missing " + why
    if g.problem or g.refuse:
        return g
    try:
        g.topics = _topics(doc.get("topics"))
    except ValueError as e:
        if checked:
            g.refuse = str(e)
        else:
            g.problem = str(e)
    return g


def _parse(raw: bytes) -> tuple[dict | None, bool, str | None]:
    """(document without crc32c, whether it had a matching one, problem or None)."""
    if not raw.strip():
        return None, False, "empty" if not raw else "blank"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return None, False, f"not valid JSON: {e}"
    if not isinstance(doc, dict):
        return None, False, "not a JSON object"
    if "crc32c" not in doc:
        return doc, False, None
    stored = doc.pop("crc32c")
    try:
        want = crc32c(_canonical(doc))
    except ValueError as e:                       # NaN/Infinity: not what we write
        return None, False, f"not canonical JSON: {e}"
    if stored != want or type(stored) is not int:
        return None, False, f"checksum mismatch (crc32c {stored!r} stored, {want} computed)"
    return doc, True, None


def _topics(topics) -> dict[str, tuple[int, TopicConfig]]:
    if not isinstance(topics, dict):
        raise ValueError("'topics' is not an object")
    out = {}
    for name, entry in topics.items():
        try:
            files.validate_topic_name(name)
            if not isinstance(entry, dict):
                raise ValueError("entry is not an object")
            extra = set(entry) - {"partitions", "config"}
            if extra:
                raise ValueError(f"unknown key(s) {sorted(extra)}")
            n = entry.get("partitions")
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 100_000:
                raise ValueError(f"partitions {n!r} is not an integer from 1 to 100000")
            cfg = entry.get("config") or {}
            if not isinstance(cfg, dict):
                raise ValueError("config is not an object")
            config, refused = TopicConfig.from_stored(cfg)
            for why in refused:         # accepted by an older pylog, refused now
                _log.warning("topic %s: %s (kept as stored; not applied)", name, why)
            out[name] = (n, config)
        except (InvalidTopicError, InvalidConfigError, ValueError, TypeError) as e:
            raise ValueError(f"topic {name!r}: {e}") from None
    return out


def partition_dirs(data_dir) -> dict[str, list[int]]:
    """{topic: sorted partition numbers} of the ``<topic>-<n>`` directories that hold
    a segment file (pylog creates one with every partition directory; a directory
    without any is not taken for a partition, and left alone)."""
    out: dict[str, list[int]] = {}
    for entry in sorted(os.listdir(data_dir)):
        tp = files.parse_partition_dir(entry)
        path = os.path.join(data_dir, entry)
        if tp is not None and os.path.isdir(path) and any(
                files.parse_base_offset(n) for n in os.listdir(path)):
            out.setdefault(tp[0], []).append(tp[1])
    return {t: sorted(ps) for t, ps in out.items()}


@dataclass
class Recovered:
    """What ``load`` decided: the topics to open and where they came from."""
    topics: dict[str, tuple[int, TopicConfig]]
    source: str                   # "main", "prev", "dirs", or "none" (nothing written)
    damaged: str | None = None    # why the main file was not used
    notes: list[str] = field(default_factory=list)

    @property
    def needs_rewrite(self) -> bool:
        return self.source in ("prev", "dirs")


def load(data_dir) -> Recovered:
    """The topics of ``data_dir`` by the fallback order (module doc); read-only."""
    main = read_generation(data_dir)
    if main.refuse:
        raise StorageError(f"{os.path.join(data_dir, main.name)}: unusable topic "
                           f"metadata, refusing to guess: {main.refuse}")
    if main.ok:
        return Recovered(main.topics, "main")
    dirs = partition_dirs(data_dir)
    prev = read_generation(data_dir, PREV_FILE)
    if main.missing and prev.missing and all(
            files.holds_no_records(os.path.join(data_dir, f"{t}-{p}"))
            for t, ps in dirs.items() for p in ps):
        # never written (a new directory), or an older pylog's first topic creation
        # interrupted before its metadata: there is nothing to recover
        return Recovered({}, "none")
    why = "missing" if main.missing else main.problem
    rec = Recovered({}, "prev", damaged=why)
    if prev.refuse:
        raise StorageError(f"{files.METADATA_FILE} is {why} and {PREV_FILE} is unusable, "
                           f"refusing to guess: {prev.refuse}")
    if prev.ok:
        rec.notes.append(f"{files.METADATA_FILE} is {why}: using the previous generation "
                         f"{PREV_FILE} ({len(prev.topics)} topics; a change made by the "
                         f"last metadata write may be missing), reconciled with the "
                         f"partition directories")
        base = prev.topics
    else:
        rec.source = "dirs"
        prev_why = "missing" if prev.missing else prev.problem
        rec.notes.append(f"{files.METADATA_FILE} is {why} and {PREV_FILE} is {prev_why}: "
                         f"rebuilt from the partition directories; topic configs were "
                         f"reset to the defaults")
        base = {}
    for name, (n, cfg) in sorted(base.items()):
        if name not in dirs:
            rec.notes.append(f"topic {name!r} is in {PREV_FILE} but has no partition "
                             f"directory (deleted after that generation): not restored")
            continue
        top = dirs[name][-1] + 1
        if top > n:
            rec.notes.append(f"topic {name!r}: {top} partitions from its directories "
                             f"({PREV_FILE} says {n})")
        rec.topics[name] = (max(n, top), cfg)
    for name, ps in sorted(dirs.items()):
        if name in rec.topics:
            continue
        n = ps[-1] + 1
        rec.topics[name] = (n, TopicConfig())
        gaps = sorted(set(range(n)) - set(ps))
        rec.notes.append(f"topic {name!r} recovered from its partition directories: {n} "
                         f"partitions, default configs"
                         + (f" (partitions {gaps} had no directory)" if gaps else ""))
    return rec


def write(data_dir, topics: dict[str, tuple[int, TopicConfig]]) -> None:
    """Replace the main file, keeping the current one (if it passes) as ``.prev``."""
    main = os.path.join(data_dir, files.METADATA_FILE)
    try:
        with open(main, "rb") as fh:
            current = fh.read()
    except FileNotFoundError:
        current = None
    if current is not None and _passes(data_dir, current):
        files.atomic_write(os.path.join(data_dir, PREV_FILE), current)
    files.atomic_write(main, encode(topics))


def _passes(data_dir, raw: bytes) -> bool:
    # A matching checksum is enough for a file this module wrote (no per-topic
    # validation on every write: a server may hold thousands of topics).
    doc, checked, problem = _parse(raw)
    if problem:
        return False
    if checked:
        return set(doc) == _KEYS and doc.get("version") == METADATA_VERSION
    return read_generation(data_dir).ok


def rebuild(data_dir, rec: Recovered, by: str) -> str | None:
    """Write ``rec.topics`` as the main file after moving a damaged one to
    ``<data>/quarantine/metadata/``; returns the quarantined copy's path."""
    path = os.path.join(data_dir, files.METADATA_FILE)
    kept = None
    if rec.damaged and os.path.lexists(path):
        q = Quarantine(data_dir, by=by)
        kept = q.move_file("metadata", path, {"reason": f"{files.METADATA_FILE} "
                                              f"{rec.damaged}", "recovered_from":
                                              rec.source})
        q.sync()
    write(data_dir, rec.topics)
    return kept
