//! [`IrcConfig`]: who the client is and how it behaves.

/// Who the client is and how it behaves (Twisted's `IRCClient` attributes). Its `Debug`
/// output leaves the password out.
#[derive(Clone)]
pub struct IrcConfig {
    /// The nickname to register with.
    pub nickname: String,
    /// The user name (`USER`); the nickname when `None`.
    pub username: Option<String>,
    /// The real name (`USER`'s last field); the nickname when `None`.
    pub realname: Option<String>,
    /// The server password (`PASS`), if the server wants one.
    pub password: Option<String>,
    /// Seconds between two lines sent (flood control, Twisted's `lineRate`); `None` sends at
    /// once. PONGs are never held back.
    pub line_rate: Option<f64>,
    /// The answer to a CTCP VERSION query; `None` leaves such queries unanswered.
    pub version_name: Option<String>,
    /// The nickname to try when the server calls ours erroneous during registration
    /// (Twisted's `erroneousNickFallback`). A refused nickname longer than nine characters
    /// (RFC 1459's limit, and ngIRCd's default) is first tried cut to nine; then this one,
    /// then this one cut to nine; then registration gives up.
    pub erroneous_nick_fallback: String,
    /// The message sent with QUIT when the connection is asked to drain (a graceful stop).
    pub quit_message: String,
    /// Seconds between two PINGs the client sends once signed on (Twisted's
    /// `heartbeatInterval`, 120 by default); when nothing at all has come from the server
    /// for two of them, the connection is taken for dead and closed, so a reconnecting
    /// factory can start again. `None` sends no PINGs.
    pub heartbeat_interval: Option<f64>,
}

impl std::fmt::Debug for IrcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrcConfig")
            .field("nickname", &self.nickname)
            .field("username", &self.username)
            .field("realname", &self.realname)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("line_rate", &self.line_rate)
            .field("version_name", &self.version_name)
            .field("erroneous_nick_fallback", &self.erroneous_nick_fallback)
            .field("quit_message", &self.quit_message)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish()
    }
}

impl IrcConfig {
    /// A configuration with `nickname` and Twisted's defaults for the rest.
    pub fn new(nickname: impl Into<String>) -> IrcConfig {
        IrcConfig {
            nickname: nickname.into(),
            username: None,
            realname: None,
            password: None,
            line_rate: None,
            version_name: None,
            erroneous_nick_fallback: "defaultnick".to_owned(),
            quit_message: "shutting down".to_owned(),
            heartbeat_interval: Some(120.0),
        }
    }
}
