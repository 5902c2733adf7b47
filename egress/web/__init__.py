"""Web layer of the egress service: handlers and templates (calls egress.business only)."""
