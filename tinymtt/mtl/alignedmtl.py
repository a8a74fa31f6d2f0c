"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, CVPR 2023): gradients made orthogonal and equal.

The paper reads conflict and dominance off one number: the condition number
of the gradient system, κ = σ_max/σ_min of G (T, P). Conflicting gradients
(large negative cosines) and one dominant task (one large norm) both make it
large. Aligned-MTL replaces G by the closest matrix Ĝ whose rows are
orthogonal and of one length σ (κ = 1), and steps along their sum.

The Gram matrix K = G Gᵀ = V Λ Vᵀ (eigendecomposition, T×T). Closest in the
Frobenius norm to G among the matrices with Ĝ Ĝᵀ = σ² I is (orthogonal
Procrustes) Ĝ = σ V Λ^{−1/2} Vᵀ G, so with

    B = σ V Λ^{−1/2} Vᵀ     (T×T),   σ = √λ_min         Ĝ = B G
    Ĝ Ĝᵀ = σ² V Λ^{−1/2} Vᵀ V Λ Vᵀ V Λ^{−1/2} Vᵀ = λ_min I

every aligned gradient ĝ_i has norm √λ_min (the smallest singular value: the
step is as large as the weakest direction allows), and they are pairwise
orthogonal. The update d = Σ_i ĝ_i = (B 1)ᵀ G: the coefficients are the row
sums of B (B is symmetric), a T×T computation on the host.

Rank. If the gradients are linearly dependent (T > P, or two equal
gradients) some λ are 0; as in the authors' code and LibMTL, only the
eigenvalues above λ_max · T · ε are kept (ε of float32, the training dtype),
V and Λ are cut to those r columns, and σ = √ of the smallest kept one; then
Ĝ Ĝᵀ = λ_min V_r V_rᵀ, orthogonal within the span of the gradients.

As LibMTL's ``Aligned_MTL`` (task weights 1, σ² = λ_min; the official code's
"min" scale mode). Scaling every gradient by c scales d by c; scaling one
task's gradient changes V and Λ, so Aligned-MTL is not invariant to the
scale of one loss (it removes the scale from the *aligned* system, whose
rows all have one length, not from the direction of d).
"""

from __future__ import annotations

import numpy

from .base import GradientCombination
from .simplex import combine_rows, gram_matrix

RANK_EPSILON = float(numpy.finfo(numpy.float32).eps)


# -- the rule ----------------------------------------------------------------------
def alignment_matrix(gram):
    """B (T, T) host float64 with Ĝ = B G: B = √λ_min V_r Λ_r^{−1/2} V_rᵀ over the r kept eigenvalues."""
    gram = numpy.asarray(gram, dtype=numpy.float64)
    eigenvalues, vectors = numpy.linalg.eigh(gram)                # ascending
    keep = eigenvalues > eigenvalues.max() * gram.shape[0] * RANK_EPSILON
    if not keep.any():                                            # every gradient is 0
        return numpy.zeros_like(gram)
    eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
    return numpy.sqrt(eigenvalues.min()) * (vectors / numpy.sqrt(eigenvalues)) @ vectors.T


def alignedmtl_coefficients(gram):
    """a (T,) host float64 with d = Σ_i ĝ_i = a @ G: the row sums of B."""
    return alignment_matrix(gram).sum(axis=1)


def aligned_gradients(grads):
    """Ĝ = B G (T, P), in the dtype and on the device of ``grads``."""
    return combine_rows(alignment_matrix(gram_matrix(grads)), grads)


def alignedmtl(grads):
    """The Aligned-MTL update d = Σ_i ĝ_i (P,) from grads (T, P)."""
    return combine_rows(alignedmtl_coefficients(gram_matrix(grads)), grads)


# -- the strategy --------------------------------------------------------------------
class AlignedMTL(GradientCombination):
    """Aligned-MTL: the sum of the aligned gradients Ĝ = B G (orthogonal, each of norm √λ_min)."""

    name = "alignedmtl"
    options = {}

    def solve(self, gram, losses=None):
        return alignedmtl_coefficients(gram)
