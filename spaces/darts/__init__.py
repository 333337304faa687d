"""DARTS / PC-DARTS cell spaces for image classification: nasflow's second instance (ops, task, space and published genotypes)."""
