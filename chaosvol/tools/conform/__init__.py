"""`chaosvol conform`: does a volume plugin keep the contract dockerd (or Podman) relies on?

`shapes` says how each daemon writes its requests, `client` sends them byte for byte, `checks`
holds the checks (one function each, tied in its message to what the daemon does when a plugin
gets it wrong), `report` runs them and writes the results as text, JSON or JUnit XML.
"""
