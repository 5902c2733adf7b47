"""Developer and operator tools that run from a source checkout and are not part of the
installed `spe` distribution: `python -m tools.images` builds the container images.

Nothing at run time (hub, egress) imports this package (import contract in pyproject.toml).
"""
