"""Datagram peers for Torsion's interop tests, written with nothing but Python's socket
module, or with Twisted itself.

    datagram_peer.py udp-client HOST PORT        send MESSAGES, expect each echoed back
    datagram_peer.py udp-server                  print the port, answer each datagram reversed
    datagram_peer.py unix-client PATH OWN_PATH   as udp-client, over a Unix datagram socket
    datagram_peer.py twisted-udp-client HOST PORT
    datagram_peer.py twisted-udp-server

Servers stop on the datagram b"quit". Clients print "ok N" and exit 0 when every echo came
back intact, or explain and exit 1.
"""
import os
import socket
import sys

MESSAGES = [b"hello", b"", bytes(range(256)), b"x" * 1400, b"y" * 60000]
TIMEOUT = 10


def fail(why):
    print("FAILED: " + why, flush=True)
    sys.exit(1)


def check(sent, got, sender, expected_sender):
    if got != sent:
        fail("sent %d bytes, got back %d different bytes" % (len(sent), len(got)))
    if sender != expected_sender:
        fail("answer came from %r, not %r" % (sender, expected_sender))


def udp_client(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    for m in MESSAGES:
        s.sendto(m, (host, port))
        data, addr = s.recvfrom(65535)
        check(m, data, (addr[0], addr[1]), (host, port))
    print("ok %d" % len(MESSAGES), flush=True)


def udp_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(60)
    print(s.getsockname()[1], flush=True)
    while True:
        data, addr = s.recvfrom(65535)
        if data == b"quit":
            break
        s.sendto(data[::-1], addr)
    print("bye", flush=True)


def unix_client(path, own):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(own)
    try:
        s.settimeout(TIMEOUT)
        # Unix datagrams above the socket buffer size are refused; keep to the smaller ones.
        for m in MESSAGES[:4]:
            s.sendto(m, path)
            data, addr = s.recvfrom(65535)
            check(m, data, addr, path)
        print("ok %d" % 4, flush=True)
    finally:
        os.unlink(own)


def twisted_udp_server():
    from twisted.internet import protocol, reactor

    class Reverse(protocol.DatagramProtocol):
        def datagramReceived(self, data, addr):
            if data == b"quit":
                reactor.stop()
                return
            self.transport.write(data[::-1], addr)

    port = reactor.listenUDP(0, Reverse(), interface="127.0.0.1", maxPacketSize=65535)
    print(port.getHost().port, flush=True)
    reactor.callLater(60, reactor.stop)
    reactor.run()
    print("bye", flush=True)


def twisted_udp_client(host, port):
    from twisted.internet import protocol, reactor

    outcome = []

    class Client(protocol.DatagramProtocol):
        def startProtocol(self):
            self.todo = list(MESSAGES)
            self.transport.write(self.todo[0], (host, port))

        def datagramReceived(self, data, addr):
            sent = self.todo.pop(0)
            if data != sent or addr != (host, port):
                outcome.append("sent %d bytes, got %d from %r" % (len(sent), len(data), addr))
                reactor.stop()
            elif self.todo:
                self.transport.write(self.todo[0], (host, port))
            else:
                outcome.append("ok")
                reactor.stop()

    reactor.listenUDP(0, Client(), interface=host, maxPacketSize=65535)
    reactor.callLater(TIMEOUT, reactor.stop)
    reactor.run()
    if outcome != ["ok"]:
        fail(outcome[0] if outcome else "timed out")
    print("ok %d" % len(MESSAGES), flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "udp-client":
        udp_client(args[0], int(args[1]))
    elif mode == "udp-server":
        udp_server()
    elif mode == "unix-client":
        unix_client(args[0], args[1])
    elif mode == "twisted-udp-server":
        twisted_udp_server()
    elif mode == "twisted-udp-client":
        twisted_udp_client(args[0], int(args[1]))
    else:
        fail("unknown mode " + mode)
