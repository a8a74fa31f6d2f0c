"""Built-in multi-task data sets and the batches the model consumes.

Nothing is downloaded at run time:

* ``make_sequence_suite(num_examples, seed)`` -- random digit sequences, four
  tasks (sort, reverse, max, mean), generated on the fly;
* ``load_digits_suite(seed)`` -- the UCI handwritten digits read row by row,
  three tasks (digit, transform, row); needs the extra ``pip install 'tinymtt[digits]'``;
* ``load_words_suite(seed, num_examples=20000)`` -- English words from the CMU
  Pronouncing Dictionary, letter by letter, four tasks (stress, syllables,
  hyphen, phonemes); needs the extra ``pip install 'tinymtt[words]'``;
* ``conflict_suite(num_examples, seed)`` -- the sequence suite's inputs with
  tasks built to conflict (max vs min by default), for ``tinymtt compare``.

A data set is a ``MultiTaskDataset`` of host NumPy arrays;
``make_batch`` / ``BatchIterator`` turn it into batch dicts on the current
backend, in the format of ``tinymtt.model``::

    data = make_sequence_suite(4000, seed=0)
    train, val, test = data.split((0.8, 0.1, 0.1), seed=0)
    config = ModelConfig(**data.model_config_kwargs(), d_model=32, num_heads=2)
    for batch in BatchIterator(train, batch_size=64, mode="conditioned", seed=0):
        total, per_task, counted = model.loss(batch)
"""

from .batching import SAMPLING, BatchIterator, make_batch, sampling_weights
from .conflict import CONFLICT_TASKS, conflict_suite
from .dataset import MultiTaskDataset, choose_tasks
from .digits import DIGITS_TASKS, TRANSFORMS, load_digits_suite, transform_images
from .sequences import SEQUENCE_TASKS, make_sequence_suite, sequence_targets
from .words import WORDS_TASKS, load_words_suite

# every built-in data set by name; a new one is a file in this folder and a line here
DATASETS = {"sequences": make_sequence_suite, "digits": load_digits_suite, "conflict": conflict_suite,
            "words": load_words_suite}


def load_dataset(name: str, **kwargs) -> MultiTaskDataset:
    """A built-in data set by name (see DATASETS); kwargs go to its maker."""
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](**kwargs)


__all__ = ["BatchIterator", "CONFLICT_TASKS", "DATASETS", "DIGITS_TASKS", "MultiTaskDataset", "SAMPLING",
           "SEQUENCE_TASKS", "TRANSFORMS", "WORDS_TASKS", "choose_tasks", "conflict_suite", "load_dataset",
           "load_digits_suite", "load_words_suite", "make_batch", "make_sequence_suite", "sampling_weights",
           "sequence_targets", "transform_images"]
