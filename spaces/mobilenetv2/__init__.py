"""MobileNetV2-family macro space for image classification: kernels, expansions, widths and depths as value decisions (ops, space, torchvision's points and names)."""
