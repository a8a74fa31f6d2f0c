"""tinymtt: a small, readable multi-task Transformer with hand-written backward passes.

The submodules are imported on first use (``tinymtt.backend``, ``tinymtt.ops``, ...),
so ``import tinymtt`` loads nothing heavy: the command line can still choose
NumPy's BLAS thread count before NumPy is imported.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name):
    """``tinymtt.backend`` etc. without importing them at package import."""
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as error:
        if error.name == f"{__name__}.{name}":
            raise AttributeError(f"module 'tinymtt' has no attribute {name!r}") from None
        raise
