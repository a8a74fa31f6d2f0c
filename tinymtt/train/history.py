"""history.jsonl: one JSON object per line, written as training goes, so a stopped run keeps what it logged.

    {"step": 25, "loss": ..., "losses": {task: L_τ or null}, "weights": {...}, "lr": ..., "grad_norm": ...,
     "seconds": ..., "conflict": {...} (with --log-conflict)}      a logged training step
    {"step": 500, "validation": {task: {metric: value}}}            an evaluation

A task with no example in a logged step's batch has ``null``, never a made-up 0.
"""

from __future__ import annotations

import json
from pathlib import Path


def append_record(path, entry: dict):
    """Add one line to the history (the file is opened, written and closed: nothing waits in a buffer)."""
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def read_history(path) -> list:
    """The records of a history.jsonl file (a partial last line is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_history(path, step: int):
    """Drop the lines logged after ``step`` (a resumed run logs them again)."""
    path = Path(path)
    if path.exists():
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in kept))
