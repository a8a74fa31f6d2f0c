"""Run folders: what `tinymtt train` writes, and how `eval`, `demo` and `--resume` read it back.

    RUN/config.json     {"model": ModelConfig, "train": TrainConfig, "data": {...}, "backend": ...}
    RUN/history.jsonl   one JSON object per logged step / evaluation (tinymtt.train.history)
    RUN/model.npz       parameters (checkpoint.save)      RUN/trainer.npz   optimizer, data order
    RUN/metrics.json    {task: {metric: value}} on the test split, at the end
    RUN/curves.png      training curves (only when matplotlib is installed)
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import checkpoint
from ..config import ModelConfig
from ..data import load_dataset
from ..train import TrainConfig


def data_splits(data_args: dict):
    """(train, val, test) from the data description stored in config.json."""
    args = dict(data_args)
    name, split_seed = args.pop("name"), args.pop("split_seed", 0)
    fractions, tasks = tuple(args.pop("fractions", (0.9, 0.05, 0.05))), args.pop("tasks", None)
    dataset = load_dataset(name, **args)
    if tasks:
        dataset = dataset.select_tasks(tasks)
    return dataset.split(fractions, seed=split_seed)


def write_config(run_dir: Path, model_config: ModelConfig, train_config: TrainConfig, data_args: dict, backend: str):
    run_dir.mkdir(parents=True, exist_ok=True)
    document = {"model": model_config.to_dict(), "train": train_config.to_dict(), "data": data_args,
                "backend": backend}
    (run_dir / "config.json").write_text(json.dumps(document, indent=2) + "\n")


def read_config(run_dir) -> dict:
    """The run's config.json, with the configs rebuilt; clear errors for a missing/broken run."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if run_dir.exists() and not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is a file, not a run folder (a run folder is what tinymtt train --out writes)")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist (train one with: tinymtt train --out {run_dir})")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {run_dir} is not a tinymtt run folder")
    try:
        document = json.loads(path.read_text())
        return {"model": ModelConfig.from_dict(document["model"]), "train": TrainConfig(**document["train"]),
                "data": document["data"], "backend": document.get("backend", "numpy")}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a valid tinymtt run config: {error}") from None


def load_run(run_dir):
    """(model with the trained parameters, config document) of a finished or stopped run."""
    document = read_config(run_dir)
    model = checkpoint.load(Path(run_dir) / "model.npz")
    return model, document
