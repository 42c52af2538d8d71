"""models.batching: forward passes of similar-length rows, capped by rows and by padded tokens, and
results back in input order."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from models.batching import run_batched, sorted_batches


def rows(*lengths):
    return [[i + 1] * n for i, n in enumerate(lengths)]


def passes(token_ids, batch_size, max_tokens=None):
    return [(idx.tolist(), ids.shape) for idx, ids, _ in sorted_batches(token_ids, batch_size, max_tokens)]


def test_rows_are_sorted_by_length_and_cut_by_the_row_cap():
    assert passes(rows(5, 1, 3, 2), 2) == [([1, 3], (2, 2)), ([2, 0], (2, 5))]


def test_a_token_budget_closes_a_pass_before_its_padded_size_exceeds_it():
    # sorted lengths 2, 2, 3, 8, 9: [2, 2, 3] pads to 9 tokens, adding the 8 would pad to 32
    ids = rows(8, 2, 3, 2, 9)
    assert passes(ids, 64, max_tokens=12) == [([1, 3, 2], (3, 3)), ([0], (1, 8)), ([4], (1, 9))]
    # the row cap still applies under the budget
    assert [len(i) for i, _ in passes(ids, 2, max_tokens=1000)] == [2, 2, 1]


def test_a_row_longer_than_the_budget_still_runs_alone():
    assert passes(rows(40, 3), 64, max_tokens=16) == [([1], (1, 3)), ([0], (1, 40))]


@pytest.mark.parametrize("batch_size, max_tokens", [(1, None), (3, None), (64, 10), (64, 1000)])
def test_results_come_back_in_input_order_whatever_the_passes(batch_size, max_tokens):
    ids = rows(7, 1, 4, 4, 9, 2, 6)
    # each row's output is its first token and its real length: order errors would show
    out = run_batched(lambda i, m: (np.stack([i[:, 0], m.sum(axis=1)], axis=1).astype(np.float32),), ids,
                      batch_size, max_tokens)[0]
    np.testing.assert_array_equal(out, [[k + 1, len(t)] for k, t in enumerate(ids)])


@pytest.mark.parametrize("batch_size, in_flight", [(1, 1), (1, 3), (2, 2), (64, 8)])
def test_passes_run_side_by_side_on_a_pool_come_back_in_input_order_too(batch_size, in_flight):
    ids = rows(7, 1, 4, 4, 9, 2, 6)
    seen = []

    def fn(i, m):
        seen.append(threading.get_ident())
        return (np.stack([i[:, 0], m.sum(axis=1)], axis=1).astype(np.float32),)

    with ThreadPoolExecutor(2) as pool:
        out = run_batched(fn, ids, batch_size, pool=pool, in_flight=in_flight)[0]
    np.testing.assert_array_equal(out, [[k + 1, len(t)] for k, t in enumerate(ids)])
    assert threading.get_ident() not in seen  # every pass ran on the pool's threads


def test_side_by_side_passes_start_longest_first_within_what_is_in_flight():
    started = []

    def fn(i, m):
        started.append(i.shape[1])
        return (np.zeros((len(i), 1), np.float32),)

    with ThreadPoolExecutor(1) as pool:  # one thread: the start order is the submission order
        run_batched(fn, rows(1, 2, 3, 4, 5, 6), 1, pool=pool, in_flight=3)
    assert started == [3, 2, 1, 6, 5, 4]


def test_an_error_in_a_pass_on_the_pool_reaches_the_caller():
    def fn(i, m):
        if i.shape[1] == 4:
            raise RuntimeError("bad pass")
        return (np.zeros((len(i), 1), np.float32),)

    with ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError, match="bad pass"):
        run_batched(fn, rows(1, 4, 2), 1, pool=pool)
