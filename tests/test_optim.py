"""Optimizers, clipping and schedules against torch.optim and against their formulas."""

import json
import math

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.optim import (SGD, Adam, AdamW, Constant, InverseSqrt, WarmupCosine, clip_grad_norm,
                           global_grad_norm)
from tinymtt.validation import ShapeError

from helpers import host, randn, torch_or_skip

# Names as the model gives them; a 0-d gate and a (1,) vector are the edge shapes.
SHAPES = {"blocks.0.attn.wq": (4, 6), "blocks.0.attn.bq": (6,), "heads.1.w": (3, 2, 5),
          "task_attention.gate": (), "task_encoder.b": (1,)}
GRAD_SCALES = {"blocks.0.attn.wq": 1.0, "blocks.0.attn.bq": 0.01, "heads.1.w": 30.0,
               "task_attention.gate": 0.3, "task_encoder.b": 1e-3}

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, betas=(0.5, 0.9), eps=1e-7, weight_decay=0.3)),
]
IDS = [f"{kind}-{'-'.join(f'{k}={v}' for k, v in options.items())}" for kind, options in CONFIGS]
OURS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}
# our state buffer -> torch's name for it
TORCH_STATE = {"momentum_buffer": "momentum_buffer", "m": "exp_avg", "v": "exp_avg_sq"}


def make_params(dtype=np.float64, seed=0):
    return {name: randn(*shape, seed=seed + i, dtype=dtype) for i, (name, shape) in enumerate(SHAPES.items())}


def make_grads(step, dtype=np.float64):
    """A fresh random gradient for every step, with very different scales per parameter."""
    return {name: randn(*shape, seed=1000 * step + i, dtype=dtype, scale=GRAD_SCALES[name])
            for i, (name, shape) in enumerate(SHAPES.items())}


def torch_optimizer(torch, kind, options, tensors):
    return getattr(torch.optim, kind)(list(tensors.values()), **options)


@pytest.mark.parametrize("with_schedule", [False, True], ids=["fixed-lr", "scheduled-lr"])
@pytest.mark.parametrize("kind, options", CONFIGS, ids=IDS)
def test_matches_torch_optim(kind, options, with_schedule):
    torch = torch_or_skip()
    params = make_params()
    tensors = {name: torch.tensor(host(p), dtype=torch.float64, requires_grad=True) for name, p in params.items()}
    ours = OURS[kind](params, **options)
    theirs = torch_optimizer(torch, kind, options, tensors)
    schedule = WarmupCosine(options["lr"], warmup_steps=5, total_steps=20, min_lr=options["lr"] / 10)
    worst = 0.0
    for step in range(1, 21):
        if with_schedule:
            ours.lr = schedule(step)
            theirs.param_groups[0]["lr"] = schedule(step)
        grads = make_grads(step)
        for name, t in tensors.items():
            t.grad = torch.tensor(host(grads[name]), dtype=torch.float64)
        ours.step(grads)
        theirs.step()
        for name, t in tensors.items():
            worst = max(worst, rel_error(params[name], t.detach().numpy()))
            for buffer in ours.buffers:
                reference = theirs.state[t][TORCH_STATE[buffer]].numpy()
                worst = max(worst, rel_error(ours.state[buffer][name], reference))
    assert ours.step_count == 20
    assert worst <= 1e-12, f"{kind} {options}: worst relative error {worst:.3g} against torch.optim"


@pytest.mark.parametrize("kind, options", CONFIGS, ids=IDS)
def test_step_updates_in_place_and_leaves_grads_alone(kind, options):
    params = make_params()
    originals = dict(params)
    before = {name: host(p).copy() for name, p in params.items()}
    view = params["blocks.0.attn.wq"][1:3]          # a layer holding a view sees the update
    view_before = host(view).copy()
    grads = make_grads(1)
    grads_before = {name: host(g).copy() for name, g in grads.items()}
    OURS[kind](params, **options).step(grads)
    for name, p in params.items():
        assert p is originals[name]
        assert not np.array_equal(host(p), before[name]), f"{name} was not updated"
        assert np.array_equal(host(grads[name]), grads_before[name]), f"step wrote into grads[{name!r}]"
    assert not np.array_equal(host(view), view_before)


