"""Prove no node private key is on the controller.

Usage: find_private_keys.py CERT... -- ROOT... [--exclude DIR...]
Walks the ROOTs and reports every readable private key whose public key matches one of the
node certificates. Encrypted keys cannot be compared and are listed separately.
"""
import json
import os
import stat
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def spki(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def main(argv):
    sep = argv.index("--")
    certs, rest = argv[:sep], argv[sep + 1:]
    excludes = []
    if "--exclude" in rest:
        i = rest.index("--exclude")
        rest, excludes = rest[:i], rest[i + 1:]
    wanted = {}
    for path in certs:
        with open(path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        wanted[spki(cert.public_key())] = path
    found, encrypted, scanned = [], [], 0
    for root in rest:
        for directory, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.join(directory, d) not in excludes]
            for name in files:
                path = os.path.join(directory, name)
                try:
                    st = os.lstat(path)
                    # regular files only: opening a FIFO someone left in /tmp would wait for a writer forever
                    if not stat.S_ISREG(st.st_mode) or st.st_size > 65536:
                        continue
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                if b"PRIVATE KEY-----" not in data:
                    continue
                scanned += 1
                if b"ENCRYPTED" in data:
                    encrypted.append(path)
                    continue
                try:
                    key = serialization.load_pem_private_key(data, None)
                except (ValueError, TypeError):
                    continue
                if spki(key.public_key()) in wanted:
                    found.append({"path": path, "certificate": wanted[spki(key.public_key())]})
    print(json.dumps({"node_keys_found": found, "private_key_files_scanned": scanned, "encrypted": encrypted}))


if __name__ == "__main__":
    main(sys.argv[1:])
