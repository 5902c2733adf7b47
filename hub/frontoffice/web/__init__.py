"""The front office's web layer: tornado handlers (JSON API and pages) and a minimal service.

`routes(prefix)` returns the handlers for any tornado application that sets `frontoffice`
(a `hub.frontoffice.context.FrontOffice`) and `frontoffice_executor` in its settings: the portal
service mounts them; until it does, `python -m hub.frontoffice.web` serves them alone as the
JupyterHub service `frontoffice` (hub.hubapp.config). Must not import `egress`.
"""
