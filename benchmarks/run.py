"""Run the training-step benchmark from a source checkout: ``python benchmarks/run.py --config all``.

The same as ``tinymtt bench``; see tinymtt/commands/bench.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the checkout, even when tinymtt is not installed

from tinymtt.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
