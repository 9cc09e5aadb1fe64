"""The offline tools and the audit: audit, replay, report, schema, sweep, and the views of dockerd, Podman and a backend."""
