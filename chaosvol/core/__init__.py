"""The pure core: the protocol, the profile model, the engine's decisions and the event records. No I/O, no trio."""
