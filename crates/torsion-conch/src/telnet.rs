//! Telnet (RFC 854), as Twisted's `twisted.conch.telnet`: an I/O-free parser and option
//! negotiator ([`Telnet`]), and [`TelnetTransport`], which wraps an application
//! [`Protocol`] so that it sees plain bytes while negotiation happens underneath.
//!
//! Options are negotiated with RFC 1143's "Q method", so two ends can never loop on
//! negotiation: a request is sent only when it changes the option's state, and an answer
//! that merely confirms a state is not answered again. Supported: ECHO and SGA (this end
//! will do them when asked), NAWS (the client's window size, which this end asks for);
//! LINEMODE and every unknown option are refused. Subnegotiations are bounded
//! ([`MAX_SUBNEGOTIATION`]); a longer one is dropped whole.
//!
//! ```
//! use torsion_conch::telnet::{Event, Telnet, DO, IAC, NAWS, SB, SE, WILL};
//!
//! let mut t = Telnet::new();
//! // A server asks for the window size at the start:
//! assert_eq!(t.request_do(NAWS), vec![IAC, DO, NAWS]);
//! let mut out = Vec::new();
//! let events = t.feed(&[b'h', IAC, IAC, IAC, WILL, NAWS,
//!                       IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE], &mut out);
//! assert_eq!(events, vec![Event::Data(vec![b'h', IAC]),
//!                         Event::OptionChanged { option: NAWS, local: false, enabled: true },
//!                         Event::WindowSize { cols: 80, rows: 24 }]);
//! assert!(out.is_empty()); // the WILL answered our DO: nothing more to say
//! assert!(t.his_enabled(NAWS));
//! ```

use std::rc::Rc;

use torsion::transport::{Address, TransportImpl};
use torsion::{ConnectionEnd, Protocol, Transport};

/// Interpret As Command: starts every telnet command.
pub const IAC: u8 = 255;
/// Refuse, or ask the peer to stop, an option on the peer's side.
pub const DONT: u8 = 254;
/// Ask the peer to perform an option, or accept its offer.
pub const DO: u8 = 253;
/// Refuse, or stop, an option on this side.
pub const WONT: u8 = 252;
/// Offer, or agree, to perform an option on this side.
pub const WILL: u8 = 251;
/// Subnegotiation begins.
pub const SB: u8 = 250;
/// Go ahead.
pub const GA: u8 = 249;
/// Erase line.
pub const EL: u8 = 248;
/// Erase character.
pub const EC: u8 = 247;
/// Are you there.
pub const AYT: u8 = 246;
/// Abort output.
pub const AO: u8 = 245;
/// Interrupt process.
pub const IP: u8 = 244;
/// Break.
pub const BRK: u8 = 243;
/// Data mark.
pub const DM: u8 = 242;
/// No operation.
pub const NOP: u8 = 241;
/// Subnegotiation ends.
pub const SE: u8 = 240;

/// Option: echo (RFC 857).
pub const ECHO: u8 = 1;
/// Option: suppress go-ahead (RFC 858).
pub const SGA: u8 = 3;
/// Option: negotiate about window size (RFC 1073).
pub const NAWS: u8 = 31;
/// Option: linemode (RFC 1184), always refused here.
pub const LINEMODE: u8 = 34;

/// The longest subnegotiation kept, in bytes; a longer one is discarded whole, so a peer
/// cannot make this end buffer without bound.
pub const MAX_SUBNEGOTIATION: usize = 1024;

/// One side's state of one option (RFC 1143's Q method).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Q {
    #[default]
    No,
    Yes,
    WantNo,
    WantYes,
}

#[derive(Clone, Copy, Debug, Default)]
struct OptionState {
    us: Q,
    him: Q,
}

