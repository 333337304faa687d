"""Measuring a space on this machine: the latency table (`nasflow profile`), its check against
end-to-end timings of random derived architectures (`nasflow profile --check`), and the
speed levers and inference backend chosen for the machine (`--levers auto`).

Sits above deploy (it times the predictor backends) and below the CLI; the table's format
and its use in the search (regularizer, budgets) live in nasflow/search, which never
imports this package.
"""

# The --backend help of the commands that run inference (imports nothing: listing commands stays fast).
BACKEND_HELP = ("auto, plain, eager, compile, onnx or openvino (nasflow.deploy.predictor). Default auto: "
                "the fastest exact one on this machine among eager, onnx and openvino where installed, "
                "timed once and cached.")
