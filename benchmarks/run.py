"""Run the training-step benchmark from a source checkout: ``python benchmarks/run.py --config all``.

The same as ``tinymtt bench`` / ``python -m tinymtt.bench``; see tinymtt/bench.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the checkout, even when tinymtt is not installed

from tinymtt.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