/// What the parser found in the bytes it was fed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Application bytes, with IAC escapes undone.
    Data(Vec<u8>),
    /// The peer reported its window size (NAWS).
    WindowSize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// A command with no option: NOP, GA, AYT, IP, BRK, EC, EL, AO, DM.
    Command(u8),
    /// An option was enabled or disabled on one side.
    OptionChanged {
        /// The option.
        option: u8,
        /// True for this end's side (WILL/WONT we sent), false for the peer's.
        local: bool,
        /// Its new state.
        enabled: bool,
    },
    /// A subnegotiation of another option that was accepted (none here but NAWS), or one
    /// that was too long (`data` empty, `truncated` true).
    Subnegotiation {
        /// The option.
        option: u8,
        /// Its bytes, IAC escapes undone.
        data: Vec<u8>,
        /// True when it exceeded [`MAX_SUBNEGOTIATION`] and was dropped.
        truncated: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParseState {
    Data,
    Escaped,
    Command(u8),
    Sub,
    SubEscaped,
}

/// The I/O-free telnet parser and option negotiator: feed it received bytes, get
/// [`Event`]s and the bytes to answer with.
#[derive(Debug)]
pub struct Telnet {
    state: ParseState,
    options: [OptionState; 256],
    sub: Vec<u8>,
    sub_overflow: bool,
    /// Options this end will enable when the peer asks (`DO`).
    local_ok: [bool; 256],
    /// Options this end lets the peer enable (`WILL`).
    remote_ok: [bool; 256],
}

impl Default for Telnet {
    fn default() -> Self {
        Telnet::new()
    }
}

impl Telnet {
    /// A negotiator that will do ECHO and SGA when asked and accepts the peer's NAWS and
    /// SGA; LINEMODE and everything else is refused.
    pub fn new() -> Telnet {
        let mut local_ok = [false; 256];
        let mut remote_ok = [false; 256];
        local_ok[ECHO as usize] = true;
        local_ok[SGA as usize] = true;
        remote_ok[NAWS as usize] = true;
        remote_ok[SGA as usize] = true;
        Telnet {
            state: ParseState::Data,
            options: [OptionState::default(); 256],
            sub: Vec::new(),
            sub_overflow: false,
            local_ok,
            remote_ok,
        }
    }

    /// True when `option` is enabled on this side.
    pub fn us_enabled(&self, option: u8) -> bool {
        self.options[option as usize].us == Q::Yes
    }

    /// True when `option` is enabled on the peer's side.
    pub fn his_enabled(&self, option: u8) -> bool {
        self.options[option as usize].him == Q::Yes
    }

    /// Asks the peer to enable `option` on its side; returns the bytes to send (none when it
    /// is enabled or being asked already).
    pub fn request_do(&mut self, option: u8) -> Vec<u8> {
        let s = &mut self.options[option as usize];
        match s.him {
            Q::No => {
                s.him = Q::WantYes;
                self.remote_ok[option as usize] = true;
                vec![IAC, DO, option]
            }
            _ => Vec::new(),
        }
    }

    /// Offers to enable `option` on this side; returns the bytes to send.
    pub fn request_will(&mut self, option: u8) -> Vec<u8> {
        let s = &mut self.options[option as usize];
        match s.us {
            Q::No => {
                s.us = Q::WantYes;
                self.local_ok[option as usize] = true;
                vec![IAC, WILL, option]
            }
            _ => Vec::new(),
        }
    }

    /// Disables `option` on this side; returns the bytes to send.
    pub fn request_wont(&mut self, option: u8) -> Vec<u8> {
        let s = &mut self.options[option as usize];
        match s.us {
            Q::Yes | Q::WantYes => {
                s.us = Q::WantNo;
                vec![IAC, WONT, option]
            }
            _ => Vec::new(),
        }
    }

    /// Parses `data`; bytes to send back (answers to negotiation) are appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Vec<Event> {
        let mut events = Vec::new();
        let mut plain = Vec::new();
        for &b in data {
            match self.state {
                ParseState::Data => {
                    if b == IAC {
                        self.state = ParseState::Escaped;
                    } else {
                        plain.push(b);
                    }
                }
                ParseState::Escaped => {
                    self.state = ParseState::Data;
                    match b {
                        IAC => plain.push(IAC),
                        WILL | WONT | DO | DONT => self.state = ParseState::Command(b),
                        SB => {
                            self.state = ParseState::Sub;
                            self.sub.clear();
                            self.sub_overflow = false;
                        }
                        _ => {
                            flush(&mut plain, &mut events);
                            events.push(Event::Command(b));
                        }
                    }
                }
                ParseState::Command(cmd) => {
                    self.state = ParseState::Data;
                    flush(&mut plain, &mut events);
                    self.negotiate(cmd, b, out, &mut events);
                }
                ParseState::Sub => {
                    if b == IAC {
                        self.state = ParseState::SubEscaped;
                    } else {
                        self.sub_push(b);
                    }
                }
                ParseState::SubEscaped => match b {
                    SE => {
                        self.state = ParseState::Data;
                        flush(&mut plain, &mut events);
                        self.subnegotiation(&mut events);
                    }
                    IAC => {
                        self.state = ParseState::Sub;
                        self.sub_push(IAC);
                    }
                    _ => {
                        // A stray command inside a subnegotiation: keep going, as most
                        // implementations do, without the command.
                        self.state = ParseState::Sub;
                    }
                },
            }
        }
        flush(&mut plain, &mut events);
        events
    }

    fn sub_push(&mut self, b: u8) {
        if self.sub.len() < MAX_SUBNEGOTIATION {
            self.sub.push(b);
        } else {
            self.sub_overflow = true;
        }
    }

    fn subnegotiation(&mut self, events: &mut Vec<Event>) {
        let sub = std::mem::take(&mut self.sub);
        let Some((&option, data)) = sub.split_first() else {
            return;
        };
        if self.sub_overflow {
            events.push(Event::Subnegotiation {
                option,
                data: Vec::new(),
                truncated: true,
            });
            return;
        }
        if option == NAWS && self.his_enabled(NAWS) {
            if let [c1, c0, r1, r0] = *data {
                events.push(Event::WindowSize {
                    cols: u16::from_be_bytes([c1, c0]),
                    rows: u16::from_be_bytes([r1, r0]),
                });
            }
        }
        // Subnegotiation of any other option, or of one not enabled, is ignored (RFC 855).
    }

    fn negotiate(&mut self, cmd: u8, option: u8, out: &mut Vec<u8>, events: &mut Vec<Event>) {
        let i = option as usize;
        let changed = |local, enabled| Event::OptionChanged {
            option,
            local,
            enabled,
        };
        match cmd {
            WILL => {
                let s = &mut self.options[i].him;
                match *s {
                    Q::No => {
                        if self.remote_ok[i] {
                            *s = Q::Yes;
                            out.extend_from_slice(&[IAC, DO, option]);
                            events.push(changed(false, true));
                        } else {
                            out.extend_from_slice(&[IAC, DONT, option]);
                        }
                    }
                    Q::Yes => {}
                    Q::WantNo => {
                        // RFC 1143: DONT answered by WILL is an error; settle on No.
                        *s = Q::No;
                    }
                    Q::WantYes => {
                        *s = Q::Yes;
                        events.push(changed(false, true));
                    }
                }
            }
            WONT => {
                let s = &mut self.options[i].him;
                match *s {
                    Q::No => {}
                    Q::Yes => {
                        *s = Q::No;
                        out.extend_from_slice(&[IAC, DONT, option]);
                        events.push(changed(false, false));
                    }
                    Q::WantNo => {
                        *s = Q::No;
                        events.push(changed(false, false));
                    }
                    Q::WantYes => *s = Q::No,
                }
            }
            DO => {
                let s = &mut self.options[i].us;
                match *s {
                    Q::No => {
                        if self.local_ok[i] {
                            *s = Q::Yes;
                            out.extend_from_slice(&[IAC, WILL, option]);
                            events.push(changed(true, true));
                        } else {
                            out.extend_from_slice(&[IAC, WONT, option]);
                        }
                    }
                    Q::Yes => {}
                    Q::WantNo => *s = Q::No,
                    Q::WantYes => {
                        *s = Q::Yes;
                        events.push(changed(true, true));
                    }
                }
            }
            DONT => {
                let s = &mut self.options[i].us;
                match *s {
                    Q::No => {}
                    Q::Yes => {
                        *s = Q::No;
                        out.extend_from_slice(&[IAC, WONT, option]);
                        events.push(changed(true, false));
                    }
                    Q::WantNo => {
                        *s = Q::No;
                        events.push(changed(true, false));
                    }
                    Q::WantYes => *s = Q::No,
                }
            }
            _ => {}
        }
    }
}

