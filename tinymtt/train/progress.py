"""The progress bar of ``Trainer.fit``: tqdm when it is installed, a line every tenth of the run otherwise."""

from __future__ import annotations


def progress_bar(total, start):
    """A tqdm bar from ``start`` to ``total`` steps, or PlainProgress without tqdm."""
    try:
        from tqdm.auto import tqdm      # optional: `pip install tqdm`
    except ImportError:
        return PlainProgress(total, start)
    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, mininterval=0.5)


class PlainProgress:
    """What tqdm shows, printed every tenth of the run, when tqdm is not installed."""

    def __init__(self, total, start):
        self.total, self.count, self.postfix = total, start, {}
        self.every = max(total // 10, 1)

    def update(self, n):
        self.count += n
        if self.count % self.every == 0 or self.count == self.total:
            losses = "  ".join(f"{k} {v}" for k, v in self.postfix.items())
            print(f"step {self.count}/{self.total}  {losses}", flush=True)

    def set_postfix(self, values, refresh=False):
        self.postfix = values

    def close(self):
        pass
