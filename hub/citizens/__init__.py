"""The citizens' side (EHDS Art. 71 opt-out, transparency towards the person): identity linked at
login by a keyed hash of the national identifier (`identity`), the opt-out and its propagation into
live permits (`optout`), per-extract person hashes (`membership`), "who used my data" (`usage`), and
the citizens' web service (`web`). Must not import `egress`.
"""
