"""Which tasks should train together? The best split of T tasks into at most k groups, for every k.

A *grouping* is a partition of the tasks: each group is trained as one
multi-task network, each task in exactly one group, so k groups cost k
networks. (TAG, Fifty et al. 2021, also allows groups that overlap -- a task
trained in several networks and served by the best of them. We do not: every
task is trained once, and a budget of k groups is k trainings, no more.)

**Score.** With an affinity matrix Z (T, T), Z[i, j] = what task i does for
task j (tinymtt.mtl.affinity: the lookahead affinity averaged over training),
the affinity that task j receives in its group g is the mean over its
group-mates,

    a_j(g) = (1 / (|g| − 1)) Σ_{i ∈ g, i ≠ j} Z[i, j]        and 0 when j is alone,

and a grouping's score is Σ_j a_j(g(j)), as in TAG: each task receives the
most affinity from its group-mates. A task alone scores 0: it gives up no
loss and gains none, the single-task baseline. Any other ``group_value``
(e.g. the measured gain of each trained subset, for the brute-force baseline
of ``tinymtt groups --validate``) plugs into the same search.

**Search.** Exhaustive: every partition of T tasks (the Bell number B_T: 15
for 4 tasks, 4,140 for 8, 115,975 for 10), each group valued once. For each
budget k = 1..T the answer is the best partition with at most k groups; on
a tie the one with fewer groups wins (it is cheaper), then the first found.
"""

from __future__ import annotations

import math

import numpy

MAX_TASKS = 10   # B_10 = 115,975 partitions; B_12 would be 4.2 million


def partitions(num_tasks):
    """Every partition of range(num_tasks), as a tuple of groups (tuples, ascending), each exactly once.

    Built task by task: task t joins one of the groups so far or opens a new one.
    """
    def extend(task, groups):
        if task == num_tasks:
            yield tuple(tuple(group) for group in groups)
            return
        for group in groups:
            group.append(task)
            yield from extend(task + 1, groups)
            group.pop()
        groups.append([task])
        yield from extend(task + 1, groups)
        groups.pop()

    if num_tasks == 0:
        return iter(())
    return extend(0, [])


def check_affinity(affinity, name="affinity") -> numpy.ndarray:
    """A square, finite float64 matrix, or a ValueError naming what is wrong."""
    matrix = numpy.asarray(affinity, dtype=numpy.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"{name} must be a square T×T matrix, got shape {matrix.shape}")
    bad = numpy.argwhere(~numpy.isfinite(matrix))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise ValueError(f"{name} must be finite; [{i}][{j}] is {matrix[i, j]} (a pair never measured?)")
    return matrix


def affinity_group_value(affinity):
    """The value of one group under affinity Z: Σ_{j ∈ g} a_j(g) (module docstring)."""
    matrix = check_affinity(affinity)

    def value(group) -> float:
        if len(group) < 2:
            return 0.0
        block = matrix[numpy.ix_(group, group)]
        received = block.sum(axis=0) - numpy.diag(block)     # Σ_{i≠j} Z[i, j], per receiving task j
        return float(received.sum() / (len(group) - 1))

    return value


def best_partitions(num_tasks, group_value) -> list:
    """For each budget k = 1..T: (k, best partition with at most k groups, its score).

    group_value: a function of one group (a tuple of task indices) to a float;
    a partition scores the sum over its groups.
    """
    if not isinstance(num_tasks, int) or not 1 <= num_tasks <= MAX_TASKS:
        raise ValueError(f"the number of tasks must be 1..{MAX_TASKS} for an exhaustive search, got {num_tasks!r}")
    values = {}
    best = {}                                             # exact group count -> (score, partition)
    for partition in partitions(num_tasks):
        score = 0.0
        for group in partition:
            if group not in values:
                values[group] = float(group_value(group))
            score += values[group]
        count = len(partition)
        if count not in best or score > best[count][0]:
            best[count] = (score, partition)
    results, leader = [], None
    for budget in range(1, num_tasks + 1):
        if leader is None or best[budget][0] > leader[0]:
            leader = best[budget]
        results.append((budget, leader[1], leader[0]))
    return results


def groupings(affinity, task_names=None) -> list:
    """The best grouping for every budget under ``affinity``, as JSON-able dicts.

    Returns [{"budget": k, "groups": [[name, ...], ...], "score": s}, ...], k = 1..T.
    """
    matrix = check_affinity(affinity)
    names = list(task_names) if task_names is not None else [str(i) for i in range(len(matrix))]
    if len(names) != len(matrix):
        raise ValueError(f"task_names must name the {len(matrix)} tasks of the affinity matrix, got {names}")
    return [{"budget": budget, "groups": [[names[i] for i in group] for group in partition],
             "score": round(score, 12) if math.isfinite(score) else None}
            for budget, partition, score in best_partitions(len(matrix), affinity_group_value(matrix))]