@pytest.mark.parametrize("kind, options", CONFIGS, ids=IDS)
def test_state_dict_round_trip_resumes_bit_exactly(kind, options, tmp_path):
    uninterrupted = make_params()
    reference = OURS[kind](uninterrupted, **options)
    for step in range(1, 11):
        reference.step(make_grads(step))

    params = make_params()
    optimizer = OURS[kind](params, **options)
    for step in range(1, 6):
        optimizer.step(make_grads(step))
    state = optimizer.state_dict()
    np.savez(tmp_path / "params.npz", **{name: host(p) for name, p in params.items()})
    optimizer.step(make_grads(99))                  # state_dict() gave copies: this must not leak into `state`
    # A checkpoint without pickle: arrays to .npz, plain numbers to JSON.
    arrays = {key: host(v) for key, v in state.items() if hasattr(v, "shape")}
    numbers = {key: v for key, v in state.items() if not hasattr(v, "shape")}
    np.savez(tmp_path / "state.npz", **arrays)
    (tmp_path / "state.json").write_text(json.dumps(numbers))

    with np.load(tmp_path / "params.npz") as saved:
        resumed_params = {name: backend.to_device(saved[name]) for name in SHAPES}
    with np.load(tmp_path / "state.npz") as saved:
        loaded = {key: saved[key] for key in saved.files}
    loaded.update(json.loads((tmp_path / "state.json").read_text()))
    fresh_options = dict(options, lr=0.5)           # the state dict restores the hyper-parameters too
    resumed = OURS[kind](resumed_params, **fresh_options)
    resumed.load_state_dict(loaded)
    assert resumed.lr == options["lr"] and resumed.step_count == 5
    for step in range(6, 11):
        resumed.step(make_grads(step))
    for key, value in arrays.items():
        assert np.array_equal(loaded[key], value), f"load_state_dict kept {key} by reference and stepped it"
    for name in SHAPES:
        assert np.array_equal(host(resumed_params[name]), host(uninterrupted[name])), name
    for key, value in resumed.state_dict().items():
        expected = reference.state_dict()[key]
        if hasattr(value, "shape"):
            assert backend.array_module(value) is backend.get_array_module(), key   # moved to the device
            assert np.array_equal(host(value), host(expected)), key
        else:
            assert value == expected, key


def test_state_dict_holds_only_arrays_and_plain_numbers():
    for kind, options in CONFIGS:
        optimizer = OURS[kind](make_params(), **options)
        optimizer.step(make_grads(1))
        for key, value in optimizer.state_dict().items():
            assert hasattr(value, "shape") or type(value) in (int, float, bool), (kind, key, type(value))
        json.dumps({k: v for k, v in optimizer.state_dict().items() if not hasattr(v, "shape")})


@pytest.mark.parametrize("kind, options", CONFIGS, ids=IDS)
def test_float32_stays_float32_and_tracks_float64(kind, options):
    params32 = make_params(np.float32)
    params64 = make_params(np.float64)
    optimizer32 = OURS[kind](params32, **options)
    optimizer64 = OURS[kind](params64, **options)
    schedule = InverseSqrt(d_model=16, warmup_steps=3, scale=0.1)
    for step in range(1, 6):
        optimizer32.lr = optimizer64.lr = schedule(step)
        grads32 = make_grads(step, np.float32)
        assert isinstance(clip_grad_norm(grads32, max_norm=5.0), float)
        optimizer32.step(grads32)
        optimizer64.step({name: backend.to_device(host(g), dtype=np.float64) for name, g in grads32.items()})
    for name in SHAPES:
        assert params32[name].dtype == np.float32, name
        for buffer in optimizer32.buffers:
            assert optimizer32.state[buffer][name].dtype == np.float32, (buffer, name)
    for key, value in optimizer32.state_dict().items():
        assert not hasattr(value, "dtype") or value.dtype == np.float32, key
    for name in SHAPES:
        assert rel_error(params32[name], params64[name]) <= 1e-5, name


# ---- clipping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("max_norm", [0.5, 10.0, 1e6], ids=["clips", "clips-a-little", "no-clip"])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = torch_or_skip()
    grads = make_grads(3)
    tensors = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(host(g), dtype=torch.float64)
    before = {name: host(g).copy() for name, g in grads.items()}
    norm = clip_grad_norm(grads, max_norm)
    torch_norm = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm))
    assert isinstance(norm, float)
    assert abs(norm - torch_norm) <= 1e-12 * torch_norm
    for t, (name, g) in zip(tensors, grads.items()):
        assert rel_error(g, t.grad.numpy()) <= 1e-12, name
    expected_norm = math.sqrt(sum(float((b ** 2).sum()) for b in before.values()))
    assert norm == pytest.approx(expected_norm, rel=1e-13)
    if max_norm < expected_norm:
        assert global_grad_norm(grads) == pytest.approx(max_norm, rel=1e-6)
    else:
        for name, g in grads.items():
            assert np.array_equal(host(g), before[name])


