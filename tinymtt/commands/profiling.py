"""Where a training step's time goes: a profile by op, for ``tinymtt bench --profile``.

While profiling, every op function (``*_forward``/``*_backward`` from
``tinymtt.ops``) is replaced, in each tinymtt module that imported it, by a
timed wrapper; so are the optimizer's ``step`` and the model's ``zero_grad``.
Everything is restored afterwards. Times are *self* times: an op that calls
another (cross-entropy calls log-softmax) is charged only for its own work.
What no wrapper covers -- residual additions, batch checks, Python glue --
is reported as "other".
"""

from __future__ import annotations

import functools
import sys
import time
from collections import defaultdict

# the op's module (tinymtt.ops.<module>) -> its category in the profile
CATEGORIES = {"linear": "matmul/linear", "attention": "attention", "split_heads": "attention", "softmax": "softmax",
              "layernorm": "layernorm", "activations": "gelu", "embedding": "embedding", "losses": "loss",
              "pooling": "loss", "dropout": "other", "masks": "other"}


class OpTimer:
    """A context manager that wraps the op functions in timers and restores them on exit."""

    def __init__(self, synchronize):
        self.synchronize = synchronize
        self.self_seconds = defaultdict(float)   # (category, function name) -> self time
        self._children = []                      # a stack: time spent in timed callees
        self._patched = []                       # (namespace, attribute, original or None)

    def wrap(self, function, category, name):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            self.synchronize()
            self._children.append(0.0)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.synchronize()
                elapsed = time.perf_counter() - start
                self.self_seconds[(category, name)] += elapsed - self._children.pop()
                if self._children:
                    self._children[-1] += elapsed
        return timed

    def patch(self, namespace, attribute, category, name=None):
        original = getattr(namespace, attribute)
        own = attribute in vars(namespace)   # False for a method looked up on an instance's class
        self._patched.append((namespace, attribute, original if own else None))
        setattr(namespace, attribute, self.wrap(original, category, name or attribute))

    def __enter__(self):
        for module_name, module in list(sys.modules.items()):
            if module is None or not (module_name == "tinymtt" or module_name.startswith("tinymtt.")):
                continue
            for attribute, value in list(vars(module).items()):
                source = getattr(value, "__module__", "") or ""
                if (callable(value) and source.startswith("tinymtt.ops.")
                        and attribute.endswith(("_forward", "_backward"))):
                    self.patch(module, attribute, CATEGORIES.get(source.rsplit(".", 1)[1], "other"))
        return self

    def __exit__(self, *exc_info):
        for namespace, attribute, original in reversed(self._patched):
            if original is None:
                delattr(namespace, attribute)    # the class's method shows through again
            else:
                setattr(namespace, attribute, original)
        self._patched.clear()
        return False


def profile(step, synchronize, steps=5, warmup=2, patches=()) -> dict:
    """Self time per op category and per function of ``step()``, in ms per step (mean over ``steps``).

    synchronize: waits for the device (a no-op on the CPU); patches: (object,
    attribute, category, name) of more functions to time, e.g. the optimizer's step.
    """
    for _ in range(warmup):
        step()
    with OpTimer(synchronize) as timer:
        for namespace, attribute, category, name in patches:
            timer.patch(namespace, attribute, category, name)
        synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize()
        total = time.perf_counter() - start
    per_step = 1000.0 / steps
    by_function = {f"{category}: {name}": seconds * per_step
                   for (category, name), seconds in timer.self_seconds.items()}
    by_category = defaultdict(float)
    for (category, _), seconds in timer.self_seconds.items():
        by_category[category] += seconds * per_step
    by_category["other"] += total * per_step - sum(timer.self_seconds.values()) * per_step   # untimed glue
    ordered = lambda table: dict(sorted(table.items(), key=lambda item: -item[1]))  # noqa: E731
    return {"step_ms": total * per_step, "by_category": ordered(by_category), "by_function": ordered(by_function)}


def format_profile(result, top=12) -> str:
    """A profile as text: the categories with their shares, then the ``top`` functions."""
    total = result["step_ms"]
    lines = [f"{'category':<16}{'ms/step':>9}{'share':>8}"]
    lines += [f"{name:<16}{ms:>9.2f}{ms / total:>8.0%}" for name, ms in result["by_category"].items()]
    lines.append(f"{'total':<16}{total:>9.2f}")
    lines.append(f"\n{'op (self time)':<40}{'ms/step':>9}")
    lines += [f"{name:<40}{ms:>9.2f}" for name, ms in list(result["by_function"].items())[:top]]
    return "\n".join(lines)
