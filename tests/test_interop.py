"""tinymtt.export and interop/torch_model.py: the PyTorch model gives tinymtt's outputs and losses, and the
round trip tinymtt -> safetensors -> torch -> safetensors -> tinymtt is bit-exact.

Skips (with the reason) when torch or safetensors is not installed.
"""

import json
import re

import numpy as np
import pytest

from tinymtt import backend, export
from tinymtt.checkpoint import CheckpointError
from tinymtt.model import ModelConfig, MultiTaskTransformer

from helpers import host, interop_or_skip

TASKS = [dict(name="tok", kind="token", num_outputs=5), dict(name="seq", kind="sequence", num_outputs=3),
         dict(name="reg", kind="regression", num_outputs=2)]
TOLERANCE = {"float32": 1e-5, "float64": 1e-10}
VARIANTS = {
    "conditioned": dict(),
    "relu": dict(activation="relu"),
    "post-ln": dict(norm_first=False),
    "causal": dict(causal=True),
    "task-hidden": dict(task_hidden=3),
    "continuous": dict(vocab_size=None, input_dim=3),
    "task-norm": dict(task_module="task-norm"),
    "lora": dict(task_module="lora", lora_ffn=True),
    "mmoe": dict(task_module="mmoe"),
    "joint": dict(mode="joint"),
    "joint-ungated-relu": dict(mode="joint", task_attention_gate=False, activation="relu"),
    "joint-branch": dict(mode="joint", branch_layers=1, task_module="mmoe"),
    "joint-lora": dict(mode="joint", task_module="lora"),
    "joint-task-norm-post-ln": dict(mode="joint", task_module="task-norm", norm_first=False),
}


def build(dtype="float64", **changes):
    """A small model whose every parameter is moved off its initial value (LoRA's B, the gates start at 0)."""
    options = dict(tasks=TASKS, vocab_size=11, d_model=8, num_heads=2, d_ff=16, num_layers=2, max_len=12,
                   dtype=dtype)
    options.update(changes)
    model = MultiTaskTransformer(ModelConfig(**options))
    rng = np.random.default_rng(1)
    for value in model.parameters().values():
        value += backend.to_device(rng.standard_normal(value.shape) * 0.2, dtype=value.dtype)
    return model


def padded_batch(config, size=4, seq_len=7, seed=2):
    """Inputs with two padded examples, every head's target, the task ids (conditioned) or present flags (joint)."""
    rng = np.random.default_rng(seed)
    if config.vocab_size is not None:
        inputs = rng.integers(0, config.vocab_size, (size, seq_len))
    else:
        inputs = rng.standard_normal((size, seq_len, config.input_dim)).astype(config.dtype)
    mask = np.ones((size, seq_len), dtype=bool)
    mask[1, 5:] = False
    mask[3, 2:] = False
    batch = {"inputs": inputs, "mask": mask,
             "targets": {"tok": np.where(mask, rng.integers(0, 5, (size, seq_len)), -1),
                         "seq": rng.integers(0, 3, size), "reg": rng.standard_normal((size, 2)).astype(config.dtype)}}
    if config.mode == "conditioned":
        batch["task_ids"] = np.array([0, 1, 2, 1])[:size]
    else:
        batch["present"] = {"tok": np.array([True, True, False, True]), "seq": np.ones(size, dtype=bool),
                            "reg": np.array([False, True, True, True])}
    return batch


def torch_copy(model):
    torch_model = interop_or_skip()
    import torch
    copy = torch_model.TinyMTT(model.config)
    copy.load_state_dict({name: torch.from_numpy(value) for name, value in export.to_torch_layout(model).items()})
    return copy


def on_device(batch):
    return {key: (on_device(value) if isinstance(value, dict) else backend.to_device(value))
            for key, value in batch.items()}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_torch_model_gives_tinymtts_outputs(variant, dtype):
    """Every head kind, padding, eval mode; with and without autograd (torch takes its fast paths without)."""
    torch_model = interop_or_skip()
    import torch
    model = build(dtype, **VARIANTS[variant])
    batch = padded_batch(model.config)
    with model.evaluating():
        expected = {name: host(value) for name, value in model.forward(on_device(batch)).items()}
    copy = torch_copy(model).eval()
    tensors = torch_model.to_torch(batch)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            outputs = copy(tensors["inputs"], tensors["mask"], tensors.get("task_ids"))
        for name, value in outputs.items():
            assert value.dtype == getattr(torch, dtype)
            error = np.abs(value.detach().numpy() - expected[name]).max()   # padded positions included
            assert error <= TOLERANCE[dtype], (variant, name, grad, error)


@pytest.mark.parametrize("variant", ["conditioned", "joint-branch", "lora"])
def test_the_torch_losses_and_gradients_are_tinymtts(variant):
    """task_losses is the loss train_ddp.py trains: per task, and its gradients, against tinymtt's backward."""
    torch_model = interop_or_skip()
    model = build("float64", **VARIANTS[variant])
    batch = padded_batch(model.config)
    result = model.loss(on_device(batch))
    model.zero_grad()
    model.backward()
    copy = torch_copy(model)
    tensors = torch_model.to_torch(batch)
    losses, counted = torch_model.task_losses(copy, copy(tensors["inputs"], tensors["mask"], tensors.get("task_ids")),
                                              tensors)
    for name, value in losses.items():
        assert abs(value.item() - float(host(result.losses[name]))) <= 1e-12, name
        assert counted[name] == result.counted[name]
    sum(losses.values()).backward()
    gradients = export.to_torch_layout(_with_parameters(model, model.gradients()))
    for name, parameter in copy.named_parameters():
        assert np.abs(parameter.grad.numpy() - gradients[name]).max() <= 1e-10, name