def test_clip_at_exactly_max_norm_scales_like_torch():
    torch = torch_or_skip()
    grads = make_grads(4)
    norm = global_grad_norm(grads)
    tensors = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(host(g), dtype=torch.float64)
    clip_grad_norm(grads, norm)                     # c = norm / (norm + 1e-6) < 1: still scaled
    torch.nn.utils.clip_grad_norm_(tensors, norm)
    for t, g in zip(tensors, grads.values()):
        assert rel_error(g, t.grad.numpy()) <= 1e-12


def test_global_grad_norm():
    grads = make_grads(5)
    expected = math.sqrt(sum(float((host(g) ** 2).sum()) for g in grads.values()))
    assert global_grad_norm(grads) == pytest.approx(expected, rel=1e-13)
    assert global_grad_norm({}) == 0.0


def test_clip_grad_norm_nonfinite():
    grads = make_grads(6)
    grads["heads.1.w"][0, 0, 0] = np.nan
    assert math.isnan(clip_grad_norm(grads, 1.0))
    with pytest.raises(ValueError, match="norm"):
        clip_grad_norm(grads, 1.0, error_if_nonfinite=True)


# ---- schedules --------------------------------------------------------------------------------

def test_warmup_cosine_at_hand_picked_steps():
    base, low = 1e-3, 1e-5
    schedule = WarmupCosine(base, warmup_steps=10, total_steps=110, min_lr=low)
    assert schedule(1) == pytest.approx(1e-4, rel=1e-15)           # first step: base / W
    assert schedule(5) == pytest.approx(5e-4, rel=1e-15)
    assert schedule(10) == pytest.approx(base, rel=1e-15)          # warmup end: the peak
    assert schedule(35) == pytest.approx(low + (base - low) * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-15)
    assert schedule(60) == pytest.approx((base + low) / 2, rel=1e-15)   # cosine midpoint
    assert schedule(110) == pytest.approx(low, rel=1e-15)          # end
    assert schedule(1000) == low                                   # after the end: stays at min_lr
    values = [schedule(s) for s in range(1, 120)]
    assert all(a < b for a, b in zip(values[:9], values[1:10]))    # rising during warmup
    assert all(a >= b for a, b in zip(values[9:], values[10:]))    # then never rising
    no_warmup = WarmupCosine(2.0, warmup_steps=0, total_steps=4)
    assert [no_warmup(s) for s in (1, 2, 3, 4)] == pytest.approx(
        [1 + math.cos(math.pi / 4), 1.0, 1 + math.cos(3 * math.pi / 4), 0.0], rel=1e-15, abs=1e-15)


def test_inverse_sqrt_at_hand_picked_steps():
    schedule = InverseSqrt(d_model=512, warmup_steps=4000)
    peak = (512 * 4000) ** -0.5
    assert schedule(1) == pytest.approx(512 ** -0.5 * 4000 ** -1.5, rel=1e-15)
    assert schedule(2000) == pytest.approx(peak / 2, rel=1e-15)    # halfway up the linear warmup
    assert schedule(4000) == pytest.approx(peak, rel=1e-15)        # warmup end: the peak
    assert schedule(16000) == pytest.approx(peak / 2, rel=1e-15)   # 1/√s decay: 4× the steps, half the lr
    assert InverseSqrt(d_model=512, warmup_steps=4000, scale=2.0)(4000) == pytest.approx(2 * peak, rel=1e-15)
    assert max(range(1, 10000), key=schedule) == 4000


def test_constant():
    assert [Constant(3e-4)(s) for s in (1, 10, 10 ** 6)] == [3e-4] * 3


# ---- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda p: SGD(p, lr=-0.1), "lr"),
    (lambda p: SGD(p, lr=float("nan")), "lr"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: SGD(p, lr=0.1, momentum=1.0), "momentum"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: SGD(p, lr=0.1, weight_decay=-1.0), "weight_decay"),
    (lambda p: Adam(p, lr=-1e-3), "lr"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: Adam(p, betas=(-0.1, 0.999)), r"betas\[0\]"),
    (lambda p: AdamW(p, betas=(0.9, 1.0)), r"betas\[1\]"),
    (lambda p: AdamW(p, betas=(0.9,)), "betas"),
    (lambda p: Adam(p, eps=0.0), "eps"),
    (lambda p: AdamW(p, weight_decay=-0.01), "weight_decay"),
])
def test_bad_hyperparameters_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params())


def test_bad_params():
    with pytest.raises(TypeError, match="params"):
        SGD([randn(3)], lr=0.1)
    with pytest.raises(TypeError, match="params"):
        SGD({}, lr=0.1)
    with pytest.raises(TypeError, match=r"params\['ids'\]"):
        SGD({"ids": backend.to_device(np.arange(3))}, lr=0.1)
    shared = randn(3)
    with pytest.raises(ValueError, match="params"):
        SGD({"a": shared, "b": shared}, lr=0.1)


