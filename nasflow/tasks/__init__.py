"""The task contract: what the engine needs from a problem (batches, loss, evaluation,
metrics and their direction, presets), and how tasks are found by name.
"""
