"""Permits as code: schema, model, lifecycle table, cohort compiler, registry store."""
