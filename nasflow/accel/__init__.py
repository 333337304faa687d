"""Speed levers that leave the numbers alone (fused and merged kernels, fast depthwise
backward, channels-last, kept memory) or, opt-in, change them (bf16). They register into
nasflow.compile and wrap models and losses; the compiler never imports them.

Importing this package registers the mixed-op implementation "fused".
"""
from nasflow.accel import fused  # noqa: F401  (registers "fused" into nasflow.compile.mixed_ops)
