"""``python -m cohirl.ray_loopback start ...``: ``ray start`` for a cluster that stays on loopback.

Ray rewrites 127.0.0.1 to the machine's network address when a node starts or a driver joins, so a
"local" multi-node cluster would still listen on the network interface. Several nodes on one machine
(the tests, a workstation with a second raylet) keep every address on loopback with this wrapper;
``cohirl repro`` does the same on its side when ``RAY_ADDRESS`` names a loopback host.
"""

from __future__ import annotations

import ipaddress
import sys


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def keep_loopback() -> None:
    """Stop Ray from replacing a loopback host by the machine's network address (this process)."""
    import ray._private.services as services

    services.resolve_ip_for_localhost = lambda host: host


def main(argv: list[str] | None = None) -> int:
    keep_loopback()
    from ray.scripts.scripts import main as ray_main

    sys.argv = ["ray", *(sys.argv[1:] if argv is None else argv)]
    return int(ray_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
