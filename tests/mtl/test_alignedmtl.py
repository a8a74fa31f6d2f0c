"""Aligned-MTL: by hand, the aligned system's condition number 1, rank-deficient gradients, scale."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import aligned_gradients, alignedmtl, alignedmtl_coefficients
from tinymtt.mtl.alignedmtl import alignment_matrix

from helpers import host


def gradients(num_tasks, size, seed, shared=0.5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((num_tasks, size)) + shared * rng.standard_normal(size)


def test_by_hand():
    # g1 = (1, 0), g2 = (0, 2): K = diag(1, 4), λ_min = 1, B = diag(1, ½): ĝ = (1, 0), (0, 1), d = (1, 1)
    grads = backend.to_device(np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert rel_error(alignment_matrix(np.diag([1.0, 4.0])), np.diag([1.0, 0.5])) <= 1e-15
    assert rel_error(alignedmtl(grads), [1.0, 1.0]) <= 1e-15
    # one task: ĝ = g (σ = ‖g‖, B = 1)
    assert rel_error(alignedmtl(backend.to_device(np.array([[3.0, -4.0]]))), [3.0, -4.0]) <= 1e-15


@pytest.mark.parametrize("num_tasks, size", [(2, 5), (4, 20), (6, 50)])
def test_the_aligned_gradients_are_orthogonal_and_of_one_length(num_tasks, size):
    for seed in range(3):
        grads = gradients(num_tasks, size, seed)
        eigenvalues = np.linalg.eigvalsh(grads @ grads.T)
        aligned = host(aligned_gradients(backend.to_device(grads)))
        assert rel_error(aligned @ aligned.T, eigenvalues.min() * np.eye(num_tasks)) <= 1e-10   # κ(Ĝ) = 1
        assert rel_error(host(alignedmtl(backend.to_device(grads))), aligned.sum(axis=0)) <= 1e-12


def test_rank_deficient_gradients_stay_within_their_span():
    grads = gradients(3, 2, 0)                              # 3 tasks on 2 parameters: rank 2
    gram = grads @ grads.T
    eigenvalues, vectors = np.linalg.eigh(gram)
    kept = vectors[:, 1:]
    aligned = alignment_matrix(gram) @ grads
    assert rel_error(aligned @ aligned.T, eigenvalues[1] * kept @ kept.T) <= 1e-10
    assert np.isfinite(alignedmtl_coefficients(gram)).all()
    assert np.array_equal(alignedmtl_coefficients(np.zeros((2, 2))), [0.0, 0.0])


def test_scale_all_scales_the_update_one_does_not_keep_the_direction():
    grads = gradients(3, 10, 2)
    d = host(alignedmtl(backend.to_device(grads)))
    assert rel_error(host(alignedmtl(backend.to_device(7.0 * grads))), 7.0 * d) <= 1e-12
    scaled = grads.copy()
    scaled[0] *= 10.0
    other = host(alignedmtl(backend.to_device(scaled)))
    cosine = other @ d / np.linalg.norm(other) / np.linalg.norm(d)
    assert cosine < 0.999                                   # not invariant to one loss's scale (module docstring)


def test_float32_stays_float32():
    grads = backend.to_device(gradients(3, 8, 1), dtype=np.float32)
    assert alignedmtl(grads).dtype == np.float32
    assert rel_error(alignedmtl(grads), alignedmtl(grads.astype(np.float64))) <= 1e-5
