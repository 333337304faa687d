"""The space language: the pydantic schema of a space file, YAML with a line map for errors,
integer expressions, value decisions (values: searched numbers as Syms with a table per
value), node kinds (kinds: the NodeKind classes and their registry; the builtin
kinds' space side in builtin_kinds), and the graph a space expands to (blocks inlined,
channels and sizes inferred by each node's kind, everything validated) plus its cost, and
what a task declares without torch for that cost (task_facts: its cost size).
Reads the op registry; knows no torch modules.

A node kind has three halves, one per stage, registered by the kind's name: its space side
here (schema, expand, infer, cost ops), its compile side in nasflow.compile.kinds, its derive
side in nasflow.derive.kinds. Split so because this package may not import the compiler or
the deriver (imports go down the pipeline) and validating a space needs no torch: the
stages own their registries, as the compiler owns MIXED_OPS that accel registers into.
"""
