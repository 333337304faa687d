"""The compiler: a validated graph becomes a torch module, the supernet (alpha and beta in
their own submodule) or, for a space with no choices, the derived model.
"""
