"""The bridge of the running event loop (one per loop and process; see the crate's bridge.rs)."""
import asyncio
import os

from . import _cachette as _native

_bridges = {}
_last = (None, 0, None)


def bridge():
    """The bridge of the running loop, created and registered with ``add_reader`` on first use."""
    global _last
    loop = asyncio.get_running_loop()
    last_loop, last_pid, last_bridge = _last
    if last_loop is loop and last_pid == os.getpid():
        return last_bridge
    return _slow(loop)


def _slow(loop):
    global _last
    pid = os.getpid()
    entry = _bridges.get(id(loop))
    if entry is None or entry[0] is not loop or entry[1] != pid:
        # Loops that are closed (asyncio.run returned) drop their bridge and its sockets.
        for k, (other, _pid, _b) in list(_bridges.items()):
            if other.is_closed() or _pid != pid:
                del _bridges[k]
        b = _native.Bridge(loop)
        loop.add_reader(b.fileno(), b.drain)
        entry = (loop, pid, b)
        _bridges[id(loop)] = entry
    _last = entry
    return entry[2]
