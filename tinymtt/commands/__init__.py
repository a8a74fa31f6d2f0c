"""The `tinymtt` commands, one module each; ``tinymtt.cli`` parses the command line and runs one.

    train       train, eval, demo                 runs       the run folder they share
    gradcheck   every gradient, checked           bench      one training step beside PyTorch
    doctor      what is installed                 profiling  where bench's step spends its time
    compare     every strategy vs single-task     figures    the README and lesson figures
    exercises   student copies of the lessons     common     what every command shares

A command module declares its ``Command`` (tinymtt.commands.common): its
options and the function that runs it. The library (everything outside this
package and cli.py) never imports from here.
"""
