"""Reproducer: a Table never initialised (``Table.__new__(Table)``) crashed every method.

Found by fuzz/fuzz_speedups.py under AddressSanitizer (SEGV in Table_forget: NULL
``entries``; tp_new was PyType_GenericNew, which left the table's dict and accept
tuple NULL). Run as a script: it prints "ok" and exits 0 when fixed, and died of a
segmentation fault before. tests/fuzz/test_fuzz_speedups.py runs it in a subprocess.
"""

from __future__ import annotations

import select
import socket

from sipresponder.uas.compiled import speedups

assert speedups is not None, "the compiled extension is not built"
table = speedups.Table.__new__(speedups.Table)
assert table.size() == 0
counters: dict[str, int] = {}
table.bind(counters, [])
request = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n"
assert table.answer(request, "127.0.0.1", 5060, 1, True, True) == speedups.UNUSUAL
table.learn(1, b"OPTIONS sip:a@b SIP/2.0", b"SIP/2.0 200 OK\r\n", b"\r\n", 1)
table.forget(1, b"OPTIONS sip:a@b SIP/2.0")
table.clear()
assert counters == {}  # nothing was answered, so nothing counted
assert table.deferred()["unusual"] == 1
if getattr(speedups, "HAVE_MMSG", 0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        client.sendto(request, sock.getsockname())
        assert select.select([sock], [], [], 5.0)[0], "the datagram never arrived"
        deferred, journal, unsent, received = speedups.serve_udp(
            sock.fileno(), table, 1, True, True, True, 1)
        assert received == 1 and deferred[0][2] == speedups.UNUSUAL, deferred
        assert journal == [] and unsent is None
print("ok")
