"""The `tinymtt` command (thin: parses arguments, calls the library)."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    print("tinymtt: training, evaluation and benchmarks are coming (see the issues); "
          "the ops, backend switch and gradient checker are in place: python -m pytest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
