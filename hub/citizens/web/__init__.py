"""The citizens' web service (a JupyterHub service at /services/citizens/): a citizen's opt-out
status, opting out and withdrawing, the per-person check, and "who used my data". Must not import
`egress`."""
