"""models.batching: forward passes of similar-length rows, capped by rows and by padded tokens, and
results back in input order."""
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