fn flush(plain: &mut Vec<u8>, events: &mut Vec<Event>) {
    if !plain.is_empty() {
        events.push(Event::Data(std::mem::take(plain)));
    }
}

/// Doubles every IAC in `data`, so application bytes go through telnet intact.
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

/// What a telnet application protocol hears beyond bytes; implement it on the protocol
/// wrapped by [`TelnetTransport`] (all methods have empty defaults).
pub trait TerminalEvents {
    /// The terminal's size changed (telnet NAWS; an SSH window-change).
    fn terminal_size(&mut self, transport: &Transport, cols: u16, rows: u16) {
        let _ = (transport, cols, rows);
    }

    /// The peer sent Interrupt Process (IAC IP), as a Ctrl-C.
    fn interrupt(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// This end now echoes (the client agreed to `WILL ECHO`: it sends characters as typed
    /// and shows only what this end writes back), or no longer does.
    fn server_echo(&mut self, transport: &Transport, enabled: bool) {
        let _ = (transport, enabled);
    }
}

/// The transport a protocol under [`TelnetTransport`] writes to: it escapes IAC bytes and
/// passes everything else to the connection.
struct Escaping {
    real: Transport,
}

impl TransportImpl for Escaping {
    fn write(&self, data: &[u8]) {
        if data.contains(&IAC) {
            self.real.write(&escape(data));
        } else {
            self.real.write(data);
        }
    }
    fn lose_connection(&self) {
        self.real.lose_connection();
    }
    fn abort_connection(&self) {
        self.real.abort_connection();
    }
    fn get_peer(&self) -> Address {
        self.real.get_peer()
    }
    fn get_host(&self) -> Address {
        self.real.get_host()
    }
    fn wrapped(&self) -> Option<&Transport> {
        Some(&self.real)
    }
}

/// Runs telnet over a connection and gives the application protocol plain bytes (Twisted's
/// `TelnetTransport` with a `TelnetProtocol`). At the start it asks for the peer's window
/// size (NAWS), and, when `server_echo` is set, offers to echo and suppress go-ahead so that
/// the client sends characters one at a time and leaves echoing to the application (what a
/// line editor needs); otherwise the client keeps its own line mode.
pub struct TelnetTransport<P> {
    app: P,
    telnet: Telnet,
    server_echo: bool,
    inner: Option<Transport>,
}

impl<P: Protocol + TerminalEvents> TelnetTransport<P> {
    /// Wraps `app`; `server_echo` asks the client for character-at-a-time input.
    pub fn new(app: P, server_echo: bool) -> TelnetTransport<P> {
        TelnetTransport {
            app,
            telnet: Telnet::new(),
            server_echo,
            inner: None,
        }
    }

