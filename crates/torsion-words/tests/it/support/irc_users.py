"""Three users of Python's `irc` package (PyPI) on one server: they register, join a channel,
see its topic, talk, see each other's messages, and the channel operator voices one and
kicks another, then bans her and makes the channel invite-only, and an invitation lets her
back in; CTCP ACTION goes through. Prints "ok STEP" as it goes, "done" at the end; exits 1 on
a step that does not happen within its time.

Usage: irc_users.py PORT [CAFILE]
With CAFILE the users connect over TLS, checking the server's certificate (for "localhost")
against CAFILE.
"""
import functools
import ssl
import sys
import time

import irc.client
import irc.connection

port = int(sys.argv[1])
connect_factory = irc.connection.Factory()
if len(sys.argv) > 2:
    context = ssl.create_default_context(cafile=sys.argv[2])
    connect_factory = irc.connection.Factory(
        wrapper=functools.partial(context.wrap_socket, server_hostname="localhost")
    )
names = ["alice", "bob", "carol"]
seen = {n: [] for n in names}
reactor = irc.client.Reactor()


def record(conn, event):
    src = event.source.nick if event.source and "!" in event.source else str(event.source)
    seen[conn.get_nickname()].append((event.type, src, event.target, list(event.arguments)))


reactor.add_global_handler("all_events", record, -10)
conns = {
    n: reactor.server().connect("127.0.0.1", port, n, connect_factory=connect_factory)
    for n in names
}


def wait(step, pred, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            print("ok", step, flush=True)
            return
        reactor.process_once(0.05)
    print("timeout", step, seen, flush=True)
    sys.exit(1)


def has(nick, type_, src=None, target=None, arg=None):
    return any(
        t == type_
        and (src is None or s == src)
        and (target is None or (g or "").lower() == target.lower())
        and (arg is None or arg in a)
        for t, s, g, a in seen[nick]
    )


wait("welcome", lambda: all(has(n, "welcome") for n in names))
conns["alice"].join("#py")
wait("alice joined", lambda: has("alice", "join", "alice", "#py"))
conns["alice"].topic("#py", "python was here")
wait("topic set", lambda: has("alice", "topic", "alice", "#py", "python was here"))
conns["bob"].join("#py")
conns["carol"].join("#py")
wait("bob and carol joined", lambda: has("alice", "join", "bob") and has("alice", "join", "carol"))
wait("bob sees the topic", lambda: has("bob", "currenttopic", arg="python was here"))
for n in names:
    conns[n].privmsg("#py", f"hello from {n}")
wait(
    "everyone sees the others",
    lambda: all(
        has(n, "pubmsg", other, "#py", f"hello from {other}")
        for n in names
        for other in names
        if other != n
    ),
)
conns["alice"].mode("#py", "+v bob")
wait("bob voiced", lambda: has("bob", "mode", "alice", "#py", "+v"))
conns["carol"].action("alice", "waves")
wait("ctcp action", lambda: has("alice", "action", "carol", "alice", "waves"))
conns["alice"].kick("#py", "carol", "out")
wait("carol kicked", lambda: has("carol", "kick", "alice", "#py", "carol"))
conns["alice"].mode("#py", "+b carol")
wait("carol banned", lambda: has("bob", "mode", "alice", "#py", "carol!*@*"))
conns["carol"].join("#py")
wait("the ban keeps carol out", lambda: has("carol", "bannedfromchan"))
conns["alice"].mode("#py", "+i")
conns["alice"].invite("carol", "#py")
wait("carol invited", lambda: has("carol", "invite", "alice", arg="#py") and has("alice", "inviting"))
conns["carol"].join("#py")
wait(
    "the invitation lets carol in",
    lambda: sum(1 for t, s, _, _ in seen["alice"] if t == "join" and s == "carol") == 2,
)
conns["bob"].whois(["alice"])
wait("whois", lambda: has("bob", "whoisuser", arg="alice") and has("bob", "endofwhois"))
conns["bob"].quit("bye")
conns["carol"].quit("bye")
wait("quit seen", lambda: has("alice", "quit", "bob", arg="Quit: bye"))
conns["alice"].quit("bye")
print("done", flush=True)
