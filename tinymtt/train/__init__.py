"""Training: the loop, its hook, its history and its progress bar.

    trainer     TrainConfig, Trainer (fit, train_step, save, resume), TrainingError
    callbacks   Step, Callback, and the callbacks tinymtt ships (LogConflict, ConflictProbe, StepTimer)
    history     history.jsonl: append_record, read_history, truncate_history
    progress    the progress bar
"""

from .callbacks import Callback, ConflictProbe, LogConflict, Step, StepTimer
from .history import read_history
from .trainer import TrainConfig, Trainer, TrainingError

__all__ = ["Callback", "ConflictProbe", "LogConflict", "Step", "StepTimer", "TrainConfig", "Trainer",
           "TrainingError", "read_history"]
