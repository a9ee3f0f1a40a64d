"""The command line (typer): `docingest` commands parse arguments, call a service and render.

The top layer: may import anything in the package.
"""
