"""Architecture search: the search loop and its config, cost regularizers, search run
directories, deriving from a run, multi-seed runs and their report.
"""
