"""nbgrader configuration for a course that takes tinymtt's lessons as they are.

Copy this file into the course folder that ``nbgrader quickstart`` made (it
replaces that folder's nbgrader_config.py), and each lesson into
``source/<assignment>/``; README.md, "For instructors", has every command.
"""

import os

from tinymtt.exercises import STUB

c = get_config()  # noqa: F821 -- nbgrader's config loader defines get_config

# The stub of a released exercise: the very lines `tinymtt exercises` writes
# (tinymtt.exercises.STUB), so both routes hand out the same notebooks, cell for cell.
c.ClearSolutions.code_stub = {"python": f"# YOUR CODE HERE\n{STUB}"}

# A lesson's slowest cell (training) takes under a minute on a laptop CPU; under the
# quick setting below, seconds. nbgrader's default, 30 s, is too tight for the full lessons.
c.Execute.timeout = 300

# Autograding: the short training runs (tinymtt.exercises.quick) and one BLAS
# thread per kernel, so several submissions can be graded side by side. The
# kernels nbgrader starts inherit this environment.
os.environ.setdefault("TINYMTT_QUICK", "1")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
