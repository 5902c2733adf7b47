"""Session recorder: a hub-side reverse proxy in front of every workspace that records code
cells and terminal commands into the audit trail (EHDS Art. 73(1)(e)).

It runs outside the workspace (its processes run as the researcher and cannot be trusted to
log themselves), on the path browser -> hub proxy -> recorder -> workspace.
Modules: `protocol` (pure parsing of kernel and terminal websocket messages), `routes`
(routing table in the registry DB, filled by the spawner), `proxy` (the tornado app),
`outflow` (what the browser may read and upload, by the bytes), `meter` / `meterdb` (the daily
browser output budget per permit, user and day), `frames` (notices and cut kernel messages).
"""