    /// The wrapped application protocol.
    pub fn app(&self) -> &P {
        &self.app
    }

    /// The negotiator, to look at option states.
    pub fn telnet(&self) -> &Telnet {
        &self.telnet
    }
}

impl<P: Protocol + TerminalEvents> Protocol for TelnetTransport<P> {
    fn connection_made(&mut self, transport: &Transport) {
        let mut out = self.telnet.request_do(NAWS);
        if self.server_echo {
            out.extend(self.telnet.request_will(ECHO));
            out.extend(self.telnet.request_will(SGA));
            out.extend(self.telnet.request_do(SGA));
        }
        transport.write(&out);
        let inner = Transport::new(Rc::new(Escaping {
            real: transport.clone(),
        }));
        self.inner = Some(inner.clone());
        self.app.connection_made(&inner);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        let mut out = Vec::new();
        let events = self.telnet.feed(data, &mut out);
        if !out.is_empty() {
            transport.write(&out);
        }
        let Some(inner) = self.inner.clone() else {
            return;
        };
        for e in events {
            if inner.disconnecting() {
                break;
            }
            match e {
                Event::Data(d) => self.app.data_received(&inner, &d),
                Event::WindowSize { cols, rows } => self.app.terminal_size(&inner, cols, rows),
                Event::Command(IP) => self.app.interrupt(&inner),
                Event::Command(AYT) => transport.write(b"\r\n[yes]\r\n"),
                Event::OptionChanged {
                    option: ECHO,
                    local: true,
                    enabled,
                } => self.app.server_echo(&inner, enabled),
                _ => {}
            }
        }
    }

