//! FTP's commands (RFC 959, 2389, 2428, 3659, 4217), parsed without I/O, and the host-port
//! arguments of PORT, EPRT and the PASV/EPSV replies, parsed and written.
//!
//! ```
//! use torsion_ftp::command::{parse_command, Command};
//!
//! assert_eq!(parse_command(b"RETR a file.txt"), Ok(Command::Retr("a file.txt".into())));
//! assert_eq!(parse_command(b"type i"), Ok(Command::Type('I')));
//! assert!(parse_command(b"XYZZY").is_err());
//! ```
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One command from a client, its argument checked for form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `USER name`.
    User(String),
    /// `PASS password` (may be empty).
    Pass(String),
    /// `ACCT`: not needed here, answered 202.
    Acct,
    /// `PWD` (or `XPWD`).
    Pwd,
    /// `CWD path` (or `XCWD`).
    Cwd(String),
    /// `CDUP` (or `XCUP`).
    Cdup,
    /// `LIST [path]`, options such as `-a` or `-l` dropped.
    List(Option<String>),
    /// `NLST [path]`, options dropped.
    Nlst(Option<String>),
    /// `MLSD [path]`.
    Mlsd(Option<String>),
    /// `MLST [path]`.
    Mlst(Option<String>),
    /// `RETR path`.
    Retr(String),
    /// `STOR path`.
    Stor(String),
    /// `APPE path`.
    Appe(String),
    /// `DELE path`.
    Dele(String),
    /// `RNFR path`.
    Rnfr(String),
    /// `RNTO path`.
    Rnto(String),
    /// `MKD path` (or `XMKD`).
    Mkd(String),
    /// `RMD path` (or `XRMD`).
    Rmd(String),
    /// `SIZE path`.
    Size(String),
    /// `MDTM path`.
    Mdtm(String),
    /// `REST offset`.
    Rest(u64),
    /// `TYPE A` or `TYPE I` (`A N` and `L 8` accepted as `A` and `I`).
    Type(char),
    /// `MODE S` (the only mode served).
    Mode(char),
    /// `STRU F` (the only structure served).
    Stru(char),
    /// `PASV`.
    Pasv,
    /// `EPSV` (`EPSV ALL` too).
    Epsv,
    /// `PORT h1,h2,h3,h4,p1,p2`.
    Port(SocketAddr),
    /// `EPRT |1|addr|port|`.
    Eprt(SocketAddr),
    /// `FEAT`.
    Feat,
    /// `OPTS name [value]`, the name upper-cased.
    Opts(String, String),
    /// `AUTH mechanism` (`TLS`, `TLS-C`, `SSL`), upper-cased.
    Auth(String),
    /// `PBSZ size`.
    Pbsz(u64),
    /// `PROT level` (`C` or `P`; `S` and `E` are refused later).
    Prot(char),
    /// `CCC`: refused.
    Ccc,
    /// `SYST`.
    Syst,
    /// `STAT` without an argument.
    Stat,
    /// `NOOP`.
    Noop,
    /// `HELP`.
    Help,
    /// `ABOR`.
    Abor,
    /// `ALLO`: nothing to reserve; answered 202.
    Allo,
    /// `QUIT`.
    Quit,
}

