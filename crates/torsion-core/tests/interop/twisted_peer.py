"""A Twisted peer for Torsion's interop tests.

usage: twisted_peer.py MODE server
       twisted_peer.py MODE client PORT HEXFRAME...

MODE is lines, netstrings or int32. The server answers every frame with b"T:" + the frame
reversed, and prints "PORT <n>" once listening. The client sends the frames, waits for one
answer per frame, prints each answer as hex on its own line, and exits.
"""
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import Int32StringReceiver, LineReceiver, NetstringReceiver

MODE, ROLE = sys.argv[1], sys.argv[2]
BASE = {"lines": LineReceiver, "netstrings": NetstringReceiver, "int32": Int32StringReceiver}[MODE]


class Peer(BASE):
    MAX_LENGTH = 1_000_000

    def __init__(self, frames=None):
        self.frames = frames
        self.answers = []

    def send(self, frame):
        if MODE == "lines":
            self.sendLine(frame)
        else:
            self.sendString(frame)

    def connectionMade(self):
        if self.frames is not None:
            for f in self.frames:
                self.send(f)

    def got(self, frame):
        if self.frames is None:
            self.send(b"T:" + frame[::-1])
        else:
            self.answers.append(frame)
            if len(self.answers) == len(self.frames):
                for a in self.answers:
                    print(a.hex(), flush=True)
                self.transport.loseConnection()
                reactor.stop()

    def lineReceived(self, line):
        self.got(line)

    def stringReceived(self, string):
        self.got(string)


if ROLE == "server":
    factory = protocol.Factory.forProtocol(Peer)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    print("PORT", port.getHost().port, flush=True)
else:
    frames = [bytes.fromhex(h) for h in sys.argv[4:]]
    factory = protocol.ClientFactory.forProtocol(lambda: Peer(frames))
    factory.clientConnectionFailed = lambda c, r: (print("FAILED", r, flush=True), reactor.stop())
    reactor.connectTCP("127.0.0.1", int(sys.argv[3]), factory)
    reactor.callLater(20, reactor.stop)
reactor.run()
