"""PCGrad: the hand example, the paper's Algorithm 1 written literally, its invariants, dtype, bad input."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import pcgrad, pcgrad_coefficients, pcgrad_projected
from tinymtt.mtl.pcgrad import partner_order
from tinymtt.validation import ShapeError

from helpers import host


def literal_pcgrad(grads, order):
    """Algorithm 1 of Yu et al., one vector at a time, in float64 on the host (the reference)."""
    grads = np.asarray(host(grads), dtype=np.float64)
    projected = grads.copy()
    for i in range(len(grads)):
        for j in order[i]:
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] -= dot / (grads[j] @ grads[j]) * grads[j]
    return projected


def gradients(num_tasks, size, seed, shared=0.5, dtype=np.float64):
    """Random task gradients with a common part: some pairs conflict, some do not."""
    rng = np.random.default_rng(seed)
    return backend.to_device(rng.standard_normal((num_tasks, size)) + shared * rng.standard_normal(size), dtype=dtype)


def test_hand_example():
    # g1 = (1, 0), g2 = (−1, 1): g1·g2 = −1 < 0.
    # g1^PC = g1 − (−1/‖g2‖²) g2 = (½, ½) = g1 + ½g2;   g2^PC = g2 − (−1/‖g1‖²) g1 = (0, 1) = g1 + g2
    # d = (½, 3/2) = 2 g1 + 3/2 g2
    grads = backend.to_device(np.array([[1.0, 0.0], [-1.0, 1.0]]))
    assert np.array_equal(host(pcgrad_projected(grads)), [[0.5, 0.5], [0.0, 1.0]])
    assert np.array_equal(host(pcgrad(grads)), [0.5, 1.5])
    assert np.array_equal(host(pcgrad_coefficients(grads)), [2.0, 1.5])


@pytest.mark.parametrize("num_tasks, size", [(1, 4), (2, 3), (3, 7), (4, 20), (6, 5)])
@pytest.mark.parametrize("rng", [None, 11])
def test_equals_the_literal_algorithm(num_tasks, size, rng):
    for seed in range(5):
        grads = gradients(num_tasks, size, seed)
        expected = literal_pcgrad(grads, partner_order(num_tasks, rng))
        assert rel_error(pcgrad_projected(grads, rng), expected) <= 1e-12
        assert rel_error(pcgrad(grads, rng), expected.sum(axis=0)) <= 1e-12
        assert rel_error(host(pcgrad_coefficients(grads, rng)) @ host(grads), expected.sum(axis=0)) <= 1e-12


def test_partner_order():
    fixed = partner_order(4)
    assert fixed.tolist() == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]
    shuffled = partner_order(4, np.random.default_rng(0))
    for i, row in enumerate(shuffled):
        assert sorted(row.tolist()) == [j for j in range(4) if j != i]
    orders = {tuple(partner_order(5, seed).ravel()) for seed in range(10)}
    assert len(orders) > 1                                            # the shuffle does shuffle
    assert np.array_equal(partner_order(5, 3), partner_order(5, 3))  # and is seeded


def test_gradients_without_conflict_are_unchanged():
    grads = backend.to_device(np.abs(np.random.default_rng(0).standard_normal((4, 9))))   # every g_i·g_j > 0
    assert np.array_equal(host(pcgrad_projected(grads, rng=0)), host(grads))
    assert rel_error(pcgrad(grads), host(grads).sum(axis=0)) <= 1e-15
    # a task orthogonal to all others (dot 0: not a conflict) is unchanged too, while two others conflict
    mixed = backend.to_device(np.array([[1.0, 0.0, 0.0], [-1.0, 0.5, 0.0], [0.0, 0.0, 2.0]]))
    projected = host(pcgrad_projected(mixed))
    assert np.array_equal(projected[2], [0.0, 0.0, 2.0])
    assert not np.array_equal(projected[0], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("seed", range(20))
def test_no_conflict_with_the_gradient_projected_against(seed):
    original = host(gradients(2, 6, seed, shared=0.0))
    projected = host(pcgrad_projected(backend.to_device(original)))
    scale = np.abs(original).max() ** 2
    # two tasks: each is projected against the other, so no pair conflicts afterwards
    assert projected[0] @ original[1] >= -1e-12 * scale and projected[1] @ original[0] >= -1e-12 * scale
    if original[0] @ original[1] < 0:
        assert abs(projected[0] @ original[1]) <= 1e-12 * scale      # exactly orthogonal after the projection
    # more tasks: the last partner each task was projected against is never conflicted with
    for num_tasks in (3, 5):
        original = host(gradients(num_tasks, 8, seed, shared=0.0))
        order = partner_order(num_tasks, seed)
        projected = host(pcgrad_projected(backend.to_device(original), rng=seed))
        last = order[:, -1]
        dots = np.einsum("ij,ij->i", projected, original[last])
        assert (dots >= -1e-12 * np.abs(original).max() ** 2).all(), dots


def test_conflict_changes_the_update():
    grads = gradients(3, 10, 4, shared=0.0)
    gram = host(grads) @ host(grads).T
    assert (gram[np.triu_indices(3, 1)] < 0).any()
    assert rel_error(pcgrad(grads), host(grads).sum(axis=0)) > 1e-2


def test_zero_row_stays_zero_and_changes_nothing():
    grads = host(gradients(3, 6, 1))
    with_zero = np.vstack([grads[:1], np.zeros((1, 6)), grads[1:]])
    projected = host(pcgrad_projected(backend.to_device(with_zero)))
    assert np.array_equal(projected[1], np.zeros(6))
    assert rel_error(projected[[0, 2, 3]], host(pcgrad_projected(backend.to_device(grads)))) <= 1e-15


def test_float32_stays_float32():
    grads = gradients(3, 8, 0, dtype=np.float32)
    for result in (pcgrad(grads), pcgrad_projected(grads), pcgrad_coefficients(grads)):
        assert result.dtype == np.float32
    assert rel_error(pcgrad(grads), pcgrad(grads.astype(np.float64))) <= 1e-5


def test_input_is_not_modified():
    grads = gradients(4, 5, 2)
    before = host(grads).copy()
    pcgrad(grads, rng=1)
    pcgrad_projected(grads)
    assert np.array_equal(host(grads), before)


@pytest.mark.parametrize("bad, error, message", [
    (np.ones(3), ShapeError, "grads must have 2 dimensions"),
    (np.ones((2, 3), dtype=np.int64), TypeError, "grads must be a floating-point array"),
    (np.ones((0, 3)), ShapeError, "at least one task"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "grads holds NaN or inf"),
    ([[1.0, 0.0]], TypeError, "grads must be a NumPy or CuPy array"),
])
def test_bad_input_is_named(bad, error, message):
    bad = backend.to_device(bad) if isinstance(bad, np.ndarray) else bad
    with pytest.raises(error, match=message):
        pcgrad(bad)
