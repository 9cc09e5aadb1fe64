"""The trio shell: the plugin socket, one path per call, the control socket, holds and the event log."""
