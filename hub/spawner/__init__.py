"""Workspace spawners: the pure container/pod spec builder shared by Docker and Kubernetes."""
