//! Endpoint strings, parsed without a reactor: every server and client form (positional and
//! keyword), backslash escaping, each error naming the part that is wrong, and `Display`
//! writing back a string that parses to the same description.

use torsion::endpoints::{
    parse_args, ClientDescription, EndpointError, ServerDescription, SystemdDomain,
};

fn server(s: &str) -> ServerDescription {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} did not parse: {e}"))
}

fn client(s: &str) -> ClientDescription {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} did not parse: {e}"))
}

fn server_err(s: &str) -> EndpointError {
    s.parse::<ServerDescription>()
        .expect_err(&format!("{s:?} parsed"))
}

fn client_err(s: &str) -> EndpointError {
    s.parse::<ClientDescription>()
        .expect_err(&format!("{s:?} parsed"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tokenizer_follows_twisted_parse() {
    let (args, kw) = parse_args(r"tcp:80:interface=\:\:1").unwrap();
    assert_eq!(args, strings(&["tcp", "80"]));
    assert_eq!(kw, vec![("interface".to_string(), "::1".to_string())]);

    // After '=', only ':' ends the value.
    let (args, kw) = parse_args("x:a=b=c:d").unwrap();
    assert_eq!(args, strings(&["x", "d"]));
    assert_eq!(kw, vec![("a".to_string(), "b=c".to_string())]);

    // Escapes: a literal backslash, a literal '=' in a positional argument, empty parts.
    let (args, kw) = parse_args(r"x:c\\d:e\=f::").unwrap();
    assert_eq!(args, strings(&["x", r"c\d", "e=f", "", ""]));
    assert!(kw.is_empty());
}

#[test]
fn tcp_server_forms() {
    assert_eq!(
        server("tcp:8080"),
        ServerDescription::Tcp {
            port: 8080,
            interface: None,
            backlog: 1024,
            send_timeout: 60,
            write_limit: 0,
        }
    );
    assert_eq!(
        server("tcp:port=8080:interface=127.0.0.1:backlog=1024"),
        ServerDescription::Tcp {
            port: 8080,
            interface: Some("127.0.0.1".into()),
            backlog: 1024,
            send_timeout: 60,
            write_limit: 0,
        }
    );
    assert_eq!(
        server("tcp:8080:127.0.0.1:7"),
        ServerDescription::Tcp {
            port: 8080,
            interface: Some("127.0.0.1".into()),
            backlog: 7,
            send_timeout: 60,
            write_limit: 0,
        }
    );
    assert_eq!(server("TCP:0"), server("tcp:port=0"));
    assert_eq!(
        server(r"tcp6:8080:interface=\:\:1"),
        ServerDescription::Tcp6 {
            port: 8080,
            interface: "::1".into(),
            backlog: 1024,
            send_timeout: 60,
            write_limit: 0,
        }
    );
    assert_eq!(
        server("tcp6:443"),
        ServerDescription::Tcp6 {
            port: 443,
            interface: "::".into(),
            backlog: 1024,
            send_timeout: 60,
            write_limit: 0,
        }
    );
}

#[test]
fn unix_server_forms() {
    assert_eq!(
        server("unix:/path/sock:mode=660:lockfile=0"),
        ServerDescription::Unix {
            address: "/path/sock".into(),
            mode: 0o660,
            backlog: 1024,
            lockfile: false
        }
    );
    assert_eq!(
        server("unix:address=/tmp/a\\:b"),
        ServerDescription::Unix {
            address: "/tmp/a:b".into(),
            mode: 0o666,
            backlog: 1024,
            lockfile: true
        }
    );
}

#[test]
fn tls_and_systemd_server_forms() {
    assert_eq!(
        server("tls:8443:privateKey=key.pem:certKey=cert.pem"),
        ServerDescription::Tls {
            port: 8443,
            interface: None,
            backlog: 1024,
            private_key: "key.pem".into(),
            cert_key: Some("cert.pem".into()),
            extra_cert_chain: None,
            dh_parameters: None,
            handshake_timeout: 60,
            send_timeout: 60,
            write_limit: 0,
        }
    );
    match server("tls:8443:handshakeTimeout=2") {
        ServerDescription::Tls {
            handshake_timeout, ..
        } => assert_eq!(handshake_timeout, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server("tls:8443:handshakeTimeout=5:sendTimeout=0").to_string(),
        "tls:8443:handshakeTimeout=5:sendTimeout=0"
    );
    assert_eq!(
        server("tcp:80:sendTimeout=7").to_string(),
        "tcp:80:sendTimeout=7"
    );
    assert!("tcp:80:sendTimeout=x".parse::<ServerDescription>().is_err());
    // ssl: is Twisted's older name for the same thing.
    assert_eq!(
        server("ssl:8443:privateKey=key.pem:certKey=cert.pem"),
        server("tls:8443:privateKey=key.pem:certKey=cert.pem")
    );
    match server("tls:443") {
        ServerDescription::Tls { private_key, .. } => assert_eq!(private_key, "server.pem"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server("systemd:domain=INET:index=0"),
        ServerDescription::Systemd {
            domain: SystemdDomain::Inet,
            index: 0
        }
    );
    assert_eq!(
        server("systemd:INET6:2"),
        ServerDescription::Systemd {
            domain: SystemdDomain::Inet6,
            index: 2
        }
    );
}

#[test]
fn client_forms() {
    assert_eq!(
        client("tcp:host=example.com:port=80:timeout=30"),
        ClientDescription::Tcp {
            host: "example.com".into(),
            port: 80,
            timeout: 30.0,
            bind_address: None
        }
    );
    assert_eq!(
        client("tcp:example.com:80"),
        client("tcp:host=example.com:port=80")
    );
    // Twisted's rule: with host= given, a lone positional argument is the port.
    assert_eq!(
        client("tcp:80:host=example.com"),
        client("tcp:example.com:80")
    );
    assert_eq!(
        client(r"tcp:\:\:1:8080:timeout=2.5"),
        ClientDescription::Tcp {
            host: "::1".into(),
            port: 8080,
            timeout: 2.5,
            bind_address: None
        }
    );
    assert_eq!(
        client("unix:path=/path/sock:timeout=5"),
        ClientDescription::Unix {
            path: "/path/sock".into(),
            timeout: 5.0,
            check_pid: false
        }
    );
    assert_eq!(client("unix:/path/sock"), client("unix:path=/path/sock"));
    assert_eq!(
        client("tls:host=example.com:port=443"),
        ClientDescription::Tls {
            host: "example.com".into(),
            port: 443,
            timeout: 30.0,
            bind_address: None,
            certificate: None,
            private_key: None,
            trust_roots: None,
        }
    );
}

#[test]
fn errors_name_the_part() {
    let cases: Vec<(EndpointError, &str)> = vec![
        (server_err(""), "empty endpoint description"),
        (
            server_err("8080"),
            "bare port number '8080' is not an endpoint description; write 'tcp:8080'",
        ),
        (server_err("udp:53"), "unknown server endpoint type 'udp'"),
        (
            client_err("carrier-pigeon:x"),
            "unknown client endpoint type 'carrier-pigeon'",
        ),
        (
            server_err("port=80"),
            "unknown server endpoint type 'port=80'",
        ),
        (
            server_err("tcp:interface=127.0.0.1"),
            "missing port for a tcp endpoint",
        ),
        (server_err("tcp:port=80x"), "bad number in 'port=80x'"),
        (server_err("tcp:70000"), "bad number in 'port=70000'"),
        (
            server_err("tcp:80:backlog=-1"),
            "bad number in 'backlog=-1'",
        ),
        (server_err("unix:/s:mode=99"), "bad number in 'mode=99'"),
        (
            server_err("tcp:80:intrface=127.0.0.1"),
            "unknown keyword 'intrface' for a tcp endpoint (expected port, interface, backlog, sendTimeout, writeLimit)",
        ),
        (
            server_err("tcp:80:127.0.0.1:50:extra"),
            "too many arguments for a tcp endpoint, from 'extra'",
        ),
        (
            server_err("tcp:80:port=81"),
            "port given more than once for a tcp endpoint",
        ),
        (
            server_err("tcp:80\\"),
            "unterminated escape: backslash at the end (offset 6)",
        ),
        (
            server_err("systemd:domain=IPX:index=0"),
            "bad value in 'domain=IPX' (expected INET, INET6 or UNIX)",
        ),
        (
            server_err("systemd:domain=INET"),
            "missing index for a systemd endpoint",
        ),
        (
            server_err("unix:mode=600"),
            "missing address for a unix endpoint",
        ),
        (
            client_err("tcp:host=example.com"),
            "missing port for a tcp endpoint",
        ),
        (client_err("tcp:port=80"), "missing host for a tcp endpoint"),
        (
            client_err("tcp:h:80:timeout=soon"),
            "bad number in 'timeout=soon'",
        ),
        (
            client_err("tcp:h:80:timeout=-1"),
            "bad number in 'timeout=-1'",
        ),
        (
            client_err("unix:path=/s:checkPID=yes"),
            "bad number in 'checkPID=yes'",
        ),
        (
            client_err("unix:/s:tiemout=5"),
            "unknown keyword 'tiemout' for a unix endpoint (expected path, timeout, checkPID)",
        ),
    ];
    for (err, want) in cases {
        assert_eq!(err.to_string(), want);
    }
    assert_eq!(
        server_err("tcp:port=80x"),
        EndpointError::BadNumber {
            name: "port",
            value: "80x".into()
        }
    );
    // An EndpointError is an Error, so `?` turns it into a Failure.
    let f = torsion::Failure::new(server_err("tcp:x"));
    assert!(f.check::<EndpointError>());
}

#[test]
fn display_round_trips() {
    let servers = [
        ("tcp:8080", "tcp:8080"),
        (
            "tcp:port=8080:interface=127.0.0.1:backlog=1024",
            "tcp:8080:interface=127.0.0.1",
        ),
        ("tcp:0:backlog=7", "tcp:0:backlog=7"),
        (r"tcp6:8080:interface=\:\:1", r"tcp6:8080:interface=\:\:1"),
        (r"tcp6:8080:interface=\:\:", "tcp6:8080"),
        (
            "unix:/path/sock:mode=660:lockfile=0",
            "unix:/path/sock:mode=660:lockfile=0",
        ),
        (r"unix:/we\:ird\\path\=x", r"unix:/we\:ird\\path\=x"),
        (
            "ssl:8443:privateKey=key.pem:certKey=cert.pem",
            "tls:8443:privateKey=key.pem:certKey=cert.pem",
        ),
        (
            "tls:443:interface=10.0.0.1:extraCertChain=chain.pem:dhParameters=dh.pem",
            "tls:443:interface=10.0.0.1:extraCertChain=chain.pem:dhParameters=dh.pem",
        ),
        ("systemd:INET6:3", "systemd:domain=INET6:index=3"),
    ];
    for (input, shown) in servers {
        let d = server(input);
        assert_eq!(d.to_string(), shown, "display of {input:?}");
        assert_eq!(server(&d.to_string()), d, "round trip of {input:?}");
    }
    let clients = [
        ("tcp:example.com:80", "tcp:host=example.com:port=80"),
        (
            "tcp:host=example.com:port=80:timeout=30",
            "tcp:host=example.com:port=80",
        ),
        (
            r"tcp:\:\:1:80:timeout=0.25",
            r"tcp:host=\:\:1:port=80:timeout=0.25",
        ),
        (
            "tcp:h:1:bindAddress=10.0.0.2",
            "tcp:host=h:port=1:bindAddress=10.0.0.2",
        ),
        (
            "unix:path=/path/sock:timeout=5",
            "unix:path=/path/sock:timeout=5",
        ),
        ("unix:/s:checkPID=1", "unix:path=/s:checkPID=1"),
        (
            "tls:example.com:443:trustRoots=roots.pem",
            "tls:host=example.com:port=443:trustRoots=roots.pem",
        ),
    ];
    for (input, shown) in clients {
        let d = client(input);
        assert_eq!(d.to_string(), shown, "display of {input:?}");
        assert_eq!(client(&d.to_string()), d, "round trip of {input:?}");
    }
}
