"""Twisted's side of the benchmark (run by bench/run with a venv's python).

    python twisted_peers.py echo PORT      # the Echo protocol on the epoll reactor
    python twisted_peers.py web PORT       # a leaf Resource in a Site (seed 004's HelloPage)
    python twisted_peers.py micro SECONDS  # scenario 4: Deferred chains, callLater, awaits
    python twisted_peers.py amp PORT       # an AMP server answering Sum (bench/amp)
    python twisted_peers.py mail PORT:DIR  # Twisted's ESMTP server into the Maildir DIR
    python twisted_peers.py ws PORT        # twisted.web.websocket echo at /ws (over wsproto)
    python twisted_peers.py ws-websockets PORT  # Python `websockets` (asyncio) echo, not Twisted

`twistd mail --maildirdbmdomain` cannot deliver on Python 3 (Twisted 26.10: its domains are
keyed by str and looked up with the bytes of the address, so every RCPT gets 550, and its
MaildirMessage writes bytes lines to a file opened in text mode), so the mail peer is
Twisted's own ESMTP protocol with a delivery doing what Twisted's FileMessage does: the
message written to tmp/, renamed into new/ at its end, no fsync.

Static files use twistd itself: `twistd -n web --path DIR --listen tcp:PORT`.
"""
import sys
import time


def serve_echo(port):
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import protocol, reactor

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    factory = protocol.Factory.forProtocol(Echo)
    reactor.listenTCP(port, factory, backlog=4096, interface="127.0.0.1")
    print("twisted echo listening on", port, flush=True)
    reactor.run()


def serve_amp(port):
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import protocol, reactor
    from twisted.protocols import amp

    class Sum(amp.Command):
        arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
        response = [(b"total", amp.Integer())]

    class Math(amp.AMP):
        @Sum.responder
        def sum(self, a, b):
            return {"total": a + b}

    factory = protocol.Factory.forProtocol(Math)
    reactor.listenTCP(port, factory, backlog=4096, interface="127.0.0.1")
    print("twisted amp listening on", port, flush=True)
    reactor.run()


def serve_web(port):
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.web import resource, server

    class HelloPage(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            request.setHeader(b"content-type", b"text/html")
            return b"<html><body>Hello Twisted</body></html>"

    site = server.Site(HelloPage())
    site.displayTracebacks = False
    # No access log: the other contenders write none either.
    site.log = lambda request: None
    reactor.listenTCP(port, site, backlog=4096, interface="127.0.0.1")
    print("twisted web listening on", port, flush=True)
    reactor.run()


def rate(budget, per_round, round_fn):
    start = time.perf_counter()
    ops = 0
    while ops == 0 or time.perf_counter() - start < budget:
        round_fn()
        ops += per_round
    return ops / (time.perf_counter() - start)


def micro(budget):
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, succeed

    def inc(x):
        return x + 1

    def chains():
        for _ in range(1000):
            d = Deferred()
            for _ in range(10):
                d.addCallback(inc)
            out = []
            d.addCallback(out.append)
            d.callback(0)
            assert out == [10]

    print("chains_per_s %.0f" % rate(budget, 1000, chains), flush=True)

    def noop():
        pass

    def timers():
        calls = [reactor.callLater(3600.0, noop) for _ in range(1_000_000)]
        for c in calls:
            c.cancel()

    print("timers_per_s %.0f" % rate(budget, 1_000_000, timers), flush=True)

    async def awaiter():
        total = 0
        for i in range(100_000):
            total += await succeed(i)
        return total

    def awaits():
        out = []
        Deferred.fromCoroutine(awaiter()).addCallback(out.append)
        assert out == [100_000 * 99_999 // 2], out

    print("awaits_per_s %.0f" % rate(budget, 100_000, awaits), flush=True)


def serve_mail(port, root):
    from twisted.internet import epollreactor

    epollreactor.install()
    import os

    from twisted.internet import defer, reactor
    from twisted.mail import maildir, smtp
    from zope.interface import implementer

    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)

    @implementer(smtp.IMessage)
    class MaildirFile:
        """Twisted's FileMessage, with the file opened for bytes."""

        def __init__(self):
            name = maildir._generateMaildirName()
            if isinstance(name, bytes):
                name = name.decode()
            self.tmp = os.path.join(root, "tmp", name)
            self.new = os.path.join(root, "new", name)
            self.fp = open(self.tmp, "wb")

        def lineReceived(self, line):
            self.fp.write(line + b"\n")

        def eomReceived(self):
            self.fp.close()
            os.rename(self.tmp, self.new)
            return defer.succeed(self.new)

        def connectionLost(self):
            self.fp.close()
            os.remove(self.tmp)

    @implementer(smtp.IMessageDelivery)
    class Delivery:
        def receivedHeader(self, helo, origin, recipients):
            return None

        def validateFrom(self, helo, origin):
            return origin

        def validateTo(self, user):
            if user.dest.domain != b"bench.test":
                raise smtp.SMTPBadRcpt(user)
            return MaildirFile

    class Factory(smtp.SMTPFactory):
        protocol = smtp.ESMTP

        def buildProtocol(self, addr):
            p = smtp.SMTPFactory.buildProtocol(self, addr)
            p.delivery = Delivery()
            p.host = b"mx.bench.test"
            return p

    reactor.listenTCP(port, Factory(), backlog=1024, interface="127.0.0.1")
    print("twisted mail listening on", port, flush=True)
    reactor.run()


def serve_ws(port):
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.web import resource, server
    from twisted.web.websocket import WebSocketResource

    class Echo:
        def negotiationStarted(self, transport):
            self.transport = transport

        def negotiationFinished(self):
            pass

        def pongReceived(self, payload):
            pass

        def textMessageReceived(self, message):
            self.transport.sendTextMessage(message)

        def bytesMessageReceived(self, data):
            self.transport.sendBytesMessage(data)

        def connectionLost(self, reason):
            pass

    class EchoFactory:
        def buildProtocol(self, request):
            return Echo()

    root = resource.Resource()
    root.putChild(b"ws", WebSocketResource(EchoFactory()))
    site = server.Site(root)
    site.log = lambda request: None
    reactor.listenTCP(port, site, backlog=4096, interface="127.0.0.1")
    print("twisted ws listening on", port, flush=True)
    reactor.run()


def serve_ws_websockets(port):
    import asyncio

    from websockets.asyncio.server import serve

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def main():
        # No compression: the load client offers none anyway.
        async with serve(echo, "127.0.0.1", port, compression=None, max_size=None):
            print("websockets listening on", port, flush=True)
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in (
        "echo", "web", "micro", "amp", "mail", "ws", "ws-websockets"
    ):
        sys.exit(__doc__)
    mode, value = sys.argv[1], sys.argv[2]
    if mode == "echo":
        serve_echo(int(value))
    elif mode == "web":
        serve_web(int(value))
    elif mode == "amp":
        serve_amp(int(value))
    elif mode == "ws":
        serve_ws(int(value))
    elif mode == "ws-websockets":
        serve_ws_websockets(int(value))
    elif mode == "mail":
        port, root = value.split(":", 1)
        serve_mail(int(port), root)
    else:
        micro(float(value))


if __name__ == "__main__":
    main()
