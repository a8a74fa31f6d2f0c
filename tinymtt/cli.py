"""The `tinymtt` command: it parses the command line and runs one command of tinymtt.commands.

    tinymtt train [options]        train a multi-task model (defaults: the sequence suite)
    tinymtt eval RUN               per-task metrics of a trained run
    tinymtt demo RUN               a few inputs with each task's prediction and target
    tinymtt gradcheck              check every op, layer and the whole model
    tinymtt bench                  one training step, timed beside PyTorch
    tinymtt doctor                 what is installed, what is missing, how to install it
    tinymtt compare                every balancing strategy on the same tasks and seeds
    tinymtt transfer               the label-budget sweep: single-task vs multi-task as the main labels grow
    tinymtt figures                regenerate the figures (seeded)
    tinymtt exercises OUT_DIR      student copies of the lessons (solutions replaced by stubs)
    tinymtt export RUN OUT.safetensors    the model under torch.nn names, for PyTorch (interop/)
    tinymtt import MODEL.safetensors RUN  back into a run folder

Every command is parsed and run the same way; bad options, bad values and
missing files give one clear line and exit code 2, a training that cannot go
on exit code 1, Ctrl-C one line and exit code 130 (a training saves its last
completed step first: tinymtt.train.Trainer.fit).
"""

from __future__ import annotations

import os
import sys

from .commands.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ArgumentParser, UsageError, one_blas_thread


def commands() -> list:
    """Every command, in the order ``tinymtt --help`` lists them.

    Imported here, not at the top: the commands load NumPy, and ``main`` first sets the BLAS thread count.
    """
    from .commands import bench, compare, doctor, exercises, figures, gradcheck, groups, interop, train, transfer
    return [train.TRAIN, train.EVAL, train.DEMO, gradcheck.COMMAND, bench.COMMAND, doctor.COMMAND,
            compare.COMMAND, transfer.COMMAND, groups.COMMAND, figures.COMMAND, exercises.COMMAND, interop.EXPORT,
            interop.IMPORT]


def build_parser(listed) -> ArgumentParser:
    """One parser, a sub-parser per command (``tinymtt NAME --help`` shows its options)."""
    parser = ArgumentParser(prog="tinymtt", description="A small multi-task Transformer with hand-written gradients.")
    subparsers = parser.add_subparsers(dest="command", parser_class=ArgumentParser, metavar="COMMAND")
    subparsers.required = True
    for command in listed:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(sub)
        sub.set_defaults(_run=command.run, _parser=sub)     # underscores: no clash with an option's name
    return parser


def parse(argv):
    """The options of one command; an unknown option is reported by that command's own parser."""
    args, unknown = build_parser(commands()).parse_known_args(argv)
    if unknown:
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["bench"]:           # the benchmark keeps both peers at their default threads
        one_blas_thread()
    # NumPy loads from here on, so only now, once the BLAS thread count is chosen (NumPy reads it as it loads)
    from .backend import BackendError
    from .checkpoint import CheckpointError
    from .train import TrainingError
    try:
        args = parse(argv)
        return args._run(args)
    except UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except TrainingError as error:
        print(f"tinymtt: training stopped: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as error:
        print(f"tinymtt: interrupted{': ' + str(error) if str(error) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`tinymtt eval RUN | head -1`): stop quietly, and let Python's
        # final flush of stdout write nowhere instead of raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except (FileNotFoundError, CheckpointError, BackendError, ValueError, KeyError, TypeError, ImportError,
            OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        if isinstance(error, OSError) and error.filename is not None and error.strerror:
            message = f"{error.filename}: {error.strerror}"
        print(f"tinymtt: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
