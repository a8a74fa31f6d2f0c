"""A model's parameters under the names and layouts of PyTorch's ``torch.nn``, and back; safetensors files.

``tinymtt export`` and ``tinymtt import`` (tinymtt.commands.interop) use this module;
``interop/torch_model.py`` is the PyTorch model that reads the same names. Pure NumPy:
no torch here (none anywhere in tinymtt/).

The names and layouts (i = block, j = expert, τ = task index; D model width):

    tinymtt                                   torch                                     layout
    embedding.weight                          embedding.weight                nn.Embedding   as is (V, D)
    input_proj.{weight,bias}                  input_proj.{weight,bias}        nn.Linear      weight transposed
    task_encoder.{hidden,out}.{weight,bias}   task_encoder.{hidden,out}.*     nn.Linear      weight transposed
    encoder.blocks.i.attn.w{q,k,v}.weight     encoder.layers.i.self_attn.in_proj_weight      Wqᵀ, Wkᵀ, Wvᵀ stacked (3D, D)
    encoder.blocks.i.attn.w{q,k,v}.bias       encoder.layers.i.self_attn.in_proj_bias        bq, bk, bv joined (3D,)
    encoder.blocks.i.attn.wo.{weight,bias}    encoder.layers.i.self_attn.out_proj.*          weight transposed
    encoder.blocks.i.ffn.linear{1,2}.*        encoder.layers.i.linear{1,2}.*                 weight transposed
    encoder.blocks.i.norm{1,2}.{gamma,beta}   encoder.layers.i.norm{1,2}.{weight,bias}       as is
    encoder.final_norm.{gamma,beta}           encoder.norm.{weight,bias}      nn.LayerNorm   as is (pre-LN only)
    task_attention.attn.*                     task_attention.attn.*           nn.MultiheadAttention, packed as above
    task_attention.norm.{gamma,beta}          task_attention.norm.{weight,bias}              as is
    heads.τ.linear.{weight,bias}              heads.τ.{weight,bias}           nn.Linear      weight transposed

The parts with no torch.nn standard module keep tinymtt's own layout (x·W, not W·x) and
are implemented in interop/torch_model.py with a few lines of torch:

    task_attention.gate                       task_attention.gate            (1,)  g = tanh(γ)
    encoder.blocks.i.norm{1,2}.task_embedding encoder.layers.i.norm{1,2}.task_embedding   (T, d_e)   task-norm
    encoder.blocks.i.norm{1,2}.{gamma,beta}_weight  ....norm{1,2}.{gamma,beta}_weight      (d_e, D)   task-norm
    encoder.blocks.i.attn.lora.{0,1,2,3}.lora_{a,b}  encoder.layers.i.lora.{q,k,v,o}.{a,b} (T, D, r), (T, r, D)
    encoder.blocks.i.ffn.lora.{0,1}.lora_{a,b}       encoder.layers.i.lora.linear{1,2}.{a,b}         lora_ffn
    encoder.blocks.i.ffn.gate_{weight,bias}   encoder.layers.i.gate.{weight,bias}   (T, D, E), (T, E)   mmoe
    encoder.blocks.i.ffn.experts.j.linear{1,2}.*  encoder.layers.i.experts.j.linear{1,2}.*  nn.Linear, transposed

Every change of layout is a transpose or a split/join, so the round trip is exact, bit for bit.
The file's metadata (safetensors: str -> str) holds ``format`` = "tinymtt-torch", ``version``,
``config`` (the ModelConfig as JSON) and ``run`` (the run's train and data description as JSON,
so that ``tinymtt import`` rebuilds a run folder that ``eval`` and ``demo`` read).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import numpy

from . import backend
from .checkpoint import CheckpointError
from .config import ModelConfig
from .model import MultiTaskTransformer
from .validation import describe

FORMAT_NAME = "tinymtt-torch"
FORMAT_VERSION = 1
INSTALL = "safetensors is not installed: pip install 'tinymtt[interop]' (or pip install safetensors)"

# tinymtt name -> torch name, tried in order (each rule rewrites a piece of the name)
_RULES = [
    (r"^encoder\.blocks\.(\d+)\.", r"encoder.layers.\1."),
    (r"^encoder\.final_norm\.", "encoder.norm."),
    (r"^(encoder\.layers\.\d+)\.attn\.wo\.", r"\1.self_attn.out_proj."),
    (r"^task_attention\.attn\.wo\.", "task_attention.attn.out_proj."),
    (r"^(encoder\.layers\.\d+)\.attn\.lora\.(\d)\.lora_([ab])$", lambda m: f"{m[1]}.lora.{'qkvo'[int(m[2])]}.{m[3]}"),
    (r"^(encoder\.layers\.\d+)\.ffn\.lora\.(\d)\.lora_([ab])$", lambda m: f"{m[1]}.lora.linear{int(m[2]) + 1}.{m[3]}"),
    (r"^(encoder\.layers\.\d+)\.ffn\.gate_(weight|bias)$", r"\1.gate.\2"),
    (r"^(encoder\.layers\.\d+)\.ffn\.", r"\1."),
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
    (r"^heads\.(\d+)\.linear\.", r"heads.\1."),
]
_PACKED = re.compile(r"^(.*)\.attn\.w([qkv])\.(weight|bias)$")   # the three input projections: one tensor


def _renamed(name: str) -> str:
    for pattern, replacement in _RULES:
        name = re.sub(pattern, replacement, name)
    return name


def _transposed(name: str) -> bool:
    """A tinymtt Linear's weight (in, out) is an nn.Linear's (out, in); the embedding table is not a Linear."""
    return name.endswith(".weight") and name != "embedding.weight"


def layout(names) -> dict:
    """{torch name: (tinymtt names, transposed)} for the tinymtt parameter names (in their order).

    A packed attention projection lists its three sources (q, k, v): they are stacked along
    the first axis after the transpose.
    """
    table = {}
    for name in names:
        packed = _PACKED.match(name)
        if packed:
            owner, _, kind = packed.groups()
            attention = "self_attn" if owner.startswith("encoder.") else "attn"
            target = f"{_renamed(owner + '.')}{attention}.in_proj_{kind}"
            table[target] = (tuple(f"{owner}.attn.w{p}.{kind}" for p in "qkv"), kind == "weight")
        else:
            table[_renamed(name)] = ((name,), _transposed(name))
    return table


def to_torch_layout(model: MultiTaskTransformer) -> dict:
    """{torch name: host NumPy array (C order)} of every parameter of ``model``."""
    if not isinstance(model, MultiTaskTransformer):
        raise TypeError(f"model must be a MultiTaskTransformer, got {type(model).__name__}")
    params = {name: backend.to_numpy(value) for name, value in model.parameters().items()}
    tensors = {}
    for target, (sources, transposed) in layout(params).items():
        parts = [params[s].T if transposed else params[s] for s in sources]
        tensors[target] = numpy.ascontiguousarray(parts[0] if len(parts) == 1 else numpy.concatenate(parts, axis=0))
    return tensors


def from_torch_layout(tensors: dict, config: ModelConfig, source="the tensors") -> MultiTaskTransformer:
    """A new MultiTaskTransformer(config) holding ``tensors`` (torch names and layouts): all of them, or
    a CheckpointError naming what does not fit (missing, unexpected, wrong shape or dtype)."""
    model = MultiTaskTransformer(config)
    params = model.parameters()
    table = layout(params)
    problems = []
    missing = [name for name in table if name not in tensors]
    unexpected = [name for name in tensors if name not in table]
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    for target in (name for name in table if name in tensors):
        sources, transposed = table[target]
        shapes = [params[s].shape[::-1] if transposed else params[s].shape for s in sources]
        want = shapes[0] if len(shapes) == 1 else (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])
        have = tensors[target]
        if tuple(have.shape) != tuple(want) or have.dtype != numpy.dtype(config.dtype):
            problems.append(f"{target!r} is {describe(have)}, the model needs {config.dtype} of shape {tuple(want)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model its config builds: " + "; ".join(problems))
    for target, (sources, transposed) in table.items():
        value = numpy.asarray(tensors[target])
        parts = numpy.split(value, len(sources), axis=0) if len(sources) > 1 else [value]
        for name, part in zip(sources, parts):
            params[name][...] = backend.array_module(params[name]).asarray(part.T if transposed else part)
    return model


# -- files ---------------------------------------------------------------------------------
def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(INSTALL) from None
    return safetensors


def metadata(config: ModelConfig, run: dict | None = None) -> dict:
    """The file's metadata: str -> str, as safetensors requires."""
    return {"format": FORMAT_NAME, "version": str(FORMAT_VERSION), "config": json.dumps(config.to_dict()),
            "run": json.dumps(run or {})}


