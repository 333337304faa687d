"""Pictures of runs, spaces and models: what a search did and what it found, drawn.

Owns: reading a run's records into plottable series (run_data), the figures of a search or
training run (run_plots: decision weights, losses, genotype history), architecture drawings
(draw), Pareto fronts of sweeps (pareto), and the console every command prints through, plain
into a pipe or with NO_COLOR (console: cli/ and the spaces' own commands share it). It sits
above search/, train/ and deploy/ and below cli/; it reads run directories and spaces, and
never changes them.

matplotlib is an optional extra (`pip install 'nasflow[plot]'`) imported only when a figure
is made (viz.mpl.pyplot), so importing nasflow or running `nasflow --help` never pays for it.
"""
