"""Twisted's side of Torsion's fidelity check (tests/it/fidelity_twisted.rs).

usage: fidelity_twisted.py

Runs each scenario in Twisted itself, with no network and no reactor (a Clock, a
StringTransport), and prints one line per scenario: "NAME: OUTCOME". The Rust test computes
the same outcome in Torsion and compares: equal where Torsion follows Twisted, different as
docs/design.md says where it differs on purpose. Keep the formats in step with the Rust side.
"""
import gc

from twisted.internet import defer
from twisted.internet.defer import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    DeferredList,
    FirstError,
    ensureDeferred,
    fail,
    gatherResults,
    succeed,
)
from twisted.internet.error import ConnectionDone, TimeoutError
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure


def say(name, outcome):
    print(f"{name}: {outcome}", flush=True)


def kind(failure):
    """The name Torsion's side uses for a failure's type."""
    return type(failure.value).__name__


# -- 1. LineReceiver and MAX_LENGTH -----------------------------------------------------------


class Script(LineReceiver):
    MAX_LENGTH = 10

    def __init__(self):
        self.events = []

    def lineReceived(self, line):
        self.events.append(f"line({line.decode()})")

    def lineLengthExceeded(self, line):
        self.events.append(f"exceeded({len(line)})")
        self.transport.loseConnection()


def lines(name, chunks):
    p = Script()
    t = StringTransport()
    p.makeConnection(t)
    for c in chunks:
        p.dataReceived(c)
    say(name, " ".join(p.events + ["closed" if t.disconnecting else "open"]))


lines("lines_max_length_delimiter_split_across_reads", [b"0123456789\r", b"\n"])
lines("lines_max_length_in_one_read", [b"0123456789\r\n"])
lines("lines_partial_line_of_limit_plus_one_waits", [b"x" * 11])
lines("lines_partial_line_of_limit_plus_delimiter_is_exceeded", [b"x" * 12])
lines("lines_overlong_line_hands_over_the_rest", [b"0123456789abc\r\nnext\r\n"])
lines("lines_crlf_across_chunks", [b"one\r", b"\ntwo\r\nthr", b"ee\r\n"])


# -- 2. Firing the end of a chain --------------------------------------------------------------


def try_fire(d, value):
    try:
        d.callback(value)
        return "ok"
    except AlreadyCalledError:
        return "AlreadyCalledError"


start = Deferred()
end = start.addCallback(lambda x: x + 1)  # in Twisted, the same object
first = try_fire(end, 1)
second = try_fire(start, 1)
results = []
end.addCallback(results.append)
say(
    "fire_end_of_chain",
    f"end.callback(1)={first} start.callback(1)={second} end.result={results[0]}",
)


# -- 3. Cancelling ensureDeferred of a coroutine awaiting deferLater ---------------------------


def pending(clock):
    return "[" + ", ".join(f"{c.getTime():.1f}" for c in clock.getDelayedCalls()) + "]"


def outcome(d):
    got = []
    d.addCallbacks(lambda v: got.append(f"ok({v})"), lambda f: got.append(f"fail({kind(f)})"))
    return got[0] if got else "not fired"


def cancel_awaiting(name, recover):
    clock = Clock()
    seen = []

    async def code():
        try:
            return await deferLater(clock, 5, lambda: 1)
        except CancelledError:
            seen.append("CancelledError")
            if recover:
                return "cleaned up"
            raise

    d = ensureDeferred(code())
    before = pending(clock)
    d.cancel()
    say(
        name,
        f"pending={before} cancel: pending={pending(clock)} code_saw={','.join(seen)} "
        f"result={outcome(d)}",
    )


cancel_awaiting("ensure_deferred_cancel_awaiting_defer_later", False)
cancel_awaiting("ensure_deferred_cancel_recovered", True)


# -- 4. Cancelling a chain that waits on a Deferred a callback returned ------------------------


def cancel_returned_canceller_runs():
    ran = []
    end = succeed(1)
    end.addCallback(lambda _: Deferred(lambda d: ran.append(True)))
    end.addCallback(lambda v: v + 1)
    end.cancel()
    say("cancel_reaches_returned_deferred", f"canceller_ran={bool(ran)} result={outcome(end)}")


def cancel_returned_canceller_answers():
    end = succeed(None)
    end.addCallback(lambda _: Deferred(lambda d: d.errback(ConnectionDone())))
    end.addCallback(lambda v: v * 2)
    end.cancel()
    say("cancel_returned_canceller_answers", f"result={outcome(end)}")


def cancel_two_levels():
    ran = []

    def innermost(d):
        ran.append(True)
        d.callback("cancelled, but answered")

    end = succeed(None)
    end.addCallback(
        lambda _: succeed(None).addCallback(lambda _: Deferred(innermost))
    )
    end.cancel()
    say("cancel_reaches_two_levels_down", f"canceller_ran={bool(ran)} result={outcome(end)}")


def cancel_after_returned_fired():
    inner = Deferred()
    end = succeed(None)
    end.addCallback(lambda _: inner)
    inner.callback(4)
    end.cancel()
    say("cancel_after_returned_deferred_fired", f"result={outcome(end)}")


cancel_returned_canceller_runs()
cancel_returned_canceller_answers()
cancel_two_levels()
cancel_after_returned_fired()


# -- 5. DeferredList, gatherResults, race ------------------------------------------------------

events = []
globalLogPublisher.addObserver(events.append)