def _with_parameters(model, values):
    """A copy of ``model`` whose parameters are ``values`` (to put gradients through the same layout)."""
    other = MultiTaskTransformer(model.config)
    for name, value in other.parameters().items():
        value[...] = values[name]
    return other


def test_the_standard_block_is_a_transformer_encoder_layer_with_tinymtts_dropout():
    """nn.TransformerEncoderLayer drops out inside its FFN too; tinymtt does not: that dropout is an Identity."""
    interop_or_skip()
    from torch import nn
    copy = torch_copy(build("float32", dropout=0.25, num_layers=1))
    layer = copy.encoder.layers[0]
    assert type(layer) is nn.TransformerEncoderLayer and layer.norm_first and layer.self_attn.batch_first
    assert isinstance(layer.dropout, nn.Identity)
    assert (layer.dropout1.p, layer.dropout2.p, layer.self_attn.dropout) == (0.25, 0.25, 0.25)
    assert layer.norm1.eps == layer.norm2.eps == copy.encoder.norm.eps == 1e-5
    assert not isinstance(layer.activation, nn.GELU)   # an nn.GELU module sends the fast path to erf GELU


def test_the_encoder_loads_into_torchs_own_transformer_encoder():
    """The names encoder.layers.i.* and encoder.norm.* are nn.TransformerEncoder's: it loads them and agrees."""
    torch_model = interop_or_skip()
    import torch
    from torch import nn
    model = build("float64")
    copy = torch_copy(model).eval()
    encoder = nn.TransformerEncoder(torch_model.standard_block(model.config), num_layers=2,
                                    norm=nn.LayerNorm(8, eps=1e-5), enable_nested_tensor=False).double().eval()
    prefix = "encoder."
    encoder.load_state_dict({name[len(prefix):]: value for name, value in copy.state_dict().items()
                             if name.startswith(prefix)}, strict=True)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])
    expected = copy.encoder.run(x, mask, None, 0, 2)
    assert torch.allclose(encoder(x, src_key_padding_mask=~mask), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_round_trip_through_torch_is_bit_exact(variant, tmp_path):
    torch_model = interop_or_skip()
    model = build("float32", **VARIANTS[variant])
    export.save(model, tmp_path / "a.safetensors", run={"data": {"name": "sequences"}})
    copy, meta = torch_model.load(tmp_path / "a.safetensors")
    torch_model.save(copy, tmp_path / "b.safetensors", meta)
    back, run = export.load(tmp_path / "b.safetensors")
    assert back.config == model.config and run == {"data": {"name": "sequences"}}
    for name, value in model.parameters().items():
        other = back.parameters()[name]
        assert other.dtype == value.dtype and np.array_equal(host(other), host(value)), name


def test_every_tensor_has_a_torch_name_and_the_file_says_what_it_holds(tmp_path):
    interop_or_skip()
    model = build("float32", mode="joint", task_module="mmoe", branch_layers=1, task_hidden=3)
    tensors = export.to_torch_layout(model)
    assert sum(v.size for v in tensors.values()) == model.num_parameters()
    assert tensors["encoder.layers.0.self_attn.in_proj_weight"].shape == (24, 8)
    assert np.array_equal(tensors["heads.1.weight"], host(model.parameters()["heads.1.linear.weight"]).T)
    assert np.array_equal(tensors["encoder.layers.1.self_attn.in_proj_weight"][8:16],
                          host(model.parameters()["encoder.blocks.1.attn.wk.weight"]).T)
    from safetensors import safe_open
    export.save(model, tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), framework="numpy") as handle:
        meta = handle.metadata()
    assert meta["format"] == "tinymtt-torch" and json.loads(meta["config"]) == model.config.to_dict()


# -- refusals ------------------------------------------------------------------------------------
def test_a_file_that_is_not_a_fitting_export_is_refused(tmp_path):
    interop_or_skip()
    from safetensors.numpy import save_file
    model = build("float32")
    tensors = export.to_torch_layout(model)
    good = export.metadata(model.config)
    cases = {
        "missing.safetensors": (None, "no file at"),
        "garbage.safetensors": (b"not a safetensors file at all", "not a readable safetensors file"),
        "foreign.safetensors": ((tensors, {}), "not a tinymtt export"),
        "newer.safetensors": ((tensors, dict(good, version="99")), "newer than this tinymtt reads"),
        "config.safetensors": ((tensors, dict(good, config='{"d_model": 8}')), "model config or run description in its metadata is invalid"),
        "fewer.safetensors": (({k: v for k, v in tensors.items() if k != "heads.0.bias"}, good),
                              "missing tensors ['heads.0.bias']"),
        "shape.safetensors": ((dict(tensors, **{"heads.0.bias": np.zeros(4, np.float32)}), good),
                              "'heads.0.bias' is float32 array of shape (4,), the model needs float32 of shape (5,)"),
        "dtype.safetensors": ((dict(tensors, **{"heads.0.bias": np.zeros(5, np.float64)}), good), "needs float32"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            save_file(content[0], str(path), metadata=content[1])
        with pytest.raises(CheckpointError, match=re.escape(message)):
            export.load(path)
