"""The command line (typer): ``docingest`` commands parse arguments, call a service and render.

Layer 1, the top: may import anything in the package.
"""
