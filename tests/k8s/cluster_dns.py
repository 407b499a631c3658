"""The test cluster's DNS: Service names to ClusterIPs (or endpoint IPs for headless Services).

No cluster DNS image can be had here (no registry), yet manifests meant for real clusters name
each other `http://orders:8001`. This answers, over UDP, the A queries a pod's resolver makes
for `NAME.NAMESPACE.svc.CLUSTER_DOMAIN` by reading the Service from the API server; anything
else gets NXDOMAIN (there is no upstream: nothing leaves the machine). AAAA for a known name
is an empty NOERROR, so resolvers do not give up on the name. The wire format is dnslib's
(a dev dependency); it runs with the venv's python, inside the cluster's network namespace
(tests/k8s/cluster.py starts it on the docker0 gateway address that kubelet passes to pods as
`--cluster-dns`).

    python3 cluster_dns.py --listen 172.17.0.1:53 --api https://127.0.0.1:6443 \
        --ca CA.crt --token-file TOKEN [--domain cluster.local]
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import time
import urllib.error
import urllib.request

from dnslib import CLASS, QTYPE, RCODE, RR, DNSError, DNSHeader, DNSRecord
from dnslib import A as dns_a

TTL = 5


class Resolver:
    def __init__(self, api: str, ca: str, token: str, domain: str) -> None:
        self.api, self.token, self.domain = api.rstrip("/"), token, domain.strip(".").lower()
        self.ctx = ssl.create_default_context(cafile=ca)
        self.cache: dict[str, tuple[float, list[str] | None]] = {}

    def _get(self, path: str) -> dict | None:
        req = urllib.request.Request(f"{self.api}{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=3) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def lookup(self, name: str) -> list[str] | None:
        """IPv4 addresses of `name`, [] for a Service without any, None if no such name."""
        suffix = f".svc.{self.domain}"
        if not name.endswith(suffix):
            return None
        parts = name[: -len(suffix)].split(".")
        if len(parts) != 2 or not all(parts):
            return None
        hit = self.cache.get(name)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        service, namespace = parts
        svc = self._get(f"/api/v1/namespaces/{namespace}/services/{service}")
        addresses: list[str] | None
        if svc is None:
            addresses = None
        elif svc.get("spec", {}).get("clusterIP") not in (None, "", "None"):
            addresses = [svc["spec"]["clusterIP"]]
        else:  # headless: the ready endpoints
            eps = self._get(f"/api/v1/namespaces/{namespace}/endpoints/{service}") or {}
            addresses = [a["ip"] for s in eps.get("subsets") or []
                         for a in s.get("addresses") or []]
        self.cache[name] = (time.monotonic() + 1.0, addresses)
        return addresses


def answer(packet: bytes, resolver: Resolver) -> bytes:
    """The reply to one query packet (dnslib does the wire format): A records for a known
    name, an empty NOERROR for its other types, NXDOMAIN for anything else, FORMERR for
    a packet that does not parse."""
    try:
        query = DNSRecord.parse(packet)
    except DNSError:
        ident = int.from_bytes(packet[:2], "big")
        return DNSRecord(DNSHeader(id=ident, qr=1, rcode=RCODE.FORMERR)).pack()
    reply = query.reply()  # QR and AA set, RD copied, the question echoed
    if not query.questions:
        reply.header.rcode = RCODE.FORMERR
        return reply.pack()
    q = query.q
    name = str(q.qname).rstrip(".").lower()
    try:
        addresses = resolver.lookup(name) if q.qclass == CLASS.IN else None
    except (OSError, urllib.error.URLError, ValueError):
        addresses = None
    if addresses is None:
        reply.header.rcode = RCODE.NXDOMAIN
    elif q.qtype == QTYPE.A:
        for ip in addresses:
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=dns_a(ip), ttl=TTL))
    return reply.pack()


def serve(listen: str, resolver: Resolver) -> None:
    host, port = listen.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    while True:
        packet, peer = sock.recvfrom(4096)
        if len(packet) >= 12:
            sock.sendto(answer(packet, resolver), peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="IP:PORT")
    parser.add_argument("--api", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--domain", default="cluster.local")
    args = parser.parse_args()
    with open(args.token_file) as fh:
        token = fh.read().strip()
    serve(args.listen, Resolver(args.api, args.ca, token, args.domain))


if __name__ == "__main__":
    main()
