"""Copying a tinymtt layer's weights into its torch twin, and reading torch's gradients
back under tinymtt's names.

torch's Linear holds W as (Dout, Din) and computes x·Wᵀ; ours holds (Din, Dout) and
computes x·W, so every weight is transposed on the way. torch's MultiheadAttention
stacks [Wq; Wk; Wv] into in_proj_weight (3D, D) and the biases into in_proj_bias (3D,).
"""

import numpy as np

from tinymtt.gradcheck import rel_error

from helpers import host, torch_or_skip

_QKV = ("wq", "wk", "wv")


def _t(a):
    torch = torch_or_skip()
    return torch.tensor(host(a), dtype=torch.float64)


def mha_pairs(prefix=""):
    """(our name, torch name, transform) for the attention weights."""
    pairs = []
    for i, w in enumerate(_QKV):
        pairs.append((f"{w}.weight", f"{prefix}in_proj_weight", ("rows_T", i)))
        pairs.append((f"{w}.bias", f"{prefix}in_proj_bias", ("rows", i)))
    pairs += [("wo.weight", f"{prefix}out_proj.weight", ("T", None)), ("wo.bias", f"{prefix}out_proj.bias", ("same", None))]
    return pairs


def block_pairs():
    pairs = [(f"attn.{ours}", theirs, how) for ours, theirs, how in mha_pairs("self_attn.")]
    for n in ("norm1", "norm2"):
        pairs += [(f"{n}.gamma", f"{n}.weight", ("same", None)), (f"{n}.beta", f"{n}.bias", ("same", None))]
    for n in ("linear1", "linear2"):
        pairs += [(f"ffn.{n}.weight", f"{n}.weight", ("T", None)), (f"ffn.{n}.bias", f"{n}.bias", ("same", None))]
    return pairs


def _slice(value, how, width):
    kind, i = how
    if kind == "same":
        return value
    if kind == "T":
        return value.T
    part = value[i * width:(i + 1) * width]
    return part.T if kind == "rows_T" else part


def copy_weights(ours, theirs, pairs, width):
    """Write our parameters into the torch module (in place, no grad)."""
    torch = torch_or_skip()
    tensors = dict(theirs.named_parameters())
    params = ours.parameters()
    assert len(tensors) == len({t for _, t, _ in pairs}), sorted(tensors)
    assert set(params) == {o for o, _, _ in pairs}, sorted(params)
    with torch.no_grad():
        for mine, name, how in pairs:
            _slice(tensors[name], how, width).copy_(_t(params[mine]))


def torch_gradients(theirs, pairs, width):
    """torch's parameter gradients under our names and in our layout."""
    tensors = dict(theirs.named_parameters())
    return {mine: _slice(tensors[name].grad, how, width).numpy() for mine, name, how in pairs}


def agreement(ours: dict, theirs: dict, zero_suffixes=("wk.bias",)):
    """{name: rel_error}; a key bias (whose true gradient is 0) must be ~0 in both."""
    scale = max(float(np.abs(host(v)).max()) for v in theirs.values())
    errors = {}
    for k, expected in theirs.items():
        got = host(ours[k])
        assert got.shape == expected.shape, (k, got.shape, expected.shape)
        if k.endswith(zero_suffixes):
            assert max(np.abs(got).max(), np.abs(expected).max()) <= 1e-12 * scale, k
            continue
        errors[k] = rel_error(got, expected)
    return errors
