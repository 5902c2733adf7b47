"""SPE workspace client, importable as `spe` inside a researcher's workspace.

Stub created with the workspace image so the image builds before the client exists; the egress
package owns the real client. Must not import `hub` or `egress` (they are not in the image).
"""

__version__ = "0.1.0"
