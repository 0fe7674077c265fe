//! The integration tests of torsion-words, in one binary (linking one test binary per file
//! dominated CI time): each file is a module named after the behaviour it pins down.

/// What the tests share: a throwaway ngIRCd (also used by the root package's `irc_bot`
/// example test).
mod support {
    pub(crate) mod ngircd;
}

mod irc_client;
mod irc_ngircd;
mod irc_server;
mod irc_server_core;
