"""tinymtt: a small, readable multi-task Transformer with hand-written backward passes."""

__version__ = "0.1.0"

from . import backend  # noqa: F401
