"""Derivation: the genotype (a flat {label: choice} record) from the architecture
parameters, and the derived architecture, a space with no choices. Owns the derive side of
node kinds (kinds: DERIVED_KINDS, what a searched node becomes and which supernet weights
it inherits) and the derivation rules.
"""
