"""HTTP/1.1 on the plugin socket's two sides (h11, and the fast path), and chaosvol's socket streams."""
