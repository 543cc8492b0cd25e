# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TLS service as most are: it loads its certificate at start and again only when told (SIGHUP).

    python3 tls_service.py CERT KEY ADDRESS PORT PIDFILE
"""
import os
import signal
import socket
import ssl
import sys

cert, key, address, port, pidfile = sys.argv[1:6]
state = {}


def load(*_args):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    state["context"] = context


load()
signal.signal(signal.SIGHUP, load)
with open(pidfile, "w") as handle:
    handle.write(str(os.getpid()))
listener = socket.create_server((address, int(port)))
while True:
    try:
        conn = listener.accept()[0]
    except InterruptedError:
        continue
    try:
        conn.settimeout(5)
        with state["context"].wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"HTTP/1.0 200 OK\r\n\r\nok\n")
    except (ssl.SSLError, OSError):
        conn.close()
