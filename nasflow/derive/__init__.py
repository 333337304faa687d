"""Derivation: the genotype (a flat {label: choice} record) from the architecture
parameters, and the derived architecture, a space with no choices.
"""