def save(model: MultiTaskTransformer, path, run: dict | None = None) -> Path:
    """Write ``model`` to a safetensors file in the torch layout, atomically (a temporary name, then os.replace).

    run: the run's {"train": ..., "data": ..., "backend": ...} (config.json less the model), or None.
    """
    safetensors = _safetensors()
    path = Path(path)
    data = safetensors.numpy.save(to_torch_layout(model), metadata=metadata(model.config, run))
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def read(path) -> tuple:
    """(tensors {torch name: NumPy array}, ModelConfig, run dict) of a file ``save`` (or interop/) wrote.

    Refused with one CheckpointError naming the file: no such file, not a safetensors file, not a tinymtt
    export (no or another ``format``), a newer version, a config that does not build a model.
    """
    safetensors = _safetensors()
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no file at {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a .safetensors file")
    try:
        with safetensors.safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (a safe_open handle, not a dict)
    except (safetensors.SafetensorError, OSError, ValueError, TypeError) as error:   # a broken or foreign file
        raise CheckpointError(f"{path} is not a readable safetensors file ({type(error).__name__}: {error})") from None
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a tinymtt export: its metadata format is {meta.get('format')!r}, "
                              f"expected {FORMAT_NAME!r} (write one with: tinymtt export RUN OUT.safetensors)")
    version = meta.get("version", "")
    if not version.isdigit() or int(version) < 1:
        raise CheckpointError(f"{path}: metadata version must be a positive integer, got {version!r}")
    if int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has export version {version}, newer than this tinymtt reads "
                              f"(up to {FORMAT_VERSION}): upgrade tinymtt")
    try:
        config = ModelConfig.from_dict(json.loads(meta.get("config", "")))
        run = json.loads(meta.get("run", "{}"))
        if not isinstance(run, dict):
            raise TypeError(f"the run description must be a JSON object, got {type(run).__name__}")
    except (TypeError, ValueError) as error:   # json.JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: the model config or run description in its metadata is invalid "
                              f"({error})") from None
    return tensors, config, run


def load(path) -> tuple:
    """(MultiTaskTransformer with the file's parameters, run dict) from a tinymtt export."""
    tensors, config, run = read(path)
    return from_torch_layout(tensors, config, source=str(path)), run
