//! Signal names for [`ProcessTransport::signal_process`](super::ProcessTransport::signal_process).

use std::io;

use rustix::process::Signal;

/// The signals known by name, as Twisted's `signalProcess` names them (without `SIG`).
const NAMED: &[(&str, Signal)] = &[
    ("HUP", Signal::HUP),
    ("INT", Signal::INT),
    ("QUIT", Signal::QUIT),
    ("ABRT", Signal::ABORT),
    ("KILL", Signal::KILL),
    ("USR1", Signal::USR1),
    ("USR2", Signal::USR2),
    ("PIPE", Signal::PIPE),
    ("ALRM", Signal::ALARM),
    ("TERM", Signal::TERM),
    ("CONT", Signal::CONT),
    ("STOP", Signal::STOP),
    ("TSTP", Signal::TSTP),
    ("WINCH", Signal::WINCH),
];

/// Reads `"TERM"`, `"SIGTERM"` or `"15"`.
pub(super) fn parse_signal(name: &str) -> io::Result<Signal> {
    let bare = name.strip_prefix("SIG").unwrap_or(name);
    if let Some((_, sig)) = NAMED.iter().find(|(n, _)| n.eq_ignore_ascii_case(bare)) {
        return Ok(*sig);
    }
    bare.parse::<i32>()
        .ok()
        .and_then(Signal::from_named_raw)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown signal {name:?}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::TERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), Signal::KILL);
        assert_eq!(parse_signal("int").unwrap(), Signal::INT);
        assert_eq!(parse_signal("9").unwrap(), Signal::KILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
