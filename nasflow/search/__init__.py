"""Architecture search: the search loop and its config, cost regularizers, search run
directories, budgets and latency tables, the strategy's end after the last step (end),
deriving from a run, multi-seed runs, sweeps and their report.
"""
