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


def truncate_history(path, step: int) -> bool:
    """Drop the lines logged after ``step`` (a resumed run logs them again); returns whether a torn
    last line (a run stopped while writing it) was dropped. A broken line elsewhere is a ValueError naming the file."""
    path = Path(path)
    if not path.exists():
        return False
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept, torn = [], False
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                torn = True
                break
            raise ValueError(f"{path}, line {number}, is not JSON ({error}); fix or remove that line") from None
        if record.get("step", 0) <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))
    return torn