def test_lr_setter_validates():
    optimizer = Adam(make_params())
    optimizer.lr = 0.25
    assert optimizer.lr == 0.25
    for bad in (-1.0, float("inf"), "0.1", None):
        with pytest.raises(ValueError, match="lr"):
            optimizer.lr = bad
    assert optimizer.lr == 0.25


@pytest.mark.parametrize("kind, options", CONFIGS[1:2] + CONFIGS[5:6], ids=IDS[1:2] + IDS[5:6])
def test_bad_grads_name_the_parameter_and_change_nothing(kind, options):
    params = make_params()
    before = {name: host(p).copy() for name, p in params.items()}
    optimizer = OURS[kind](params, **options)
    missing = make_grads(1)
    del missing["heads.1.w"]
    with pytest.raises(KeyError, match="heads.1.w"):
        optimizer.step(missing)
    extra = dict(make_grads(1), **{"heads.9.w": randn(2)})
    with pytest.raises(KeyError, match="heads.9.w"):
        optimizer.step(extra)
    wrong_shape = dict(make_grads(1), **{"blocks.0.attn.bq": randn(5)})
    with pytest.raises(ShapeError, match=r"blocks\.0\.attn\.bq.*\(6,\).*\(5,\)"):
        optimizer.step(wrong_shape)
    wrong_dtype = dict(make_grads(1), **{"blocks.0.attn.bq": randn(6, dtype=np.float32)})
    with pytest.raises(ShapeError, match=r"blocks\.0\.attn\.bq.*float32"):
        optimizer.step(wrong_dtype)
    not_array = dict(make_grads(1), **{"task_encoder.b": [0.1]})
    with pytest.raises(TypeError, match="task_encoder.b"):
        optimizer.step(not_array)
    with pytest.raises(TypeError, match="grads"):
        optimizer.step(list(make_grads(1).values()))
    assert optimizer.step_count == 0
    for name, p in params.items():
        assert np.array_equal(host(p), before[name]), name


def test_bad_state_dict():
    params = make_params()
    optimizer = Adam(params, lr=0.01)
    optimizer.step(make_grads(1))
    state = optimizer.state_dict()
    with pytest.raises(KeyError, match="m.heads.1.w"):
        Adam(make_params()).load_state_dict({k: v for k, v in state.items() if k != "m.heads.1.w"})
    with pytest.raises(KeyError, match="momentum_buffer"):
        Adam(make_params()).load_state_dict(SGD(make_params(), lr=0.1, momentum=0.9).state_dict())
    with pytest.raises(ShapeError, match=r"v\.blocks\.0\.attn\.bq"):
        Adam(make_params()).load_state_dict(dict(state, **{"v.blocks.0.attn.bq": randn(7)}))
    fresh = Adam(make_params(), lr=0.5)
    with pytest.raises(ValueError, match="beta2"):
        fresh.load_state_dict(dict(state, beta2=1.5))
    assert fresh.lr == 0.5 and fresh.betas == (0.9, 0.999) and fresh.step_count == 0   # left as it was
    with pytest.raises(ValueError, match="step"):
        fresh.load_state_dict(dict(state, step=-1))


def test_bad_clip_and_schedule_arguments():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_norm"):
            clip_grad_norm(make_grads(1), bad)
    with pytest.raises(TypeError, match="grads"):
        clip_grad_norm([randn(3)], 1.0)
    for make, match in [
        (lambda: WarmupCosine(-1e-3, 10, 100), "base_lr"),
        (lambda: WarmupCosine(1e-3, -1, 100), "warmup_steps"),
        (lambda: WarmupCosine(1e-3, 2.5, 100), "warmup_steps"),
        (lambda: WarmupCosine(1e-3, 200, 100), "warmup_steps"),
        (lambda: WarmupCosine(1e-3, 10, 0), "total_steps"),
        (lambda: WarmupCosine(1e-3, 10, 100, min_lr=1e-2), "min_lr"),
        (lambda: InverseSqrt(0, 4000), "d_model"),
        (lambda: InverseSqrt(512, 0), "warmup_steps"),
        (lambda: InverseSqrt(512, 4000, scale=0.0), "scale"),
        (lambda: Constant(-1.0), "lr"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()
    for schedule in (WarmupCosine(1e-3, 10, 100), InverseSqrt(512, 4000), Constant(1e-3)):
        for bad in (0, -3, 1.5, True):
            with pytest.raises(ValueError, match="step"):
                schedule(bad)


def test_an_overflowing_gradient_norm_is_inf_without_a_warning():
    import warnings
    from tinymtt.optim import global_grad_norm
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the trainer says why it stops; numpy must not warn first
        assert global_grad_norm({"w": np.full(4, 1e30, dtype=np.float32)}) == float("inf")
