"""Harnesses for tests: the pytest plugin, private dockerd and Podman. Nothing in the product imports them."""
