"""The tests' private dockerd lives in the package (the benchmark and users' tests use it too)."""

from chaosvol.testing.private_dockerd import IMAGE, DockerdUnavailable, PrivateDockerd, docker_cli

__all__ = ["IMAGE", "DockerdUnavailable", "PrivateDockerd", "docker_cli"]
