"""The compiler: a validated graph becomes a torch module, the supernet (alpha and beta in
their own submodule) or, for a space with no choices, the derived model. Owns the compile
side of node kinds (kinds: COMPILED_KINDS, what module a node becomes and how it runs), the
mixed-op implementations (mixed_ops: MIXED_OPS), relaxations, drop-path (drop_path), value
decisions in the supernet (values: one weight at the largest values, sliced or masked) and the
state-dict split.
"""
