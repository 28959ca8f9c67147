"""Transactions: AddPartitionsToTxn (24), AddOffsetsToTxn (25), EndTxn (26),
TxnOffsetCommit (28), DescribeTransactions (65), ListTransactions (66).

The coordinator is ``log.transactions`` (broker/transactions.py); InitProducerId with
a transactional id is in producer_ids.py, transactional Produce in produce.py, and
``read_committed`` Fetch in fetch.py.  Every handler answers once what it wrote to
``__transaction_state`` (and, for EndTxn, the markers) is as durable as those topics'
flush policy promises: the coordinator returns futures and the response is
``Applied`` until they resolve.

Versions: every version kio has is served and advertised.  AddPartitionsToTxn v4+ is
the brokers' batched form (KIP-890; ``verify_only`` included), which clients do not
send; EndTxn v5 and TxnOffsetCommit v5 belong to transaction protocol 2 (KIP-890 part
2: an epoch bump per transaction), which clients use only when the broker finalizes
the ``transaction.version`` feature at 2 — pylog finalizes no such feature, so
clients stay on protocol 1 (v5 requests are answered with protocol-1 semantics).
Errors are Kafka's: INVALID_PRODUCER_ID_MAPPING (49), PRODUCER_FENCED
(90; INVALID_PRODUCER_EPOCH 47 for the versions before it existed, < v2 of
AddPartitions/AddOffsets/EndTxn), CONCURRENT_TRANSACTIONS (51, retriable),
INVALID_TXN_STATE (48), COORDINATOR_LOAD_IN_PROGRESS (14).

ACLs (Kafka's): WRITE on the TRANSACTIONAL_ID (TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
53); AddPartitionsToTxn also WRITE on each topic (29); AddOffsetsToTxn and
TxnOffsetCommit READ on the group (30); DescribeTransactions DESCRIBE on the id;
ListTransactions lists what DESCRIBE allows.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import re

from pylog.broker.transactions import STATE_NAMES
from pylog.errors import PylogError

from .dispatch import ApiSpec, Applied, register
from .messages import ZERO_MS, build, error_code, ms, response_module

log = logging.getLogger("pylog.server.kafka")

ADD_PARTITIONS, ADD_OFFSETS, END_TXN, TXN_OFFSET_COMMIT = 24, 25, 26, 28
DESCRIBE_TXNS, LIST_TXNS = 65, 66
READ, WRITE, DESCRIBE = 3, 4, 8
TOPIC, GROUP, TRANSACTIONAL_ID = 2, 3, 5
TOPIC_DENIED, GROUP_DENIED, TXN_ID_DENIED = 29, 30, 53
PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, UNKNOWN = 90, 47, -1


def _code(exc: Exception, ctx, fenced_from: int = 2) -> int:
    """Kafka's code for ``exc``; PRODUCER_FENCED is INVALID_PRODUCER_EPOCH for the
    versions that predate it (AK ``Errors.PRODUCER_FENCED`` compatibility)."""
    if not isinstance(exc, PylogError):
        log.exception("transaction request failed", exc_info=exc)
        return UNKNOWN
    if exc.errno == PRODUCER_FENCED and ctx.version < fenced_from:
        return INVALID_PRODUCER_EPOCH
    return exc.errno


def _answer(futures, respond):
    """The response now, or Applied until ``futures`` (concurrent) resolve; a failed
    future turns into its error code."""
    pending = [f for f in futures if not f.done()]
    failed = next((f.exception() for f in futures if f.done() and f.exception()), None)
    if not pending:
        return respond(_errno(failed))

    async def later():
        exc = None
        for f in pending:
            try:
                await asyncio.wrap_future(f)
            except Exception as e:    # noqa: BLE001 -- reported as the response's code
                exc = exc or e
        return respond(_errno(exc or failed))
    return Applied(later())


def _errno(exc) -> int:
    if exc is None:
        return 0
    return exc.errno if isinstance(exc, PylogError) else 56      # KAFKA_STORAGE_ERROR


# -- AddPartitionsToTxn ------------------------------------------------------------------------
def _add_one(ctx, txn_id, pid, epoch, topics, verify_only=False):
    """(code for every (topic, partition), futures)."""
    wanted = [(t.name, i) for t in topics for i in t.partitions]
    if not ctx.allowed(WRITE, TRANSACTIONAL_ID, txn_id):
        return {tp: TXN_ID_DENIED for tp in wanted}, []
    denied = {t.name for t in topics if not ctx.allowed(WRITE, TOPIC, t.name)}
    if denied:
        return {tp: TOPIC_DENIED if tp[0] in denied else 55 for tp in wanted}, []
    coord = ctx.broker.log.transactions
    try:
        return coord.add_partitions(txn_id, pid, epoch, wanted, verify_only)
    except Exception as exc:          # noqa: BLE001 -- one code for every partition
        code = _code(exc, ctx)
        return {tp: code for tp in wanted}, []


def _topic_results(mod, codes):
    by_topic: dict[str, list] = {}
    for (topic, i), code in codes.items():
        by_topic.setdefault(topic, []).append(build(
            mod.AddPartitionsToTxnPartitionResult, partition_index=i,
            partition_error_code=error_code(code)))
    return tuple(build(mod.AddPartitionsToTxnTopicResult, name=t, results_by_partition=tuple(r))
                 for t, r in by_topic.items())


def handle_add_partitions(ctx, request):
    mod = response_module(ADD_PARTITIONS, ctx.version)
    if ctx.version <= 3:
        codes, futures = _add_one(ctx, request.v3_and_below_transactional_id,
                                  request.v3_and_below_producer_id,
                                  request.v3_and_below_producer_epoch,
                                  request.v3_and_below_topics)

        def respond(failed):
            out = {tp: c or failed for tp, c in codes.items()}
            return build(mod.AddPartitionsToTxnResponse, throttle_time=ZERO_MS,
                         results_by_topic_v3_and_below=_topic_results(mod, out))
        return _answer(futures, respond)
    results, futures = [], []
    for t in request.transactions:
        codes, futs = _add_one(ctx, t.transactional_id, t.producer_id, t.producer_epoch,
                               t.topics, t.verify_only)
        results.append((t.transactional_id, codes))
        futures += futs

    def respond_all(failed):
        return build(mod.AddPartitionsToTxnResponse, throttle_time=ZERO_MS,
                     error_code=error_code(0), results_by_transaction=tuple(
                         build(mod.AddPartitionsToTxnResult, transactional_id=txn_id,
                               topic_results=_topic_results(
                                   mod, {tp: c or failed for tp, c in codes.items()}))
                         for txn_id, codes in results))
    return _answer(futures, respond_all)


# -- AddOffsetsToTxn / EndTxn ------------------------------------------------------------------
def handle_add_offsets(ctx, request):
    mod = response_module(ADD_OFFSETS, ctx.version)

    def respond(code):
        return build(mod.AddOffsetsToTxnResponse, throttle_time=ZERO_MS,
                     error_code=error_code(code))
    if not ctx.allowed(WRITE, TRANSACTIONAL_ID, request.transactional_id):
        return respond(TXN_ID_DENIED)
    if not ctx.allowed(READ, GROUP, request.group_id):
        return respond(GROUP_DENIED)
    try:
        futures = ctx.broker.log.transactions.add_offsets(
            request.transactional_id, request.producer_id, request.producer_epoch,
            request.group_id)
    except Exception as exc:          # noqa: BLE001
        return respond(_code(exc, ctx))
    return _answer(futures, respond)


def handle_end_txn(ctx, request):
    mod = response_module(END_TXN, ctx.version)

    def respond(code):
        return build(mod.EndTxnResponse, throttle_time=ZERO_MS, error_code=error_code(code),
                     producer_id=request.producer_id, producer_epoch=request.producer_epoch)
    if not ctx.allowed(WRITE, TRANSACTIONAL_ID, request.transactional_id):
        return respond(TXN_ID_DENIED)
    try:
        futures = ctx.broker.log.transactions.end_txn(
            request.transactional_id, request.producer_id, request.producer_epoch,
            bool(request.committed))
    except Exception as exc:          # noqa: BLE001
        return respond(_code(exc, ctx))
    return _answer(futures, respond)


# -- TxnOffsetCommit ---------------------------------------------------------------------------
def handle_txn_offset_commit(ctx, request):
    mod = response_module(TXN_OFFSET_COMMIT, ctx.version)
    entries = [(t.name, p.partition_index, p.committed_offset,
                getattr(p, "committed_leader_epoch", -1), p.committed_metadata)
               for t in request.topics for p in t.partitions]

    def respond(code, per=None):
        topics: dict[str, list] = {}
        for name, i, *_ in entries:
            c = per.get((name, i), code) if per else code
            topics.setdefault(name, []).append(build(
                mod.TxnOffsetCommitResponsePartition, partition_index=i,
                error_code=error_code(c)))
        return build(mod.TxnOffsetCommitResponse, throttle_time=ZERO_MS, topics=tuple(
            build(mod.TxnOffsetCommitResponseTopic, name=n, partitions=tuple(ps))
            for n, ps in topics.items()))
    if not ctx.allowed(WRITE, TRANSACTIONAL_ID, request.transactional_id):
        return respond(TXN_ID_DENIED)
    if not ctx.allowed(READ, GROUP, request.group_id):
        return respond(GROUP_DENIED)
    per = {(name, i): TOPIC_DENIED for name, i, *_ in entries
           if not ctx.allowed(READ, TOPIC, name)}
    if per:
        return respond(0, per)
    code = _check_member(ctx, request)
    if code:
        return respond(code)
    try:
        futures = ctx.broker.log.transactions.commit_offsets(
            request.transactional_id, request.group_id, request.producer_id,
            request.producer_epoch, entries)
    except Exception as exc:          # noqa: BLE001
        return respond(_code(exc, ctx, fenced_from=3))
    return _answer(futures, respond)


def _check_member(ctx, request) -> int:
    """v3+: a member id and generation must be the group's current ones (Kafka's
    validateOffsetCommit); an empty member id with generation -1 is not checked."""
    member_id = getattr(request, "member_id", "") or ""
    generation = getattr(request, "generation_id", -1)
    if not member_id and generation < 0:
        return 0
    return ctx.broker.log.groups.check_member(
        request.group_id, generation, member_id, getattr(request, "group_instance_id", None))


# -- DescribeTransactions / ListTransactions ---------------------------------------------------
def handle_describe_transactions(ctx, request):
    mod = response_module(DESCRIBE_TXNS, ctx.version)
    coord = ctx.broker.log.transactions
    out = []
    for txn_id in request.transactional_ids:
        code, meta = 0, None
        if not ctx.allowed(DESCRIBE, TRANSACTIONAL_ID, txn_id):
            code = TXN_ID_DENIED
        else:
            try:
                meta = coord.describe(txn_id)
            except PylogError as exc:
                code = exc.errno
        if meta is None:
            out.append(build(mod.TransactionState, error_code=error_code(code),
                             transactional_id=txn_id, transaction_state="",
                             transaction_timeout=ms(0), transaction_start_time=_time(-1),
                             producer_id=-1, producer_epoch=-1, topics=()))
            continue
        with coord.lock:
            by_topic: dict[str, list[int]] = {}
            for topic, i in sorted(meta.partitions):
                by_topic.setdefault(topic, []).append(i)
            out.append(build(mod.TransactionState, error_code=error_code(0),
                             transactional_id=txn_id, transaction_state=meta.state_name,
                             transaction_timeout=ms(meta.timeout_ms),
                             transaction_start_time=_time(meta.start_ms),
                             producer_id=meta.producer_id,
                             producer_epoch=meta.producer_epoch,
                             topics=tuple(build(mod.TopicData, topic=t, partitions=tuple(ps))
                                          for t, ps in by_topic.items())))
    return build(mod.DescribeTransactionsResponse, throttle_time=ZERO_MS,
                 transaction_states=tuple(out))


_EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.timezone.utc)


def _time(ms_value: int):
    """A TZAware field from epoch ms; -1 (no transaction open) stays -1 on the wire."""
    return _EPOCH + datetime.timedelta(milliseconds=ms_value)


def handle_list_transactions(ctx, request):
    mod = response_module(LIST_TXNS, ctx.version)
    known = {name.lower(): name for name in STATE_NAMES.values()}
    states = [s for s in request.state_filters]
    unknown = tuple(s for s in states if s.lower() not in known)
    wanted = {known[s.lower()] for s in states if s.lower() in known}
    pids = set(request.producer_id_filters)
    duration = getattr(request, "duration_filter", -1)
    pattern = getattr(request, "transactional_id_pattern", None)
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error:
        return build(mod.ListTransactionsResponse, throttle_time=ZERO_MS,
                     error_code=error_code(42), unknown_state_filters=(),
                     transaction_states=())
    coord = ctx.broker.log.transactions
    now = datetime.datetime.now(tz=datetime.timezone.utc).timestamp() * 1000
    listed = []
    with coord.lock:
        for meta in coord.list():
            if (states and meta.state_name not in wanted) or (pids and meta.producer_id not in
                                                              pids):
                continue
            if duration >= 0 and (meta.start_ms < 0 or now - meta.start_ms < duration):
                continue
            if regex is not None and not regex.fullmatch(meta.transactional_id):
                continue
            if not ctx.allowed(DESCRIBE, TRANSACTIONAL_ID, meta.transactional_id):
                continue
            listed.append(build(mod.TransactionState, transactional_id=meta.transactional_id,
                                producer_id=meta.producer_id,
                                transaction_state=meta.state_name))
    return build(mod.ListTransactionsResponse, throttle_time=ZERO_MS, error_code=error_code(0),
                 unknown_state_filters=unknown, transaction_states=tuple(listed))


register(ApiSpec(ADD_PARTITIONS, "AddPartitionsToTxn", range(0, 6), 5, handle_add_partitions),
         ApiSpec(ADD_OFFSETS, "AddOffsetsToTxn", range(0, 5), 4, handle_add_offsets),
         ApiSpec(END_TXN, "EndTxn", range(0, 6), 5, handle_end_txn),
         ApiSpec(TXN_OFFSET_COMMIT, "TxnOffsetCommit", range(0, 6), 5,
                 handle_txn_offset_commit),
         ApiSpec(DESCRIBE_TXNS, "DescribeTransactions", range(0, 1), 0,
                 handle_describe_transactions),
         ApiSpec(LIST_TXNS, "ListTransactions", range(0, 3), 2, handle_list_transactions))