/// Why a command line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command this server knows (answered 502).
    Unknown(String),
    /// A command known but with an argument of the wrong form, or one missing (501).
    Syntax(&'static str),
    /// A parameter this server does not serve (504): `TYPE E`, `MODE B`, `STRU R`.
    NotImplementedForParameter,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown(c) => write!(f, "command {c:?} not understood"),
            CommandError::Syntax(why) => f.write_str(why),
            CommandError::NotImplementedForParameter => {
                f.write_str("command not implemented for that parameter")
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// Parses one command line, without its CRLF. Arguments are UTF-8 (RFC 2640; invalid bytes
/// become U+FFFD) and keep their spaces, as file names may have them.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches(['\r', '\n']);
    let (verb, arg) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let needs = |what: &'static str| -> Result<String, CommandError> {
        if arg.is_empty() {
            Err(CommandError::Syntax(what))
        } else {
            Ok(arg.to_owned())
        }
    };
    let optional = || (!arg.is_empty()).then(|| arg.to_owned());
    let path = || needs("a path is needed");
    Ok(match verb.as_str() {
        "USER" => Command::User(needs("a user name is needed")?),
        "PASS" => Command::Pass(arg.to_owned()),
        "ACCT" => Command::Acct,
        "PWD" | "XPWD" => Command::Pwd,
        "CWD" | "XCWD" => Command::Cwd(path()?),
        "CDUP" | "XCUP" => Command::Cdup,
        "LIST" => Command::List(drop_options(arg)),
        "NLST" => Command::Nlst(drop_options(arg)),
        "MLSD" => Command::Mlsd(optional()),
        "MLST" => Command::Mlst(optional()),
        "RETR" => Command::Retr(path()?),
        "STOR" => Command::Stor(path()?),
        "APPE" => Command::Appe(path()?),
        "DELE" => Command::Dele(path()?),
        "RNFR" => Command::Rnfr(path()?),
        "RNTO" => Command::Rnto(path()?),
        "MKD" | "XMKD" => Command::Mkd(path()?),
        "RMD" | "XRMD" => Command::Rmd(path()?),
        "SIZE" => Command::Size(path()?),
        "MDTM" => Command::Mdtm(path()?),
        "REST" => Command::Rest(
            arg.trim()
                .parse()
                .map_err(|_| CommandError::Syntax("REST takes a byte offset"))?,
        ),
        "TYPE" => {
            let mut words = arg.split_ascii_whitespace();
            let kind = words.next().unwrap_or("").to_ascii_uppercase();
            let second = words.next().map(str::to_ascii_uppercase);
            match (kind.as_str(), second.as_deref()) {
                ("A", None | Some("N")) => Command::Type('A'),
                ("I", None) | ("L", Some("8")) => Command::Type('I'),
                ("E", _) | ("L", _) | ("A", _) => {
                    return Err(CommandError::NotImplementedForParameter)
                }
                _ => return Err(CommandError::Syntax("TYPE takes A or I")),
            }
        }
        "MODE" => Command::Mode(one_letter(arg)?),
        "STRU" => Command::Stru(one_letter(arg)?),
        "PASV" => Command::Pasv,
        "EPSV" => Command::Epsv,
        "PORT" => Command::Port(
            parse_port(arg).ok_or(CommandError::Syntax("PORT takes h1,h2,h3,h4,p1,p2"))?,
        ),
        "EPRT" => {
            Command::Eprt(parse_eprt(arg).ok_or(CommandError::Syntax("EPRT takes |1|host|port|"))?)
        }
        "FEAT" => Command::Feat,
        "OPTS" => {
            let mut parts = arg.splitn(2, ' ');
            let name = parts.next().unwrap_or("").to_ascii_uppercase();
            if name.is_empty() {
                return Err(CommandError::Syntax("OPTS takes an option name"));
            }
            Command::Opts(name, parts.next().unwrap_or("").to_owned())
        }
        "AUTH" => Command::Auth(needs("AUTH takes a mechanism")?.to_ascii_uppercase()),
        "PBSZ" => Command::Pbsz(
            arg.trim()
                .parse()
                .map_err(|_| CommandError::Syntax("PBSZ takes a number"))?,
        ),
        "PROT" => Command::Prot(one_letter(arg)?),
        "CCC" => Command::Ccc,
        "SYST" => Command::Syst,
        "STAT" if arg.is_empty() => Command::Stat,
        "NOOP" => Command::Noop,
        "HELP" => Command::Help,
        "ABOR" => Command::Abor,
        "ALLO" => Command::Allo,
        "QUIT" => Command::Quit,
        _ => {
            let shown: String = verb.chars().take(16).filter(|c| !c.is_control()).collect();
            return Err(CommandError::Unknown(shown));
        }
    })
}

fn one_letter(arg: &str) -> Result<char, CommandError> {
    let mut chars = arg.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Ok(c.to_ascii_uppercase()),
        _ => Err(CommandError::Syntax("one letter is needed")),
    }
}

/// `LIST -la dir` lists `dir`: options (words starting with `-`) before the path are
/// dropped, as clients send them and `ls` would take them.
fn drop_options(arg: &str) -> Option<String> {
    let mut rest = arg;
    while rest.starts_with('-') {
        rest = match rest.find(' ') {
            Some(i) => rest[i + 1..].trim_start(),
            None => "",
        };
    }
    (!rest.is_empty()).then(|| rest.to_owned())
}

