"""Twisted's side of the AMP interop tests.

  amp_peer.py client PORT   -- Twisted's AMP client against a Torsion server: every
                               argument type, errors, concurrent calls, a 60,000-byte value,
                               an over-limit value. Prints one line per check; exits 1 on a
                               failed check.
  amp_peer.py server        -- a Twisted AMP server with the same commands; prints
                               "listening PORT", serves until killed.
  amp_peer.py tls-client PORT CA
                            -- Twisted's client: Sum in the clear, StartTLS verifying the
                               server with the CA, Sum over TLS.
  amp_peer.py tls-server CERT KEY
                            -- the server, also answering StartTLS with CERT/KEY.
  amp_peer.py switch-client PORT
                            -- Twisted's client: Sum, then SwitchToUpper (a
                               ProtocolSwitchCommand) to a protocol that says hello and
                               expects "upper ready" and HELLO back.
"""
import sys
import datetime
import decimal
import math

from twisted.internet import defer, reactor, protocol, endpoints
from twisted.protocols import amp


class ZeroDivision(Exception):
    pass


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


class AllTypes(amp.Command):
    arguments = [
        (b"i", amp.Integer()),
        (b"s", amp.String()),
        (b"u", amp.Unicode()),
        (b"t", amp.Boolean()),
        (b"fl", amp.Float()),  # not "f": Twisted passes arguments to maybeDeferred(f, **kw)
        (b"d", amp.Decimal()),
        (b"when", amp.DateTime()),
        (b"ints", amp.ListOf(amp.Integer())),
        (b"items", amp.AmpList([(b"a", amp.Integer()), (b"b", amp.Unicode(optional=True))])),
        (b"maybe", amp.Unicode(optional=True)),
    ]
    response = arguments


class Echo(amp.Command):
    arguments = [(b"v", amp.String())]
    response = [(b"v", amp.String())]


class SwitchToUpper(amp.ProtocolSwitchCommand):
    arguments = [(b"greeting", amp.Unicode())]
    response = []


class Upper(protocol.Protocol):
    """What a connection switches to: says it is ready, then answers in upper case."""

    def connectionMade(self):
        self.transport.write(b"upper ready\n")

    def dataReceived(self, data):
        self.transport.write(data.upper())


class Math(amp.AMP):
    @SwitchToUpper.responder
    def switch_to_upper(self, greeting):
        return Upper()

    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Divide.responder
    def divide(self, numerator, denominator):
        return {"result": numerator / denominator}

    @AllTypes.responder
    def all_types(self, **kw):
        return kw

    @Echo.responder
    def echo(self, v):
        return {"v": v}


class Unknown(amp.Command):
    arguments = []
    response = []


def sample():
    tz = amp._FixedOffsetTZInfo.fromSignHoursMinutes("-", 5, 30)
    return dict(
        i=-(2**62),
        s=b"\x00\xffbytes",
        u="h\u00e9llo \u2603",
        t=True,
        fl=1e16,
        d=decimal.Decimal("1.50"),
        when=datetime.datetime(2012, 1, 23, 12, 34, 56, 54321, tzinfo=tz),
        ints=[3, 7, 9, 15],
        items=[{"a": 7, "b": "hello"}, {"a": 9, "b": None}],
        maybe=None,
    )


@defer.inlineCallbacks
def client(port):
    ok = True

    def check(name, cond, detail=""):
        nonlocal ok
        print(("ok " if cond else "FAIL ") + name + (" " + str(detail) if detail else ""), flush=True)
        ok = ok and bool(cond)

    ep = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    p = yield endpoints.connectProtocol(ep, amp.AMP())
    r = yield p.callRemote(Sum, a=13, b=81)
    check("sum", r["total"] == 94, r)
    try:
        yield p.callRemote(Divide, numerator=1234, denominator=0)
        check("zero division", False)
    except ZeroDivisionError as e:
        check("zero division", True, e)
    r = yield p.callRemote(Divide, numerator=1, denominator=4)
    check("divide", r["result"] == 0.25, r)
    want = sample()
    r = yield p.callRemote(AllTypes, **want)
    items = [{"a": x["a"], "b": x.get("b")} for x in r["items"]]
    got = dict(r, items=items)
    check("all types", got == want, got)
    for f in [float("nan"), float("inf"), float("-inf"), 0.1, -0.0, 5e-324]:
        r = yield p.callRemote(AllTypes, **dict(want, fl=f))
        same = (math.isnan(f) and math.isnan(r["fl"])) or (r["fl"] == f and math.copysign(1, r["fl"]) == math.copysign(1, f))
        check("float %r" % f, same, r["fl"])
    for d in ["Infinity", "-NaN", "1E+2", "0.0000001", "-0"]:
        r = yield p.callRemote(AllTypes, **dict(want, d=decimal.Decimal(d)))
        check("decimal %s" % d, str(r["d"]) == str(decimal.Decimal(d)), r["d"])
    try:
        yield p.callRemote(Unknown)
        check("unhandled", False)
    except amp.UnhandledCommand as e:
        check("unhandled", True, e)
    ds = [p.callRemote(Sum, a=i, b=i) for i in range(500)]
    rs = yield defer.gatherResults(ds)
    check("concurrent", [x["total"] for x in rs] == [2 * i for i in range(500)])
    big = b"x" * 60000
    r = yield p.callRemote(Echo, v=big)
    check("60000 bytes", r["v"] == big, len(r["v"]))
    try:
        yield p.callRemote(Echo, v=b"x" * 65536)
        check("over limit refused", False)
    except amp.TooLong as e:
        check("over limit refused", True, repr(e))
    r = yield p.callRemote(Sum, a=1, b=2)
    check("still connected", r["total"] == 3)
    p.transport.loseConnection()
    return ok


