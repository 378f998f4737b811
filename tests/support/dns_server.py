"""A real (tiny) authoritative DNS server on a loopback UDP port, for domain verification."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class TxtZone:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.queries = 0

    def reset(self) -> None:
        self.records.clear()
        self.queries = 0

    def set_txt(self, name: str, *values: str) -> None:
        self.records[name.rstrip(".").lower()] = list(values)

    def answer(self, wire: bytes) -> bytes:
        self.queries += 1
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        values = self.records.get(name)
        if values is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            quoted = [f'"{value}"' for value in values]
            response.answer.append(
                dns.rrset.from_text(
                    question.name, 60, dns.rdataclass.IN, dns.rdatatype.TXT, *quoted
                )
            )
        return response.to_wire()


@contextmanager
def dns_server() -> Iterator[tuple[str, TxtZone]]:
    """Yields ("127.0.0.1:<port>", zone)."""
    zone = TxtZone()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            sock.sendto(zone.answer(wire), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", zone
    finally:
        stopping.set()
        thread.join(2)
        sock.close()
