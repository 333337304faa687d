"""The SR task's torch-free facts (nasflow.space.task_facts): `nasflow cost` reads them
without importing torch; SRTask takes its attributes from here."""
from nasflow.space.task_facts import TaskFacts

# Multi-Adds are quoted for a 1280x720 output, as in the SR literature.
FACTS = TaskFacts(cost_size=(720, 1280))
