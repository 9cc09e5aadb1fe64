"""chaosvol: a fault-injecting proxy for Docker volume plugins."""

from chaosvol.core.protocol import Operation, PluginCall, PluginReply

__version__ = "0.1.0"
__all__ = ["Operation", "PluginCall", "PluginReply", "__version__"]