    fn read_connection_lost(&mut self, _transport: &Transport) {
        if let Some(inner) = self.inner.clone() {
            self.app.read_connection_lost(&inner);
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.app.connection_lost(reason);
    }

    fn drain(&mut self, _transport: &Transport) {
        if let Some(inner) = self.inner.clone() {
            self.app.drain(&inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linemode_and_unknown_options_are_refused() {
        let mut t = Telnet::new();
        let mut out = Vec::new();
        t.feed(
            &[IAC, WILL, LINEMODE, IAC, DO, LINEMODE, IAC, DO, 99],
            &mut out,
        );
        assert_eq!(
            out,
            vec![IAC, DONT, LINEMODE, IAC, WONT, LINEMODE, IAC, WONT, 99]
        );
        // Repeating the refused offers gets the same answer, never a loop of our own.
        out.clear();
        t.feed(&[IAC, WONT, LINEMODE, IAC, DONT, 99], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn requested_option_confirmed_is_not_answered_again() {
        let mut t = Telnet::new();
        assert_eq!(t.request_will(ECHO), vec![IAC, WILL, ECHO]);
        assert!(t.request_will(ECHO).is_empty());
        let mut out = Vec::new();
        let ev = t.feed(&[IAC, DO, ECHO, IAC, DO, ECHO], &mut out);
        assert!(out.is_empty());
        assert!(t.us_enabled(ECHO));
        assert_eq!(
            ev,
            vec![Event::OptionChanged {
                option: ECHO,
                local: true,
                enabled: true
            }]
        );
        // Peer turns it off: we acknowledge once.
        let ev = t.feed(&[IAC, DONT, ECHO], &mut out);
        assert_eq!(out, vec![IAC, WONT, ECHO]);
        assert_eq!(ev.len(), 1);
        assert!(!t.us_enabled(ECHO));
    }

    #[test]
    fn oversized_subnegotiation_is_dropped() {
        let mut t = Telnet::new();
        let mut out = Vec::new();
        t.feed(&[IAC, WILL, NAWS], &mut out);
        let mut data = vec![IAC, SB, NAWS];
        data.extend(std::iter::repeat_n(7u8, MAX_SUBNEGOTIATION * 4));
        data.extend([IAC, SE, b'x']);
        let ev = t.feed(&data, &mut out);
        assert_eq!(
            ev,
            vec![
                Event::Subnegotiation {
                    option: NAWS,
                    data: vec![],
                    truncated: true
                },
                Event::Data(b"x".to_vec())
            ]
        );
        assert!(t.sub.capacity() <= MAX_SUBNEGOTIATION * 2);
    }

    #[test]
    fn naws_with_escaped_255() {
        let mut t = Telnet::new();
        let mut out = Vec::new();
        t.feed(&[IAC, WILL, NAWS], &mut out);
        let ev = t.feed(&[IAC, SB, NAWS, 0, IAC, IAC, 1, 0, IAC, SE], &mut out);
        assert_eq!(
            ev,
            vec![Event::WindowSize {
                cols: 255,
                rows: 256
            }]
        );
    }
}
