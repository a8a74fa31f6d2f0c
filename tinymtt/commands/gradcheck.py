"""``tinymtt gradcheck [--only NAME]``: every op, layer and model gradient checked (tinymtt.gradcheck.suite).

Exit code 0 when every check passes, 1 when one fails, 2 when ``--only`` matches none.
"""

from __future__ import annotations

from ..gradcheck.suite import format_table, run_checks
from .common import EXIT_FAILED, Command, UsageError


def add_arguments(parser):
    parser.add_argument("--only", default=None, help="only checks whose name contains this")


def run(args) -> int:
    rows = run_checks(only=args.only)
    if not rows:
        raise UsageError(f"tinymtt gradcheck: no check matches --only {args.only!r}")
    print(format_table(rows))
    return 0 if all(r.passed for r in rows) else EXIT_FAILED


COMMAND = Command("gradcheck", "check every op, layer and the whole model by finite differences", add_arguments, run)
