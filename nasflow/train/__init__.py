"""Retraining a derived architecture: the training loop, its config and run directory,
warm start from another model's weights.
"""
