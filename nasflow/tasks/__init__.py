"""The task contract: what the engine needs from a problem (batches, loss, evaluation,
metrics and their direction, presets, export facts), and how tasks are found by name.

    from nasflow.tasks import Metric, Task, TASKS
"""
from nasflow.tasks.contract import TASKS, Evaluation, Metric, NoOptions, Task, make_task, register_task

__all__ = ["TASKS", "Evaluation", "Metric", "NoOptions", "Task", "make_task", "register_task"]
