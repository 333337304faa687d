"""Speed levers that leave the numbers alone (fused and merged kernels, fast depthwise
backward, channels-last, kept memory) or, opt-in, change them (bf16). They register into
nasflow.compile and wrap models and losses; the compiler never imports them.
"""
