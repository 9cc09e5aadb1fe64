"""Mountpoint rewriting, for chaosvol running as a managed plugin in front of another plugin.

dockerd scopes every Mountpoint a managed plugin returns from Mount and List: a path under the
plugin's propagatedMount becomes the host's `<data-root>/plugins/<id>/propagated-mount/<rest>`,
anything else `<data-root>/plugins/<id>/rootfs/<path>` (protocol.md §8.3). A backend's answer is
a path in the backend's own world (the host, for a legacy plugin), which containers would then
not see. The plugin's config binds the backend's data root under the propagatedMount; this turns
`FROM/rest` into `TO/rest` in Mount, Path and List answers (managed-plugin.md §7, layout A: no
capability, no mount at run time).

Get is left as the backend says: `docker volume inspect` shows Get's Mountpoint raw, unscoped,
and the backend's own path is where the data really is on the host. A Mount or Path answer
outside FROM cannot be shown to containers: it becomes an error that says so (never injected: a
configuration problem). List entries outside FROM are left alone (dockerd only displays them).
"""

from __future__ import annotations

import copy
import json
import posixpath
from dataclasses import dataclass
from typing import Any

from chaosvol.core.protocol import Operation, PluginCall, PluginReply, field_of


@dataclass(frozen=True, slots=True)
class MountpointRewrite:
    source: str  # the backend's data root, as its answers write it
    target: str  # the same directory as this process (and dockerd, scoped) sees it

    @classmethod
    def parse(cls, text: str) -> MountpointRewrite:
        """`FROM=TO`, both absolute.

        Raises:
            ValueError: not two absolute paths around `=`.
        """
        source, equals, target = text.partition("=")
        if not equals or not source.startswith("/") or not target.startswith("/"):
            raise ValueError(f"{text!r} is not FROM=TO with two absolute paths (e.g. /srv/data=/mnt/volumes/backend)")
        return cls(posixpath.normpath(source), posixpath.normpath(target))

    def path(self, mountpoint: str) -> str | None:
        """The rewritten path, or None when `mountpoint` is outside the source."""
        normal = posixpath.normpath(mountpoint)
        if normal == self.source:
            return self.target
        prefix = self.source.rstrip("/") + "/"
        if not normal.startswith(prefix):
            return None
        return posixpath.join(self.target, normal[len(prefix):])

    def apply(self, call: PluginCall, reply: PluginReply) -> PluginReply:
        """The backend's reply with its Mountpoints rewritten (an unchanged reply when there is
        nothing to rewrite: errors, other operations, bodies that are not JSON objects)."""
        operation = call.operation
        if operation not in (Operation.MOUNT, Operation.PATH, Operation.LIST) or reply.is_error:
            return reply
        value = reply.decoded()
        if not isinstance(value, dict):
            return reply
        value = copy.deepcopy(value)  # the reply's cached decode is shared: never edit it
        if operation is Operation.LIST:
            volumes = field_of(value, "Volumes")
            if not isinstance(volumes, list):
                return reply
            changed = False
            for entry in volumes:
                if isinstance(entry, dict):
                    changed = self._rewrite_key(entry) is True or changed
            return _encoded(reply, value) if changed else reply
        outcome = self._rewrite_key(value)
        if outcome is None:
            mountpoint = field_of(value, "Mountpoint")
            return PluginReply.error(
                f"chaosvol: the backend's mountpoint {mountpoint!r} for {call.volume!r} is outside {self.source}, "
                f"the only directory containers can see through this plugin (set BACKEND_ROOT and the backend mount)"
            )
        return _encoded(reply, value) if outcome else reply

    def _rewrite_key(self, obj: dict[str, Any]) -> bool | None:
        """Rewrite obj's Mountpoint in place: True if changed, False if absent or empty, None if
        outside the source."""
        key = next((k for k in obj if k.lower() == "mountpoint"), None)
        if key is None or not isinstance(obj[key], str) or not obj[key]:
            return False
        rewritten = self.path(obj[key])
        if rewritten is None:
            return None
        obj[key] = rewritten
        return True


def _encoded(reply: PluginReply, value: dict[str, Any]) -> PluginReply:
    return PluginReply(reply.status, (json.dumps(value, separators=(",", ":")) + "\n").encode(), reply.content_type)
