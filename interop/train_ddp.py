"""Continue training a ``tinymtt export`` under PyTorch's DistributedDataParallel.

    torchrun --nproc_per_node 2 interop/train_ddp.py MODEL.safetensors OUT.safetensors [--steps 200]
    tinymtt import OUT.safetensors RUN          # back into a tinymtt run folder

Each process (rank) holds a replica of the model (interop/torch_model.py); DDP
averages the gradients over the ranks in every backward pass, so the replicas
take the same step and stay identical. The backend is nccl on GPUs (one per
rank, ``LOCAL_RANK``) and gloo on CPUs.

The data are tinymtt's own data sets, as the run that was exported described
them (its metadata ``run``: the data set, its seed and split): the training split
is cut into one shard per rank (rank r takes rows r, r + N, r + 2N, ...), and
each rank draws its batches of ``--batch-size`` / N rows from its shard with
tinymtt's BatchIterator (seeded by the rank). The loss is tinymtt's: Σ_τ w_τ L_τ
with the run's fixed task weights (1 by default); the optimizer is AdamW
with the run's weight decay and gradient clipping, and tinymtt's schedule: a linear
warm-up over the first 10 % of the steps (at most 100) to the run's peak learning rate
(``--lr`` to change it), then a cosine decay to its minimum (the optimizer's moments start
from zero again, so the warm-up matters).

Rank 0 prints one JSON line per logged step ({"step", "loss"}: the mean over the
ranks) and at the end {"replicas_identical", "max_difference"}: every rank's
parameters are gathered and compared with rank 0's, bit for bit. It then writes
OUT in the same names and layouts, with the metadata carried over (the run's
step advanced), so ``tinymtt import`` reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parent))     # torch_model.py beside this file
import torch_model

from tinymtt.commands.runs import data_splits
from tinymtt.data import BatchIterator
from tinymtt.optim import WarmupCosine


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a .safetensors file written by tinymtt export (or by this script)")
    parser.add_argument("out", help="the .safetensors file to write (rank 0)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=None, help="global batch, split over the ranks "
                                                                     "(default: the run's)")
    parser.add_argument("--lr", type=float, default=None, help="default: the run's peak learning rate")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def batches(dataset, batch_size, mode, seed):
    """tinymtt batches of this rank's shard, epoch after epoch, as torch tensors."""
    epoch = 0
    while True:
        yield from BatchIterator(dataset, batch_size, mode, seed=seed * 1000 + epoch)
        epoch += 1


def flat_parameters(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def main(argv=None) -> int:
    args = parse(argv)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    try:
        model, meta = torch_model.load(args.model, device)
        run = json.loads(meta.get("run", "{}"))
        if not isinstance(run.get("data"), dict):
            raise SystemExit(f"{args.model} has no data description in its metadata 'run': "
                             f"write it with tinymtt export RUN {args.model}")
        train_args = run.get("train", {})
        config = model.config
        train_set = data_splits(run["data"])[0]
        shard = train_set.subset(numpy.arange(rank, len(train_set), world))
        batch_size = max((args.batch_size or train_args.get("batch_size", 64)) // world, 1)
        weights = torch.tensor([float((train_args.get("weights") or {}).get(t.name, 1.0)) for t in config.tasks],
                               dtype=model.positions.dtype, device=device)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        optimizer = torch.optim.AdamW(ddp.parameters(), lr=args.lr or train_args.get("lr", 3e-3),
                                      weight_decay=train_args.get("weight_decay", 0.01))
        clip = train_args.get("clip_norm", 1.0)
        schedule = WarmupCosine(args.lr or train_args.get("lr", 3e-3), warmup_steps=min(100, args.steps // 10),
                                total_steps=args.steps, min_lr=train_args.get("min_lr", 1e-4))
        stream = batches(shard, batch_size, config.mode, args.seed * world + rank)
        ddp.train()
        for step in range(1, args.steps + 1):
            batch = torch_model.to_torch(next(stream), device)
            outputs = ddp(batch["inputs"], batch["mask"], batch.get("task_ids"))
            losses, _ = torch_model.task_losses(ddp, outputs, batch)
            loss = sum(w * value for w, value in zip(weights, losses.values()))
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            optimizer.zero_grad()
            loss.backward()                                  # DDP averages the gradients over the ranks here
            if clip:
                torch.nn.utils.clip_grad_norm_(ddp.parameters(), clip)
            optimizer.step()
            if step % args.log_every == 0 or step in (1, args.steps):
                mean = loss.detach().clone()
                dist.all_reduce(mean)
                if rank == 0:
                    print(json.dumps({"step": step, "loss": mean.item() / world}), flush=True)
        mine = flat_parameters(model)
        gathered = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine)
        if rank == 0:
            difference = max(float((other - mine).abs().max()) for other in gathered)
            identical = all(torch.equal(other, mine) for other in gathered)
            print(json.dumps({"replicas_identical": identical, "max_difference": difference, "ranks": world}),
                  flush=True)
            run["step"] = int(run.get("step", 0)) + args.steps
            meta = dict(meta, run=json.dumps(run))
            torch_model.save(model, args.out, meta)
            print(json.dumps({"wrote": str(args.out)}), flush=True)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
