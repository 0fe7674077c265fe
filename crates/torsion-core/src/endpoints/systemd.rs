//! `systemd:` server endpoints: adopting a listening socket passed by systemd socket
//! activation (`sd_listen_fds`).

use std::fmt;
use std::io;

use crate::error::CannotListenError;
use crate::protocol::Factory;
use crate::tcp::ListeningPort;
use crate::{Failure, Reactor};

/// The first file descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: usize = 3;

/// The address family of a socket passed by systemd (Twisted's `domain=` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemdDomain {
    /// `INET`: an IPv4 socket.
    Inet,
    /// `INET6`: an IPv6 socket.
    Inet6,
    /// `UNIX`: a Unix socket.
    Unix,
}

impl fmt::Display for SystemdDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SystemdDomain::Inet => "INET",
            SystemdDomain::Inet6 => "INET6",
            SystemdDomain::Unix => "UNIX",
        })
    }
}

/// What systemd passed to this process, read from the environment once (`listenfd` then
/// removes `LISTEN_PID` and `LISTEN_FDS`, as `sd_listen_fds` does, so that child processes
/// do not take them for theirs). Each descriptor is taken out once: it gets one owner,
/// however many endpoints ask for it.
struct Inherited {
    /// Whether `LISTEN_PID` named this process.
    ours: bool,
    /// `LISTEN_FDS`.
    count: usize,
    /// `LISTEN_FDNAMES`, split at colons.
    names: Vec<String>,
    fds: listenfd::ListenFd,
}

impl Inherited {
    fn from_env() -> Inherited {
        let ours = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            == Some(std::process::id());
        let count = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let names = std::env::var("LISTEN_FDNAMES")
            .map(|n| n.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        // Only descriptors meant for this process are adopted.
        let fds = if ours {
            listenfd::ListenFd::from_env()
        } else {
            listenfd::ListenFd::empty()
        };
        Inherited {
            ours,
            count,
            names,
            fds,
        }
    }
}

static INHERITED: std::sync::Mutex<Option<Inherited>> = std::sync::Mutex::new(None);

/// Why a systemd endpoint cannot listen.
fn systemd_error(index: usize, why: impl Into<String>) -> Failure {
    Failure::new(CannotListenError::new(
        format!("systemd socket {index} (fd {})", LISTEN_FDS_START + index),
        io::Error::new(io::ErrorKind::NotFound, why.into()),
    ))
}

/// Systemd socket activation (`sd_listen_fds`): takes descriptor `3 + index` that systemd
/// (or `systemd-socket-activate`, or any launcher speaking the protocol) passed, checked
/// with `LISTEN_PID` and `LISTEN_FDS`. The descriptor is adopted through the `listenfd`
/// crate, which checks that it is a socket of the right kind.
pub(super) fn listen_systemd<F: Factory>(
    reactor: &Reactor,
    domain: SystemdDomain,
    index: usize,
    factory: F,
) -> Result<ListeningPort, Failure> {
    let mut guard = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    let inherited = guard.get_or_insert_with(Inherited::from_env);
    if !inherited.ours {
        return Err(systemd_error(
            index,
            "no sockets were passed to this process (LISTEN_PID is not our pid)",
        ));
    }
    if inherited.count <= index {
        return Err(systemd_error(
            index,
            format!(
                "systemd passed {} socket(s), so there is no index {index}",
                inherited.count
            ),
        ));
    }
    let what = match inherited.names.get(index).filter(|n| !n.is_empty()) {
        Some(n) => format!("socket {index} ('{n}')"),
        None => format!("socket {index}"),
    };
    let fds = &mut inherited.fds;
    match domain {
        SystemdDomain::Inet | SystemdDomain::Inet6 => match fds.take_tcp_listener(index) {
            Ok(Some(l)) => {
                drop(guard);
                reactor.listen_tcp_adopt(l, factory)
            }
            Ok(None) => Err(systemd_error(index, format!("{what} was already taken"))),
            Err(e) => Err(systemd_error(
                index,
                format!("{what} is not a listening TCP socket: {e}"),
            )),
        },
        SystemdDomain::Unix => match fds.take_unix_listener(index) {
            Ok(Some(l)) => {
                drop(guard);
                reactor.listen_unix_adopt(l, factory)
            }
            Ok(None) => Err(systemd_error(index, format!("{what} was already taken"))),
            Err(e) => Err(systemd_error(
                index,
                format!("{what} is not a listening Unix socket: {e}"),
            )),
        },
    }
}
