"""interop/train_ddp.py under torchrun: 2 processes on the CPU (gloo), a few steps of a tiny model.

The replicas must stay bit-identical, the loss must fall, and the file it writes must go back into a
tinymtt run (tinymtt import) whose parameters are the trained ones. Skips without torch or safetensors.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tinymtt import checkpoint, export
from tinymtt.cli import main

from helpers import INTEROP, interop_or_skip

ROOT = Path(__file__).resolve().parents[1]


def test_two_processes_keep_identical_replicas_and_the_loss_falls(tmp_path):
    torch_model = interop_or_skip()
    run, exported, trained = tmp_path / "run", tmp_path / "model.safetensors", tmp_path / "trained.safetensors"
    assert main(["train", "--examples", "300", "--d-model", "16", "--heads", "2", "--layers", "1", "--steps", "1",
                 "--no-progress", "--out", str(run)]) == 0
    assert main(["export", str(run), str(exported)]) == 0
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                       OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(INTEROP / "train_ddp.py"), str(exported), str(trained), "--steps", "40",
                           "--log-every", "5", "--lr", "0.01", "--batch-size", "32"],
                          capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    losses = [line["loss"] for line in lines if "loss" in line]
    final = next(line for line in lines if "replicas_identical" in line)
    assert final["ranks"] == 2 and final["replicas_identical"] and final["max_difference"] == 0.0
    assert len(losses) == 9 and np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), losses
    back = tmp_path / "back"
    assert main(["import", str(trained), str(back)]) == 0
    imported = checkpoint.load(back / "model.npz")
    assert checkpoint.load_meta(back / "model.npz")["extra"]["step"] == 1 + 40
    copy, _ = torch_model.load(trained)
    tensors = export.to_torch_layout(imported)
    assert all(np.array_equal(tensors[name], value.numpy()) for name, value in copy.state_dict().items())
    start = checkpoint.load(run / "model.npz").parameters()
    assert not np.array_equal(start["heads.0.linear.weight"], imported.parameters()["heads.0.linear.weight"])
