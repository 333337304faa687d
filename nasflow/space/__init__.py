"""The space language: the pydantic schema of a space file, YAML with a line map for errors,
integer expressions, and the graph a space expands to (blocks inlined, channels and sizes
inferred, everything validated) plus its cost. Reads the op registry; knows no torch modules.
"""
