"""Run and model directories, checkpoints, distributed plumbing, and the run loop that
search and training share.
"""
