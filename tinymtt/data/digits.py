"""The digits suite: 1,797 handwritten digits (8×8 images) read row by row, three tasks.

The UCI ML hand-written digits (Alpaydin & Kaynak 1998) ship inside
scikit-learn (``sklearn.datasets.load_digits``), so nothing is downloaded;
scikit-learn is the optional extra ``pip install 'tinymtt[digits]'``.

Each image becomes a sequence of 8 row-tokens of 8 pixels (continuous inputs,
input_dim 8, pixels / 16 in [0, 1], float32). Before it is read, each image
gets, drawn with the seed:

1. a transform t in {0: identity, 1: horizontal flip (mirror left-right),
   2: vertical flip (upside down), 3: rotate 180°} -- applied to the image;
2. a blanked row r in {0..7} of the *transformed* image, set to zero.

The tasks:

    digit      sequence    the digit's label 0..9 (the original label: flips do not change it)   10 classes
    transform  sequence    which transform t was applied                                          4 classes
    row        regression  the 8 pixels of the blanked row r, as they were before blanking        8 outputs

The model is not told which row is blank: it must find the zero row and fill it
in. The inputs are the same whatever ``tasks`` selects (a digit-only baseline
sees the same transformed, blanked images), and ``metadata`` keeps each
example's ``transform`` and ``blank_row``.
"""

from __future__ import annotations

import numpy

from ..config import TaskSpec
from ..validation import check_integer
from .dataset import MultiTaskDataset, choose_tasks

DIGITS_TASKS = ("digit", "transform", "row")
TRANSFORMS = ("identity", "horizontal flip", "vertical flip", "rotate 180")
SOURCE = "UCI ML hand-written digits (Alpaydin & Kaynak 1998), via scikit-learn's bundled copy; CC BY 4.0"


def transform_images(images, transform):
    """Apply transform t_n (see TRANSFORMS) to image n. images: (N, H, W); transform: (N,) in 0..3.

    Every transform is its own inverse, so applying it twice gives the image back.
    """
    images = numpy.asarray(images)
    transform = numpy.asarray(transform)
    mirrored = numpy.where((transform % 2 == 1)[:, None, None], images[:, :, ::-1], images)          # 1, 3
    return numpy.where((transform >= 2)[:, None, None], mirrored[:, ::-1, :], mirrored)              # 2, 3


def _load_sklearn_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits data set needs scikit-learn, which bundles it (no download): "
                          "pip install 'tinymtt[digits]'  (or: pip install scikit-learn)") from None
    data = load_digits()
    return data.images, data.target


def load_digits_suite(seed: int = 0, tasks=None) -> MultiTaskDataset:
    """The digits suite with the tasks of DIGITS_TASKS (all by default); seeded transforms and blank rows."""
    seed = check_integer(seed, "seed", 0)
    names = choose_tasks(tasks, DIGITS_TASKS)
    images, labels = _load_sklearn_digits()                       # (1797, 8, 8) in 0..16, (1797,)
    size, height, width = images.shape
    rng = numpy.random.default_rng(seed)
    transform = rng.integers(0, len(TRANSFORMS), size=size)
    blank_row = rng.integers(0, height, size=size)
    pixels = transform_images(images / 16.0, transform).astype(numpy.float32)   # (N, 8, 8)
    examples = numpy.arange(size)
    row_target = pixels[examples, blank_row].copy()                              # (N, 8)
    pixels[examples, blank_row] = 0.0
    targets = {"digit": labels.astype(numpy.int64), "transform": transform.astype(numpy.int64), "row": row_target}
    specs = {"digit": TaskSpec("digit", "sequence", 10), "transform": TaskSpec("transform", "sequence", 4),
             "row": TaskSpec("row", "regression", width)}
    return MultiTaskDataset(
        inputs=pixels, lengths=numpy.full(size, height, dtype=numpy.int64),
        targets={name: targets[name] for name in names}, tasks=[specs[name] for name in names],
        input_dim=width, name="digits", source=SOURCE,
        metadata={"transform": transform.astype(numpy.int64), "blank_row": blank_row.astype(numpy.int64)})
