"""Mixed latent sizes: micro-batches hold one size only, every image once per epoch, seeded and
resumable (hn_core.training.batch_plan.bucketed_micro_batches). Plus dropout metadata parity."""
from __future__ import annotations

from collections import Counter

import pytest

from hn_core.training import build_config
from hn_core.training.batch_plan import bucketed_micro_batches, micro_batches

# 7 images: 3 of one size, 4 of another, interleaved as a folder listing might give them.
KEYS = [(4, 8, 8), (4, 16, 8), (4, 8, 8), (4, 16, 8), (4, 16, 8), (4, 8, 8), (4, 16, 8)]


@pytest.mark.parametrize("batch_size, accumulation", [(1, 1), (2, 1), (2, 3), (3, 2), (4, 1)])
def test_a_micro_batch_never_mixes_sizes_and_every_epoch_sees_every_image_once(batch_size, accumulation):
    per_epoch = sum(-(-n // batch_size) for n in Counter(KEYS).values())  # batches in one epoch
    batches = [batch for step in range(per_epoch * 3) for batch in
               bucketed_micro_batches(5, step, KEYS, batch_size, accumulation)]
    for batch in batches:
        assert len({KEYS[i] for i in batch}) == 1 and 1 <= len(batch) <= batch_size
    for epoch in range(3 * accumulation):
        seen = [i for batch in batches[epoch * per_epoch:(epoch + 1) * per_epoch] for i in batch]
        assert sorted(seen) == list(range(len(KEYS)))


def test_bucketed_batches_depend_on_seed_and_step_only():
    plan = [bucketed_micro_batches(3, step, KEYS, 2, 2) for step in range(12)]
    assert plan == [bucketed_micro_batches(3, step, KEYS, 2, 2) for step in reversed(range(12))][::-1]
    assert plan != [bucketed_micro_batches(4, step, KEYS, 2, 2) for step in range(12)]
    # the sizes' order in the item list does not matter, only which item has which size
    assert bucketed_micro_batches(3, 5, list(KEYS), 2, 2) == plan[5]


def test_one_size_is_the_plain_shuffled_stream():
    keys = [(4, 8, 8)] * 5
    for step in range(6):
        assert bucketed_micro_batches(9, step, keys, 2, 2) == micro_batches(9, step, 5, 2, 2)


def test_both_sizes_are_visited_in_a_seeded_interleaving():
    firsts = [KEYS[bucketed_micro_batches(seed, 0, KEYS, 2, 1)[0][0]] for seed in range(40)]
    assert set(firsts) == {(4, 8, 8), (4, 16, 8)}


# --- metadata parity --------------------------------------------------------------------------

@pytest.mark.parametrize("structure, dropout, expected", [
    ("1, 2, 1", "0, 0.1, 0", True),
    ("1, 2, 2, 1", "0, 0.1, 0, 0", False),
    ("1, 2, 2, 1", "0, 0, 0.2, 0", True),
    ("1, 1", "0, 0", False),
])
def test_explicit_dropout_writes_last_layer_dropout_as_a1111_does(structure, dropout, expected):
    # A1111 stores last_layer_dropout = dropout_structure[-2] != 0 for an explicit structure.
    config = build_config(structure, "relu", "Normal", False, "off", dropout, False)
    assert config.last_layer_dropout is expected
