"""``tinymtt export RUN OUT.safetensors`` and ``tinymtt import MODEL.safetensors RUN``: the road past one machine.

    tinymtt export RUN OUT.safetensors     the run's model under torch.nn names and layouts (tinymtt.export)
    tinymtt import MODEL.safetensors RUN   back into a run folder that eval and demo read

In between, interop/train_ddp.py continues the training in PyTorch under
DistributedDataParallel (``torchrun --nproc_per_node N``) and writes the same layout.
The file carries the model config and the run's train and data description in its
metadata, so the imported run evaluates on the same data splits. Nothing is
overwritten without --force; a file that is not a tinymtt export, or whose
tensors do not fit its config, is refused in one line (exit code 2).
"""

from __future__ import annotations

from pathlib import Path

from .. import checkpoint, export
from ..train import TrainConfig
from .common import Command, UsageError, writable_file, writable_folder
from .runs import load_run, write_config
from .train import RUN_FILES


def add_export_arguments(parser):
    parser.add_argument("run", help="run folder written by tinymtt train (or tinymtt import)")
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run_export(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir() and not args.force:
        raise UsageError(f"tinymtt export: OUT {out} already exists: choose another name, or overwrite it with --force")
    writable_file(out, "OUT")
    model, document = load_run(args.run)
    step = checkpoint.load_meta(Path(args.run) / "model.npz").get("extra", {}).get("step", 0)
    run = {"train": document["train"].to_dict(), "data": document["data"], "backend": document["backend"],
           "step": step}
    export.save(model, out, run)
    tensors = len(export.layout(model.parameters()))
    print(f"wrote {out}: {tensors} tensors, {model.num_parameters():,} parameters ({model.config.dtype}), "
          f"{model.config.mode} mode, step {step}")
    print(f"continue in PyTorch: torchrun --nproc_per_node 2 interop/train_ddp.py {out} NEW.safetensors")
    return 0


def add_import_arguments(parser):
    parser.add_argument("model", help="a .safetensors file written by tinymtt export or interop/train_ddp.py")
    parser.add_argument("run", help="the run folder to write (config.json, model.npz)")
    parser.add_argument("--force", action="store_true", help="replace the run that RUN holds")


def run_import(args) -> int:
    source, run_dir = Path(args.model), Path(args.run)
    try:
        model, run = export.load(source)                 # refuses a file that is not a fitting export
    except checkpoint.CheckpointError as error:
        raise UsageError(f"tinymtt import: MODEL: {error}") from None
    missing = [key for key in ("train", "data") if not isinstance(run.get(key), dict)]
    if missing:
        raise UsageError(f"tinymtt import: {source} has no run description ({' and '.join(missing)} missing from "
                         f"its metadata 'run'): write the file with tinymtt export or interop/train_ddp.py")
    try:
        train_config = TrainConfig(**run["train"])
    except (TypeError, ValueError) as error:
        raise UsageError(f"tinymtt import: {source}: the train description in its metadata is invalid ({error})")
    writable_folder(run_dir, "RUN")
    used = [name for name in RUN_FILES if (run_dir / name).exists()]
    if used and not args.force:
        raise UsageError(f"tinymtt import: RUN {run_dir} already holds a run ({', '.join(used)}): choose another "
                         f"folder, or replace it with --force (deletes those files)")
    for name in used:
        (run_dir / name).unlink()
    step = run.get("step", 0)
    write_config(run_dir, model.config, train_config, run["data"], run.get("backend", "numpy"))
    checkpoint.save(model, run_dir / "model.npz", extra={"step": step, "imported_from": str(source)})
    print(f"imported {source} into {run_dir}: {model.num_parameters():,} parameters, {model.config.mode} mode, "
          f"step {step}")
    print(f"measure it: tinymtt eval {run_dir}    show it: tinymtt demo {run_dir}")
    return 0


EXPORT = Command("export", "write a run's model as safetensors under torch.nn names (for PyTorch)",
                 add_export_arguments, run_export)
IMPORT = Command("import", "read a safetensors export back into a run folder", add_import_arguments, run_import)
