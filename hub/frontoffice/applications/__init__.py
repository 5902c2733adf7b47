"""Data access applications and data requests: model, workflow table, deadlines, the business
layer, and the grant that turns a decision into permits."""
