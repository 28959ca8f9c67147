"""Idempotent-producer state: duplicates, sequence gaps, epochs, id persistence."""
import pytest

from pylog.broker.producers import (HIGH_WATER_FILE, ID_BLOCK, PartitionProducerState,
                                    ProducerStateManager, next_sequence)
from pylog.errors import InvalidProducerEpochError, OutOfOrderSequenceError


def appended(state, pid, epoch, first, last, base):
    assert state.check(pid, epoch, first, last) is None
    state.update(pid, epoch, first, last, base, base + last - first, 0)


def test_retry_of_a_retained_batch_returns_its_original_offsets():
    s = PartitionProducerState()
    appended(s, 7, 0, 0, 9, 100)
    appended(s, 7, 0, 10, 19, 110)
    dup = s.check(7, 0, 0, 9)
    assert (dup.base_offset, dup.last_offset) == (100, 109)


def test_only_the_last_five_batches_are_retained():
    s = PartitionProducerState()
    for i in range(6):
        appended(s, 1, 0, i * 10, i * 10 + 9, i * 10)
    assert s.check(1, 0, 10, 19) is not None
    with pytest.raises(OutOfOrderSequenceError):
        s.check(1, 0, 0, 9)        # fell out of the window: no longer a known retry


def test_sequence_gap_is_out_of_order():
    s = PartitionProducerState()
    appended(s, 1, 0, 0, 4, 0)
    with pytest.raises(OutOfOrderSequenceError):
        s.check(1, 0, 6, 6)


def test_unknown_producer_is_accepted_at_any_sequence():
    assert PartitionProducerState().check(5, 0, 1234, 1240) is None


def test_older_epoch_is_fenced_and_a_new_epoch_must_start_at_zero():
    s = PartitionProducerState()
    appended(s, 1, 3, 0, 0, 0)
    with pytest.raises(InvalidProducerEpochError):
        s.check(1, 2, 1, 1)
    with pytest.raises(OutOfOrderSequenceError):
        s.check(1, 4, 5, 5)
    appended(s, 1, 4, 0, 0, 1)


def test_sequences_wrap_after_int32_max():
    assert next_sequence(2**31 - 1, 1) == 0
    assert next_sequence(2**31 - 3, 5) == 2
    s = PartitionProducerState()
    appended(s, 1, 0, 2**31 - 2, 2**31 - 1, 0)
    appended(s, 1, 0, 0, 3, 2)


def test_producer_ids_are_never_reused_across_restarts(tmp_path):
    m = ProducerStateManager(tmp_path)
    first = [m.allocate_id() for _ in range(3)]
    assert first == [0, 1, 2]
    assert int((tmp_path / HIGH_WATER_FILE).read_text()) == ID_BLOCK
    again = ProducerStateManager(tmp_path)        # a crash after handing out 3 ids
    assert again.allocate_id() == ID_BLOCK


def test_in_memory_manager_allocates_without_a_file():
    m = ProducerStateManager(None)
    assert [m.allocate_id() for _ in range(ID_BLOCK + 2)][-1] == ID_BLOCK + 1


class _Headers:
    topic, partition = "t", 0

    def __init__(self, headers):
        self._h = headers

    def iter_batch_headers(self, start_offset=None):
        return iter(self._h)


def test_state_is_rebuilt_from_batch_headers():
    from pylog.records import BatchHeader
    h = [BatchHeader(0, 100, 0, 2, 0, 0, 4, 0, 0, 9, 0, 0, 5),
         BatchHeader(5, 100, 0, 2, 0, 0, 0, 0, 0, -1, -1, -1, 1),
         BatchHeader(6, 100, 0, 2, 0, 0, 2, 0, 0, 9, 0, 5, 3)]
    s = ProducerStateManager(None).for_partition(_Headers(h))
    assert s.check(9, 0, 5, 7).base_offset == 6
    assert s.check(9, 0, 8, 8) is None
