"""Run and model directories, checkpoints, distributed plumbing, and the run loop that
search and training share, with its optimizers and schedules (optim), progress ETA (eta)
and thread count (threads: one per idle core at start, followed between steps).
"""
