"""What every picture shares: finding matplotlib (an optional extra), and saving a PNG the same way each time.

matplotlib is optional (``pip install 'tinymtt[lessons]'``). The pictures a
run draws for itself (curves.png, conflict.png) are skipped without it; the
figures that ``tinymtt figures`` is asked for stop with one clear error.
Every PNG is written without metadata (no version string, no date), so the
same drawing gives the same bytes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

INSTALL = "pip install 'tinymtt[lessons]'"
DPI = 110                      # dots per inch of every PNG


class MissingMatplotlib(ImportError):
    """matplotlib is not installed (the message says how to install it)."""


def figure_class():
    """(matplotlib, its Figure class), or MissingMatplotlib naming the extra to install.

    A ``Figure`` made directly belongs to no pyplot window and touches no global state.
    """
    try:
        import matplotlib
        import matplotlib.style
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingMatplotlib(f"matplotlib is not installed, and the figures need it: {INSTALL}") from None
    return matplotlib, Figure


@contextlib.contextmanager
def reproducible_style():
    """Inside the block: matplotlib's default style (whatever a matplotlibrc says) and a fixed hash
    salt, so the same drawing gives the same bytes. Yields the Figure class to draw with."""
    matplotlib, Figure = figure_class()
    with matplotlib.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "tinymtt"}):
        yield Figure


def pyplot(headless=True):
    """matplotlib.pyplot, or None when matplotlib is not installed.

    headless: draw for files only (the Agg backend); False keeps the backend a notebook chose.
    """
    try:
        import matplotlib
    except ImportError:
        return None
    if headless:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(figure, path) -> Path:
    """Write ``figure`` as a PNG with no metadata: the same drawing gives the same bytes."""
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    return Path(path)
