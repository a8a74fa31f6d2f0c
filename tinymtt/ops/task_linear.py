"""A linear map chosen per example by its task: out_n = x_n·W[t_n] + b[t_n].

The per-task piece of LoRA (x·A_t·B_t) and of the MMoE gates (x·W_g[t]):
every example (or joint-mode stream) n carries a task id t_n, and its rows
go through that task's matrix. No loop over the batch: the per-example
matrices are gathered (W[t], (N, Din, Dout)) and applied by one stacked matmul.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module, scatter_add
from ..validation import check_array, check_index_range, check_same_module, check_shape


class TaskLinearCache(NamedTuple):
    x: object          # (N, M, Din) the input, its middle axes flattened into M
    w_rows: object     # (N, Din, Dout) W[t_n], gathered
    task_ids: object   # (N,) int
    shape: tuple       # x's shape as given
    num_tasks: int
    has_bias: bool


def task_linear_forward(x, w, task_ids, b=None):
    """out[n] = x[n]·W[t_n] + b[t_n] for every example n.

    x: (N, ..., Din) -- e.g. (B, S, D); every row of example n uses the same matrix
    w: (T, Din, Dout) one matrix per task
    task_ids: (N,) int in [0, T)
    b: (T, Dout) or None
    returns out: (N, ..., Dout), cache
    """
    check_array(x, "x", min_ndim=2, kind="float")
    check_array(w, "w", ndim=3, kind="float")
    check_array(task_ids, "task_ids", ndim=1, kind="int")
    check_same_module(x=x, w=w, task_ids=task_ids, b=b)
    num_tasks, din, dout = w.shape
    check_shape(x, "x", (None,) * (x.ndim - 1) + (din,), "(N, ..., Din) with Din = w's second axis")
    check_shape(task_ids, "task_ids", (x.shape[0],), "(N,) with N = x's first axis")
    check_index_range(task_ids, "task_ids", num_tasks, "number of tasks")
    if b is not None:
        check_array(b, "b", ndim=2, kind="float")
        check_shape(b, "b", (num_tasks, dout), "(T, Dout)")
    rows = x.reshape(x.shape[0], -1, din)                      # (N, M, Din)
    w_rows = w[task_ids]                                        # (N, Din, Dout): gather by task id
    out = rows @ w_rows                                         # one stacked matmul
    if b is not None:
        out = out + b[task_ids][:, None, :]
    cache = TaskLinearCache(rows, w_rows, task_ids, x.shape, num_tasks, b is not None)
    return out.reshape(x.shape[:-1] + (dout,)), cache


def task_linear_backward(dout, cache: TaskLinearCache):
    """Gradients of out[n] = x[n]·W[t_n] + b[t_n].

    Per example n (rows X_n: M×Din, dOut_n: M×Dout) it is a plain linear map:
        dX_n      = dOut_n · W[t_n]ᵀ
        dW[t_n]  += X_nᵀ · dOut_n       -- every example of task t adds its share:
        db[t_n]  += Σ_rows dOut_n          a scatter-add over the task ids
    (examples of the same task sum; a task with no example gets 0).
    returns (dx (N, ..., Din), dw (T, Din, Dout), db (T, Dout) or None)
    """
    x, w_rows, task_ids = cache.x, cache.w_rows, cache.task_ids
    xp = array_module(dout)
    check_array(dout, "dout", kind="float")
    check_shape(dout, "dout", cache.shape[:-1] + (w_rows.shape[2],), "out's shape")
    rows_dout = dout.reshape(x.shape[0], -1, w_rows.shape[2])   # (N, M, Dout)
    dx = rows_dout @ w_rows.transpose(0, 2, 1)                   # (N, M, Din)
    dw_rows = x.transpose(0, 2, 1) @ rows_dout                   # (N, Din, Dout), one per example
    dw = xp.zeros((cache.num_tasks,) + w_rows.shape[1:], dtype=dw_rows.dtype)
    scatter_add(dw, task_ids, dw_rows)                           # repeated task ids accumulate
    db = None
    if cache.has_bias:
        db = xp.zeros((cache.num_tasks, w_rows.shape[2]), dtype=rows_dout.dtype)
        scatter_add(db, task_ids, rows_dout.sum(axis=1))
    return dx.reshape(cache.shape), dw, db
