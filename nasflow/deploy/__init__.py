"""Using a built model: inference backends behind one Predictor, ONNX export.
"""
