"""Single-task vs multi-task on the UCI digits: does learning the auxiliary tasks help the digit?

    python benchmarks/digits_transfer.py [--seeds 0 1 2] [--steps 1500]

For each seed, two models with the same architecture, data split and step
budget: one trained on `digit` alone, one on `digit` + `transform` + `row`
(conditioned mode: each example trains one task per step, so the multi-task
model sees the digit label on about a third of its examples). Prints the
test accuracy of the digit task for each, then mean ± standard deviation.
Needs scikit-learn (pip install 'tinymtt[digits]').
"""

import argparse
import json
import statistics
import time

from tinymtt.commands.common import one_blas_thread

one_blas_thread()   # small matrices: one BLAS thread (see README); before NumPy loads

from tinymtt.config import ModelConfig  # noqa: E402
from tinymtt.data import load_digits_suite  # noqa: E402
from tinymtt.metrics import evaluate  # noqa: E402
from tinymtt.model import MultiTaskTransformer  # noqa: E402
from tinymtt.train import TrainConfig, Trainer  # noqa: E402


def run(tasks, seed, steps, mode):
    data = load_digits_suite(seed=0, tasks=tasks)
    train, val, test = data.split((0.7, 0.15, 0.15), seed=0)   # one split for every run: only the model seed varies
    config = ModelConfig(**data.model_config_kwargs(), d_model=64, num_heads=4, d_ff=256, num_layers=2,
                         dropout=0.1, mode=mode, seed=seed)
    model = MultiTaskTransformer(config)
    trainer = Trainer(model, train, val, TrainConfig(steps=steps, batch_size=64, lr=2e-3, seed=seed,
                                                     eval_every=steps), progress=False)
    trainer.fit()
    return evaluate(model, test)["digit"]["accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--mode", choices=["conditioned", "joint"], default="conditioned")
    args = parser.parse_args()
    results = {"single": [], "multi": []}
    start = time.perf_counter()
    for seed in args.seeds:
        results["single"].append(run(["digit"], seed, args.steps, args.mode))
        results["multi"].append(run(["digit", "transform", "row"], seed, args.steps, args.mode))
        print(f"seed {seed}: digit test accuracy single-task {results['single'][-1]:.4f}, "
              f"multi-task {results['multi'][-1]:.4f}", flush=True)
    for name, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name:>6}-task: {statistics.mean(values):.4f} ± {spread:.4f} over seeds {args.seeds}")
    print(json.dumps({"steps": args.steps, "mode": args.mode, **results,
                      "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
