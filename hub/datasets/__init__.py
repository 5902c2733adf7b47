"""Source datasets: descriptors (disclosure class per column), introspection and the registry."""