/// Parses PORT's `h1,h2,h3,h4,p1,p2`.
pub fn parse_port(arg: &str) -> Option<SocketAddr> {
    let nums: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|n| n.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    let [a, b, c, d, p1, p2] = nums[..] else {
        return None;
    };
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        u16::from(p1) << 8 | u16::from(p2),
    ))
}

/// Parses EPRT's `|proto|address|port|` (RFC 2428); any printable delimiter.
pub fn parse_eprt(arg: &str) -> Option<SocketAddr> {
    let arg = arg.trim();
    let delim = arg.chars().next()?;
    if !(33..=126).contains(&(delim as u32)) {
        return None;
    }
    let parts: Vec<&str> = arg.split(delim).collect();
    let ["", proto, host, port, ""] = parts[..] else {
        return None;
    };
    let ip: IpAddr = match proto {
        "1" => IpAddr::V4(host.parse::<Ipv4Addr>().ok()?),
        "2" => IpAddr::V6(host.parse::<Ipv6Addr>().ok()?),
        _ => return None,
    };
    let port: u16 = port.parse().ok()?;
    (port != 0).then_some(SocketAddr::new(ip, port))
}

/// PASV's reply text for `addr`: `Entering Passive Mode (h1,h2,h3,h4,p1,p2).` An IPv6
/// address is written as its mapped IPv4 address when it has one, else as `0,0,0,0`
/// (clients then use the control connection's address, as curl and ftplib do).
pub fn format_pasv(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    };
    let [a, b, c, d] = ip.octets();
    let port = addr.port();
    format!(
        "Entering Passive Mode ({a},{b},{c},{d},{},{}).",
        port >> 8,
        port & 0xff
    )
}

/// Parses the host-port out of a 227 reply's text (the client's side of PASV).
pub fn parse_pasv_reply(text: &str) -> Option<SocketAddr> {
    // The numbers are in parentheses by custom, not by rule: after `(` if there is one,
    // else the first run of digits and commas holding five commas.
    let from = text.find('(').map_or(0, |i| i + 1);
    let text = &text[from..];
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == ' ')
        .collect();
    parse_port(digits.trim_end_matches([',', ' ']))
}

/// Parses the port out of a 229 reply's text: `Entering Extended Passive Mode (|||port|)`.
pub fn parse_epsv_reply(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let close = text[open..].find(')')? + open;
    let inner = &text[open + 1..close];
    let delim = inner.chars().next()?;
    let parts: Vec<&str> = inner.split(delim).collect();
    match parts[..] {
        ["", "", "", port, ""] => port.parse().ok().filter(|p| *p != 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_command(b"user bob"), Ok(Command::User("bob".into())));
        assert_eq!(parse_command(b"PASS"), Ok(Command::Pass(String::new())));
        assert_eq!(parse_command(b"LIST -la"), Ok(Command::List(None)));
        assert_eq!(
            parse_command(b"LIST -l sub dir"),
            Ok(Command::List(Some("sub dir".into())))
        );
        assert_eq!(parse_command(b"REST 100"), Ok(Command::Rest(100)));
        assert!(matches!(
            parse_command(b"REST -1"),
            Err(CommandError::Syntax(_))
        ));
        assert_eq!(parse_command(b"TYPE L 8"), Ok(Command::Type('I')));
        assert_eq!(
            parse_command(b"TYPE E"),
            Err(CommandError::NotImplementedForParameter)
        );
        assert!(matches!(
            parse_command(b"RETR"),
            Err(CommandError::Syntax(_))
        ));
    }

    #[test]
    fn host_ports() {
        let a: SocketAddr = "10.1.2.3:1027".parse().unwrap();
        assert_eq!(parse_port("10,1,2,3,4,3"), Some(a));
        assert_eq!(parse_port("10,1,2,3,4"), None);
        assert_eq!(parse_port("10,1,2,3,4,256"), None);
        assert_eq!(parse_eprt("|1|10.1.2.3|1027|"), Some(a));
        assert_eq!(parse_eprt("|2|::1|21|"), Some("[::1]:21".parse().unwrap()));
        assert_eq!(parse_eprt("|1|::1|21|"), None);
        assert_eq!(parse_pasv_reply(&format_pasv(a)), Some(a));
        assert_eq!(
            parse_epsv_reply("Entering Extended Passive Mode (|||6446|)"),
            Some(6446)
        );
    }
}
