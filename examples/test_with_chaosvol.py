"""chaosvol's pytest fixtures in your own suite: a complete example.

With chaosvol installed, pytest finds its plugin by itself; nothing to import or configure.
`chaosvol_proxy` is a chaosvol proxy running inside the test process, in front of a built-in
backend (or `--chaosvol-backend SPEC`, your real plugin); `chaosvol_dockerd` is a private dockerd
(or `--chaosvol-docker-host URL`, one you already run). As root, on a machine with docker.io:

    sudo pytest examples/test_with_chaosvol.py -v
"""

from __future__ import annotations

import secrets
import threading


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def test_a_dropped_remove_leaves_the_volume_behind(chaosvol_proxy, chaosvol_dockerd):
    chaosvol_proxy.load("drop-removes")  # a shipped profile, a file, YAML text or a dict
    volume = unique("precious")
    chaosvol_dockerd.docker("volume", "create", "-d", chaosvol_proxy.name, volume)
    chaosvol_dockerd.docker("volume", "rm", volume)  # dockerd says: removed

    assert volume in chaosvol_proxy.backend_volumes()  # the backend still has it
    assert [e["action"] for e in chaosvol_proxy.events(op="Remove")] == ["drop"]
    listed = chaosvol_dockerd.docker("volume", "ls", "-q").stdout.split()
    assert volume in listed  # so it comes back from the dead in `docker volume ls`


def test_the_list_remove_race_on_demand(chaosvol_proxy, chaosvol_dockerd):
    chaosvol_proxy.hold("List", when="after")  # the backend answers; the answer waits for release()
    old, new = unique("old"), unique("new")
    chaosvol_dockerd.docker("volume", "create", "-d", chaosvol_proxy.name, old)
    listing = {}
    ls = threading.Thread(target=lambda: listing.update(out=chaosvol_dockerd.docker("volume", "ls", "-q").stdout))
    ls.start()

    chaosvol_proxy.wait_held(op="List")  # the backend has answered; dockerd is waiting
    chaosvol_dockerd.docker("volume", "rm", old)
    chaosvol_dockerd.docker("volume", "create", "-d", chaosvol_proxy.name, new)
    chaosvol_proxy.release(op="List")
    ls.join(60)

    assert old in listing["out"].split() and new not in listing["out"].split()  # the past
    chaosvol_proxy.disable("hold")
    now = chaosvol_dockerd.docker("volume", "ls", "-q").stdout.split()
    assert new in now and old not in now  # and right again
    chaosvol_dockerd.docker("volume", "rm", new)
