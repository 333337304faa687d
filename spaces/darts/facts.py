"""The classification task's torch-free facts (nasflow.space.task_facts): `nasflow cost` reads
them without importing torch; ClassificationTask takes its attributes from here."""
from nasflow.space.task_facts import TaskFacts

# DARTS CIFAR nets end at 8x8 (32x32 inputs)
FACTS = TaskFacts(cost_size=(8, 8))