def logged():
    """What was logged since the last call: unhandled errors and warnings, counted."""
    gc.collect()
    gc.collect()
    unhandled = sum("Unhandled error in Deferred" in (formatEvent(e) or "") for e in events)
    warnings = sum(e.get("log_level") == LogLevel.warn for e in events)
    events.clear()
    return f"unhandled={unhandled} warnings={warnings}"


def entry(pair):
    ok, value = pair
    return f"ok({value})" if ok else f"fail({kind(value)})"


def dlist_by_default_logs_member_failures():
    got = []
    dl = DeferredList([succeed(1), fail(TimeoutError()), fail(ConnectionDone())])
    dl.addCallback(got.append)
    results = "[" + ", ".join(entry(p) for p in got[0]) + "]"
    del dl, got
    say("dlist_default_keeps_member_failures_unhandled", f"results={results} {logged()}")


def dlist_consume_errors():
    got = []
    dl = DeferredList([succeed(1), fail(TimeoutError())], consumeErrors=True)
    dl.addCallback(got.append)
    results = "[" + ", ".join(entry(p) for p in got[0]) + "]"
    del dl, got
    say("dlist_consume_errors_logs_nothing", f"results={results} {logged()}")


def first_error(f):
    f.trap(FirstError)
    return f"FirstError(index={f.value.index}, {kind(f.value.subFailure)})"


def gather_default():
    ds = [Deferred() for _ in range(3)]
    all_ = gatherResults(ds)
    ds[1].errback(TimeoutError())
    ds[2].errback(ConnectionDone())
    ds[0].callback(0)
    got = []
    all_.addErrback(lambda f: got.append(first_error(f)))
    del ds, all_
    say("gather_default_keeps_every_member_failure_unhandled", f"{got[0]} {logged()}")


def gather_consume_errors_later_failure():
    ds = [Deferred() for _ in range(3)]
    all_ = gatherResults(ds, consumeErrors=True)
    ds[0].errback(TimeoutError())
    ds[1].errback(ConnectionDone())
    ds[2].callback(2)
    got = []
    all_.addErrback(lambda f: got.append(first_error(f)))
    del ds, all_
    say("gather_consume_errors_later_failure", f"{got[0]} {logged()}")


def fire_on_one_callback_first_success():
    ds = [Deferred() for _ in range(3)]
    dl = DeferredList(ds, fireOnOneCallback=True, consumeErrors=True)
    ds[0].errback(TimeoutError())
    after_failure = "fired" if dl.called else "waiting"
    ds[2].callback(22)
    ds[1].callback(11)
    got = []
    dl.addCallback(got.append)
    say(
        "fire_on_one_callback_first_success",
        f"after_a_failure={after_failure} result={got[0]!r}",
    )


def fire_on_one_callback_all_fail():
    ds = [Deferred() for _ in range(2)]
    dl = DeferredList(ds, fireOnOneCallback=True, consumeErrors=True)
    ds[1].errback(ConnectionDone())
    after_one = "fired" if dl.called else "waiting"
    ds[0].errback(TimeoutError())
    got = []
    dl.addCallbacks(
        lambda r: got.append("callback(failures=[" + ", ".join(kind(f) for _, f in r) + "])"),
        lambda f: got.append(f"errback({kind(f)})"),
    )
    say("fire_on_one_callback_all_fail", f"after_one={after_one} fired={got[0]}")


def fire_on_one_callback_empty():
    dl = DeferredList([], fireOnOneCallback=True)
    say("fire_on_one_callback_of_nothing", "fired" if dl.called else "never fires")


def fire_on_one_errback():
    ds = [Deferred() for _ in range(3)]
    dl = DeferredList(ds, fireOnOneErrback=True, consumeErrors=True)
    ds[0].callback(0)
    ds[1].errback(TimeoutError())
    got = []
    dl.addErrback(lambda f: got.append(first_error(f)))
    say("fire_on_one_errback_first_failure", f"fired={'yes' if got else 'no'} {got[0]}")


def race_first_success():
    cancelled = []
    ds = [Deferred(lambda d: cancelled.append(d)) for _ in range(3)]
    winner = defer.race(ds)
    ds[1].callback(11)
    got = []
    winner.addCallback(got.append)
    say("race_first_success", f"result={got[0]!r} losers_cancelled={len(cancelled)} {logged()}")


def race_all_fail():
    ds = [Deferred() for _ in range(2)]
    winner = defer.race(ds)
    ds[1].errback(ConnectionDone())
    after_one = "fired" if winner.called else "waiting"
    ds[0].errback(TimeoutError())
    got = []

    def group(f):
        got.append(
            f"{kind(f)}([" + ", ".join(kind(x) for x in f.value.failures) + "])"
        )

    winner.addErrback(group)
    say("race_all_fail", f"after_one={after_one} failed={got[0]}")


def race_empty():
    winner = defer.race([])
    say("race_of_nothing", "fired" if winner.called else "never fires")


def race_loser_fails_otherwise():
    stubborn = Deferred(lambda d: d.errback(TimeoutError()))
    quiet = Deferred()
    fast = Deferred()
    winner = defer.race([stubborn, quiet, fast])
    fast.callback(3)
    got = []
    winner.addCallback(got.append)
    del stubborn, quiet, fast, winner
    say("race_loser_fails_with_another_error", f"result={got[0]!r} {logged()}")


logged()
dlist_by_default_logs_member_failures()
dlist_consume_errors()
gather_default()
gather_consume_errors_later_failure()
fire_on_one_callback_first_success()
fire_on_one_callback_all_fail()
fire_on_one_callback_empty()
fire_on_one_errback()
race_first_success()
race_all_fail()
race_empty()
race_loser_fails_otherwise()