class TlsMath(Math):
    certificate = None

    @amp.StartTLS.responder
    def start_tls(self):
        return {"tls_localCertificate": self.certificate}


@defer.inlineCallbacks
def tls_client(port, ca_file):
    from twisted.internet import ssl

    ok = True

    def check(name, cond, detail=""):
        nonlocal ok
        print(("ok " if cond else "FAIL ") + name + (" " + str(detail) if detail else ""), flush=True)
        ok = ok and bool(cond)

    with open(ca_file, "rb") as f:
        ca = ssl.Certificate.loadPEM(f.read())
    ep = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    p = yield endpoints.connectProtocol(ep, amp.AMP())
    r = yield p.callRemote(Sum, a=1, b=2)
    check("sum in the clear", r["total"] == 3)
    yield p.callRemote(amp.StartTLS, tls_verifyAuthorities=[ca])
    # Sent before the handshake ends: Twisted holds it, the server reads it over TLS.
    r = yield p.callRemote(Sum, a=13, b=81)
    check("sum over tls", r["total"] == 94, r)
    peer = p.transport.getPeerCertificate()
    check("tls", peer is not None, peer)
    p.transport.loseConnection()
    return ok


@defer.inlineCallbacks
def switch_client(port):
    ok = True

    def check(name, cond, detail=""):
        nonlocal ok
        print(("ok " if cond else "FAIL ") + name + (" " + str(detail) if detail else ""), flush=True)
        ok = ok and bool(cond)

    got = defer.Deferred()

    class Collect(protocol.Protocol):
        buf = b""

        def connectionMade(self):
            self.transport.write(b"hello\n")

        def dataReceived(self, data):
            self.buf += data
            if self.buf.endswith(b"HELLO\n") and not got.called:
                got.callback(self.buf)

    ep = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    p = yield endpoints.connectProtocol(ep, amp.AMP())
    r = yield p.callRemote(Sum, a=13, b=81)
    check("sum before", r["total"] == 94, r)
    f = protocol.ClientFactory.forProtocol(Collect)
    yield p.callRemote(SwitchToUpper, _protoToSwitchToFactory=f, greeting="hi")
    data = yield got
    check("switched", data == b"upper ready\nHELLO\n", data)
    p.transport.loseConnection()
    return ok


def run_client(port, body=client, *args):
    result = []

    def done(ok):
        result.append(ok)
        reactor.stop()

    def failed(f):
        print("FAIL exception " + f.getTraceback(), flush=True)
        result.append(False)
        reactor.stop()

    reactor.callWhenRunning(lambda: body(port, *args).addCallbacks(done, failed))
    reactor.run()
    sys.exit(0 if result and result[0] else 1)


def run_server(cert=None, key=None):
    if cert is None:
        f = protocol.Factory.forProtocol(Math)
    else:
        from twisted.internet import ssl

        with open(cert, "rb") as c, open(key, "rb") as k:
            TlsMath.certificate = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
        f = protocol.Factory.forProtocol(TlsMath)
    port = reactor.listenTCP(0, f, interface="127.0.0.1")
    print("listening %d" % port.getHost().port, flush=True)
    reactor.run()


if __name__ == "__main__":
    if sys.argv[1] == "client":
        run_client(int(sys.argv[2]))
    elif sys.argv[1] == "switch-client":
        run_client(int(sys.argv[2]), switch_client)
    elif sys.argv[1] == "tls-client":
        run_client(int(sys.argv[2]), tls_client, sys.argv[3])
    elif sys.argv[1] == "tls-server":
        run_server(sys.argv[2], sys.argv[3])
    else:
        run_server()
