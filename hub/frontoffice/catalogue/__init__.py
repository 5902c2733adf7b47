"""The dataset catalogue: entries (model), their store, HealthDCAT-AP export and validation, search."""
