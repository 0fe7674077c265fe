#!/usr/bin/env python3
"""Writes realistic seed inputs for every fuzz target into DIR/TARGET (default fuzz/corpus).

Each fuzz target but web_fields reads its first byte as the place to split the rest into two
reads, so every seed here is that byte followed by what a peer would send. The kept corpus in
fuzz/corpus is minimized to edge coverage, which keeps the shortest inputs and drops these
whole messages; scripts/fuzz-smoke and scripts/fuzz-long write them to fuzz/target/seeds and
give them to every run as a second, read-only corpus, so each run starts from both.

    python3 fuzz/seeds.py [DIR]
"""
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CRLF = b"\r\n"


def http_requests():
    yield b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    yield (b"GET /search?q=hello+world&lang=en&lang=fr HTTP/1.1\r\nHost: example.com\r\n"
           b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
           b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
           b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
           b"Connection: keep-alive\r\nCookie: TWISTED_SESSION=abc123; theme=dark\r\n"
           b"If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n")
    yield (b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: 27\r\n\r\nname=Ada+Lovelace&year=1843")
    yield (b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n")
    yield (b"PUT /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody")
    yield (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
           b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nokGET /d HTTP/1.1\r\nHost: x\r\n\r\n")
    yield b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    yield b"GET http://example.com:8080/abs?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
    yield b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"
    yield b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    yield (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    yield (b"GET /file.iso HTTP/1.1\r\nHost: x\r\nRange: bytes=0-499,1000-,-200\r\n"
           b"If-Range: \"abc\"\r\n\r\n")
    # Smuggling attempts and other refusals.
    yield b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    yield b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    yield b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    yield b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    yield b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"
    yield b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n"
    yield b"\r\n\r\nGET / HTTP/1.1\nHost: x\n\n"
    yield b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    yield b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(12)) + b"\r\n"
    yield (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"ffffffffffffffffff\r\nx\r\n")
    yield (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\n" + b"T: " + b"t" * 300 + b"\r\n\r\n")


def http_responses():
    yield (b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: nginx/1.24.0\r\n"
           b"Content-Type: text/html; charset=utf-8\r\nContent-Length: 13\r\n"
           b"Set-Cookie: a=1; Path=/; HttpOnly\r\nSet-Cookie: b=2\r\n\r\n<p>hello</p>\n")
    yield (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
           b"a\r\n0123456789\r\n1A;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nExpires: 0\r\n\r\n")
    yield b"HTTP/1.1 304 Not Modified\r\nETag: \"xyzzy\"\r\n\r\n"
    yield b"HTTP/1.1 204 No Content\r\n\r\n"
    yield b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n"
    yield b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    yield b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the server closes"
    yield b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://example.com/\r\nContent-Length: 0\r\n\r\n"
    yield b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"
    yield b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw"
    yield b"HTTP/1.1 999 Odd\r\n\r\n"
    yield b"HTTP/1.1 200\r\n\r\n"
    yield b"HTTP/2 200 OK\r\n\r\n"
    yield b"HTTP/1.1 200 OK\r\nX: \x80\xff obs text\r\n\r\n"
    yield b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"


def haproxy():
    yield b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n\r\n"
    yield b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\nhello"
    yield b"PROXY UNKNOWN\r\n"
    yield b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"
    yield b"PROXY TCP4 256.0.0.1 1.2.3.4 1 2\r\n"
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    v4 = bytes([192, 0, 2, 1, 198, 51, 100, 1]) + struct.pack(">HH", 56324, 443)
    yield sig + b"\x21\x11" + struct.pack(">H", len(v4)) + v4 + b"data after"
    tlv = b"\x01\x00\x02h2" + b"\x04\x00\x00" + b"\x20\x00\x05\x01\x00\x00\x00\x00"
    yield sig + b"\x21\x11" + struct.pack(">H", len(v4) + len(tlv)) + v4 + tlv
    v6 = bytes(range(16)) + bytes(range(16, 32)) + struct.pack(">HH", 1, 2)
    yield sig + b"\x21\x21" + struct.pack(">H", len(v6)) + v6
    unix = b"/tmp/src".ljust(108, b"\x00") + b"/tmp/dst".ljust(108, b"\x00")
    yield sig + b"\x21\x31" + struct.pack(">H", len(unix)) + unix
    yield sig + b"\x20\x00\x00\x00health"
    yield sig + b"\x21\x12" + struct.pack(">H", len(v4)) + v4
    yield sig + b"\x21\x11\xff\xff" + v4


def irc():
    lines = [
        b":irc.example.net NOTICE * :*** Looking up your hostname...",
        b"PING :irc.example.net",
        b":alice!alice@host.example PRIVMSG #chan :hello bot",
        b":alice!alice@host.example PRIVMSG bot :\x01VERSION\x01",
        b":alice!alice@host.example PRIVMSG bot :\x01PING 12345\x01",
        b":alice!alice@host.example PRIVMSG #chan :\x01ACTION waves\x01",
        b"@time=2024-01-01T00:00:00.000Z;account=alice :alice!a@h PRIVMSG #c :tagged",
        b":bob!b@h JOIN #chan",
        b":bob!b@h PART #chan :bye",
        b":op!o@h KICK #chan bot :behave",
        b":op!o@h MODE #chan +o-v bot bob",
        b":bob!b@h NICK carol",
        b":carol!c@h QUIT :Ping timeout: 240 seconds",
        b":irc.example.net 332 bot #chan :The topic",
        b":irc.example.net 353 bot = #chan :@op +bob bot",
        b":irc.example.net 433 * bot :Nickname is already in use",
        b":irc.example.net 005 bot CHANTYPES=# PREFIX=(ov)@+ NETWORK=Example :are supported",
        b":x!y@z NOTICE bot :\x01VERSION torsion\x01",
        b":a!b@c PRIVMSG #c :" + b"long " * 100,
        b"ERROR :Closing Link: bot (Excess Flood)",
    ]
    for line in lines:
        yield line + CRLF
    yield CRLF.join(lines[:6]) + CRLF
    yield b"\n".join(lines[6:12]) + b"\n"


def netstrings():
    yield b"5:hello,"
    yield b"0:,5:hello,11:hello world,"
    yield b"12:hello world!,3:abc"
    yield b"999999999999:x,"
    yield b"5:hellox"
    yield b"05:hello,"
    yield b"3:a\x00b,"


def int_strings():
    for payload in [b"", b"hello", b"x" * 300]:
        yield struct.pack(">I", len(payload)) + payload
        yield struct.pack(">H", len(payload)) + payload
        yield struct.pack(">B", len(payload) % 256) + payload[:255]
    yield struct.pack(">I", 5) + b"hello" + struct.pack(">I", 0) + struct.pack(">I", 3) + b"ab"
    yield b"\xff\xff\xff\xffnot that long"


def lines():
    yield b"HELO example.com\r\nMAIL FROM:<a@example.com>\r\nQUIT\r\n"
    yield b"one\ntwo\r\nthree"
    yield b"RAW\r\nraw bytes then\r\nline again\r\n"
    yield b"x" * 70 + b"\r\n"
    yield b"x" * 63 + b"\r\n" + b"y" * 64 + b"\r"
    yield b"\r\n\r\n\r\n"


def web_fields():
    yield b"q=hello+world&lang=en&lang=fr&flag&&x=%3D%26"
    yield b"name=%E2%9C%93&empty=&=novalue&%zz=%4"
    yield b"/a%20b/%E2%9C%93+%2F..%2Fetc%2Fpasswd"
    yield b"Sun, 06 Nov 1994 08:49:37 GMT"
    yield b"Sunday, 06-Nov-94 08:49:37 GMT"
    yield b"Sun Nov  6 08:49:37 1994"
    yield b"Thu, 01 Jan 1970 00:00:00 GMT"
    yield b"Fri, 31 Dec 9999 23:59:59 GMT"
    yield b"Mon, 31 Apr 2023 10:00:00 GMT"
    yield b"Wednesday, 29-Feb-24 23:59:60 GMT"
    yield b"Tue Feb 29 12:00:00 2000"


def multipart_forms():
    yield (b"--xx\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n"
           b"--xx\r\nContent-Disposition: form-data; name=\"f\"; filename=\"C:\\x\\a\".txt\"\r\n"
           b"Content-Type: text/plain\r\n\r\n\r\n--x\r\n--xy\r\n--xx--\r\nepilogue")
    yield b"preamble\r\n--xx  \r\ncontent-disposition: form-data; name=e\r\n\r\n\r\n--xx--"
    yield (b"--xx\r\nContent-Disposition: form-data; name=u; filename*=UTF-8''na%C3%AFve\r\n\r\n"
           b"x\r\n--xx--")
    yield b"--xx\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--xx--"


def dns_queries():
    def name(n):
        return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".") if l) + b"\0"

    def query(n, qtype, qid=0x1234, flags=0x0100, edns=None, opcode=0):
        flags |= opcode << 11
        arcount = 1 if edns is not None else 0
        msg = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, arcount)
        msg += name(n) + struct.pack(">HH", qtype, 1)
        if edns is not None:
            msg += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
        return msg

    for n, t in [("www.example.test", 1), ("example.test", 15), ("mail.example.test", 28),
                 ("example.test", 6), ("example.test", 2), ("big.example.test", 16),
                 ("_s._tcp.example.test", 33), ("loop.example.test", 1),
                 ("a.sub.example.test", 1), ("nope.example.test", 1), ("example.org", 1),
                 ("example.test", 255), ("example.test", 252), ("example.test", 251)]:
        yield query(n, t)
        yield query(n, t, edns=4096)
    yield query("example.test", 1, edns=100)
    yield query("example.test", 1, opcode=2)
    yield query("example.test", 1)[:12]
    yield query("www.example.test", 1, flags=0x8180)

def smtp():
    yield (b"EHLO client.example\r\nMAIL FROM:<bob@example.net> SIZE=120 BODY=8BITMIME\r\n"
           b"RCPT TO:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n"
           b"Subject: hi\r\n\r\n..stuffed\r\nbody\r\n.\r\nQUIT\r\n")
    yield b"HELO a\r\nMAIL FROM:<>\r\nRCPT TO:<@r.example:x@y.example>\r\nRSET\r\nNOOP\r\nVRFY x\r\n"
    yield b"EHLO a\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n"
    yield b"EHLO a\r\nAUTH PLAIN\r\n*\r\nSTARTTLS\r\nMAIL FROM:<x@y>\r\n"
    yield b"EHLO a\r\nMAIL FROM:<a@b> SMTPUTF8\r\nRCPT TO:<\"q d\"@b>\r\nDATA\r\n" + b"x" * 5000 + b"\r\n.\r\n"

def ftp():
    yield b"\x10USER anonymous\r\nPASS guest@example.org\r\nSYST\r\nFEAT\r\nPWD\r\nTYPE I\r\nEPSV\r\nRETR /pub/file.txt\r\nQUIT\r\n"
    yield (b"\x08USER alice\r\nPASS wonderland\r\nCWD sub dir\r\nCDUP\r\nPASV\r\nLIST -la\r\nMLSD\r\n"
           b"MLST hello.txt\r\nSIZE hello.txt\r\nMDTM hello.txt\r\nREST 100\r\nRETR big.iso\r\n"
           b"MKD new\r\nSTOR new/a.bin\r\nAPPE new/a.bin\r\nRNFR new/a.bin\r\nRNTO new/b.bin\r\n"
           b"DELE new/b.bin\r\nRMD new\r\nOPTS UTF8 ON\r\nNOOP\r\n")
    yield b"\x05AUTH TLS\r\nPBSZ 0\r\nPROT P\r\nUSER alice\r\n"
    yield b"\x03USER a\r\nPASS b\r\nPORT 127,0,0,1,200,10\r\nEPRT |1|10.0.0.1|5000|\r\nEPRT |2|::1|5000|\r\nNLST\r\n"
    yield b"\x02USER a\r\nPASS b\r\nCWD ../../etc\r\nRETR /../../etc/passwd\r\nSIZE a\x00b\r\n" + b"X" * 9000 + b"\r\n"


def pop3():
    yield (b"CAPA\r\nUSER u\r\nPASS p\r\nSTAT\r\nLIST\r\nUIDL\r\nLIST 2\r\nRETR 1\r\n"
           b"TOP 2 0\r\nDELE 1\r\nRSET\r\nDELE 2\r\nNOOP\r\nQUIT\r\n")
    yield b"USER u\r\nPASS wrong one\r\nUSER u\r\nPASS p\r\nUIDL 9\r\nRETR 0\r\nTOP 1 x\r\n"
    yield b"STLS\r\nUSER pipelined\r\nCAPA\r\nAPOP u 0123456789abcdef0123456789abcdef\r\n"
    yield b"Subject: x\n\n.dot\n..two\r\n.\r\nlast" + b"y" * 300 + b"\r\nQUIT\r\n"


def imap():
    yield (b"c1 CAPABILITY\r\nc2 NOOP\r\nc3 LIST \"\" \"*\"\r\nc4 STATUS INBOX (MESSAGES UIDNEXT UNSEEN)\r\n"
           b"c5 FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)\r\n"
           b"c6 UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODY[1.MIME] BODY[]<0.10>)\r\n")
    yield (b"s1 SEARCH CHARSET UTF-8 OR (FROM \"a\" SINCE 1-Jan-2020) NOT (LARGER 10 UID 1:*)\r\n"
           b"s2 UID SEARCH UNSEEN SUBJECT {3}\r\none\r\n"
           b"s3 STORE 1 +FLAGS.SILENT (\\Seen \\Flagged)\r\ns4 UID STORE 2 -FLAGS (\\Seen)\r\n")
    yield (b"m1 CREATE Fuzz.Sub\r\nm2 COPY 1 Fuzz.Sub\r\nm3 RENAME Fuzz.Sub Fuzz.Other\r\n"
           b"m4 APPEND Fuzz.Other (\\Seen) \"07-Dec-2026 03:10:18 +0000\" {12+}\r\nSubject: x\r\n\r\n"
           b"m5 SUBSCRIBE Fuzz.Other\r\nm6 LSUB \"\" %\r\nm7 DELETE Fuzz.Other\r\nm8 DELETE Fuzz\r\n")
    yield b"i1 IDLE\r\nDONE\r\ne1 EXPUNGE\r\nc1 CLOSE\r\nx1 EXAMINE INBOX\r\nl LOGOUT\r\n"
    yield b"a1 AUTHENTICATE PLAIN\r\nAGFsaWNlAHB3\r\na2 APPEND INBOX {99999999999}\r\na3 APPEND INBOX {9999+}\r\n"


def nntp():
    yield (b"CAPABILITIES\r\nMODE READER\r\nLIST\r\nLIST NEWSGROUPS a.*\r\nGROUP a.b\r\n"
           b"ARTICLE\r\nHEAD 1\r\nBODY <1@y>\r\nSTAT\r\nNEXT\r\nLAST\r\nOVER 1-\r\nXHDR subject 1-2\r\nQUIT\r\n")
    yield (b"POST\r\nFrom: a@b\r\nNewsgroups: a.b,c\r\nSubject: hi\r\n\r\n..stuffed\r\nline\r\n.\r\n"
           b"LISTGROUP c 1-\r\nNEWNEWS * 19700101 000000 GMT\r\nNEWGROUPS 700101 000000\r\nDATE\r\nHELP\r\n")
    yield b"AUTHINFO USER u\r\nAUTHINFO PASS p\r\nAUTHINFO USER u\r\nAUTHINFO PASS p\r\nPOST\r\n" + b"x" * 5000 + b"\r\n.\r\n"
    yield b"GROUP " + b"a" * 600 + b"\r\nHDR :bytes <1@y>\r\nLIST OVERVIEW.FMT\r\nLIST HEADERS\r\n"

def ws_frame(opcode, payload, fin=True, mask=None):
    head = bytes([(0x80 if fin else 0) | opcode])
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def websocket_frames():
    m = b"\x12\x34\x56\x78"
    for mask in [m, None]:
        yield ws_frame(1, "héllo".encode(), mask=mask)
        yield ws_frame(2, bytes(range(256)) * 2, mask=mask)
        yield ws_frame(1, b"frag", fin=False, mask=mask) + ws_frame(9, b"ping", mask=mask) + ws_frame(0, b"ment", mask=mask)
        yield ws_frame(8, struct.pack(">H", 1000) + b"bye", mask=mask)
        yield ws_frame(10, b"", mask=mask) + ws_frame(8, b"", mask=mask)
        yield ws_frame(1, b"\xc3\x28", mask=mask)
        yield ws_frame(2, b"x" * 5000, mask=mask)


def telnet_bytes():
    IAC, DO, DONT, WILL, WONT, SB, SE = 255, 253, 254, 251, 252, 250, 240
    # What a Linux telnet client sends on connecting, then a line, then a window change.
    yield bytes([IAC, DO, 1, IAC, DO, 3, IAC, WILL, 31, IAC, WILL, 24, IAC, WILL, 34])
    yield bytes([IAC, SB, 31, 0, 80, 0, 24, IAC, SE]) + b"connections()\r\0"
    yield bytes([IAC, SB, 31, 0, IAC, IAC, 1, 0, IAC, SE, IAC, 244])
    yield b"x = 1\x1b[D\x1b[3~\x7f\x01\x05\t\x1b[A\x1b[B\x03\x04\r\n"
    yield bytes([IAC, WONT, 1, IAC, DONT, 3, IAC, 241, IAC, IAC, 0xC3, 0xA9])


def sftp_packets():
    def pkt(kind, body):
        return struct.pack(">I", len(body) + 1) + bytes([kind]) + body

    def s(b):
        return struct.pack(">I", len(b)) + b

    h = s(struct.pack(">I", 1))
    # What OpenSSH's sftp sends for `put`: init, realpath, open (write, create, truncate,
    # with a mode), two writes, fstat, close; then a listing and a rename.
    yield (pkt(1, struct.pack(">I", 3)) + pkt(16, struct.pack(">I", 1) + s(b"."))
           + pkt(3, struct.pack(">I", 2) + s(b"/up.bin") + struct.pack(">III", 0x1A, 4, 0o644))
           + pkt(6, struct.pack(">I", 3) + h + struct.pack(">Q", 0) + s(b"x" * 100))
           + pkt(6, struct.pack(">I", 4) + h + struct.pack(">Q", 100) + s(b"y" * 7))
           + pkt(8, struct.pack(">I", 5) + h) + pkt(4, struct.pack(">I", 6) + h))
    yield (pkt(11, struct.pack(">I", 7) + s(b"/")) + pkt(12, struct.pack(">I", 8) + h)
           + pkt(18, struct.pack(">I", 9) + s(b"a") + s(b"b/../c"))
           + pkt(9, struct.pack(">I", 10) + s(b"f") + struct.pack(">IQIIII", 0x8000000F, 5, 1, 2, 3, 4) + struct.pack(">I", 0)))
    yield pkt(5, struct.pack(">I", 11) + h + struct.pack(">QI", 0, 32768)) + pkt(200, struct.pack(">I", 12) + s(b"posix-rename@openssh.com"))


def irc_server():
    hello = b"CAP LS 302\r\nNICK alice\r\nUSER alice 0 * :Alice\r\nCAP END\r\n"
    lines = [
        b"JOIN #torsion,#rust key1",
        b"PRIVMSG #torsion :hello there",
        b"PRIVMSG alice,bob :\x01ACTION waves\x01",
        b"NOTICE #torsion :\x01VERSION\x01",
        b"TOPIC #torsion :a new topic",
        b"MODE #torsion +ntmlk-v+o 5 secret bob alice",
        b"MODE #torsion",
        b"MODE #torsion b",
        b"MODE alice +i",
        b"KICK #torsion bob :behave",
        b"NAMES #torsion",
        b"WHO #torsion",
        b"WHOIS alice",
        b"LIST",
        b"AWAY :lunch",
        b"ISON alice bob",
        b"NICK [bob]",
        b"PART #torsion :bye",
        b"PING :12345",
        b"QUIT :done",
    ]
    for line in lines:
        yield hello + line + CRLF
    yield hello + CRLF.join(lines) + CRLF


TARGETS = {
    "http_request": http_requests,
    "http_response": http_responses,
    "haproxy": haproxy,
    "irc_client": irc,
    "irc_server": irc_server,
    "netstrings": netstrings,
    "int_strings": int_strings,
    "lines": lines,
    "web_fields": web_fields,
    "dns_query": dns_queries,
    "smtp_commands": smtp,
    "ftp_commands": ftp,
    "pop3_commands": pop3,
    "nntp_commands": nntp,
    "websocket_frames": websocket_frames,
    "telnet_bytes": telnet_bytes,
    "imap_commands": imap,
    "sftp_packets": sftp_packets,
    "multipart_forms": multipart_forms,
}

# Targets that read no split byte.
NO_SPLIT = {"web_fields", "sftp_packets"}


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    for target, seeds in TARGETS.items():
        out = os.path.join(base, target)
        os.makedirs(out, exist_ok=True)
        for seed in seeds():
            variants = [seed] if target in NO_SPLIT else [b"\xff" + seed, bytes([len(seed) // 2 % 256]) + seed]
            for v in variants:
                name = hashlib.sha1(v).hexdigest()
                with open(os.path.join(out, name), "wb") as f:
                    f.write(v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
