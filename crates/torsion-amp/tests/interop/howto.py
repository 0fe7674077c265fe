"""The two programs of Twisted's AMP howto, written against twisted.protocols.amp, with the
howto's command and argument names: `howto.py server` (prints "listening PORT") serves Sum
and Divide; `howto.py client PORT` calls Sum(13, 81) and Divide(1234, 0), trapping
ZeroDivisionError, and prints the results."""
import sys

from twisted.internet import defer, endpoints, protocol, reactor
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


class Math(amp.AMP):
    def sum(self, a, b):
        return {"total": a + b}

    Sum.responder(sum)

    def divide(self, numerator, denominator):
        return {"result": numerator / denominator}

    Divide.responder(divide)


def client(port):
    ep = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    conn = endpoints.connectProtocol(ep, amp.AMP())
    d1 = conn.addCallback(lambda p: p.callRemote(Sum, a=13, b=81))
    d1.addCallback(lambda r: r["total"])
    conn2 = endpoints.connectProtocol(ep, amp.AMP())
    d2 = conn2.addCallback(lambda p: p.callRemote(Divide, numerator=1234, denominator=0))

    def trap_zero(f):
        f.trap(ZeroDivisionError)
        print("Divided by zero: returning INF")
        return 1e1000

    d2.addErrback(trap_zero)

    def done(result):
        print("Done with math:", result, flush=True)
        reactor.stop()

    defer.DeferredList([d1, d2]).addCallback(done)
    reactor.run()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Math), interface="127.0.0.1")
        print("listening %d" % port.getHost().port, flush=True)
        reactor.run()
    else:
        client(int(sys.argv[2]))
