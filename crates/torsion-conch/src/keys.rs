//! SSH public keys as cred credentials, and the OpenSSH `authorized_keys` checker (Twisted's
//! `SSHPrivateKey` credentials and `SSHPublicKeyChecker` over `UNIXAuthorizedKeysFiles`).
//!
//! The SSH transport (russh) verifies the client's signature before the server asks cred: a
//! [`SshPublicKey`] is the user name and a key the client has proved it holds. The checker
//! only answers whether that key may log in as that user.
//!
//! ```
//! use torsion_conch::keys::parse_authorized_keys;
//!
//! let text = "# admins\n\
//!     ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHz+8WCTTbnMkYyMS3imwOodA4vkaDyUmGRmqDFvUsSt alice@laptop\n\
//!     no-pty,command=\"uptime\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHz+8WCTTbnMkYyMS3imwOodA4vkaDyUmGRmqDFvUsSt\n\
//!     ssh-ed25519 not-base64\n";
//! let parsed = parse_authorized_keys(text);
//! assert_eq!(parsed.keys.len(), 2);
//! assert_eq!(parsed.keys[0].key.comment().as_bytes(), b"alice@laptop");
//! // A key with options is listed, but never lets anyone in: the options are not enforced.
//! assert_eq!(parsed.keys[1].options.as_deref(), Some("no-pty,command=\"uptime\""));
//! // The same key on a line of its own without options does let in: here only the first
//! // line does, and a file with only the restricted line lets nobody in.
//! assert!(parsed.contains(&parsed.keys[0].key));
//! let restricted = parse_authorized_keys(
//!     "no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHz+8WCTTbnMkYyMS3imwOodA4vkaDyUmGRmqDFvUsSt\n",
//! );
//! assert!(!restricted.contains(&restricted.keys[0].key));
//! assert_eq!(parsed.malformed, vec![4]);
//! ```
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use russh::keys::PublicKey;
use torsion::defer::{fail, succeed, Deferred};
use torsion_cred::error::UnauthorizedLogin;
use torsion_cred::{AvatarId, Credentials, CredentialsChecker};

/// A user name and a public key the client proved it holds (Twisted's `SSHPrivateKey`, after
/// the transport checked the signature).
#[derive(Debug, Clone)]
pub struct SshPublicKey {
    username: String,
    key: PublicKey,
}

impl SshPublicKey {
    /// Credentials for `username` with `key`.
    pub fn new(username: impl Into<String>, key: PublicKey) -> SshPublicKey {
        SshPublicKey {
            username: username.into(),
            key,
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
}

impl Credentials for SshPublicKey {
    const KIND: &'static str = "ssh-public-key";
}

/// One key line of an `authorized_keys` file.
#[derive(Debug, Clone)]
pub struct AuthorizedKey {
    /// The key, with its comment.
    pub key: PublicKey,
    /// The options field before the key (`no-pty,command="..."`), if any.
    pub options: Option<String>,
}

/// What [`parse_authorized_keys`] found: the keys, and the numbers (from 1) of lines that
/// were neither keys, comments nor blank.
#[derive(Debug, Default)]
pub struct AuthorizedKeys {
    /// The keys, in file order.
    pub keys: Vec<AuthorizedKey>,
    /// Line numbers of malformed lines.
    pub malformed: Vec<usize>,
}

impl AuthorizedKeys {
    /// Whether `key` may log in: listed (compared by key data, not comment) on a line
    /// without options. Options restrict a key (a forced command, no terminal) and are not
    /// enforced here, so a restricted key is refused rather than given more than its owner
    /// allowed (docs/design.md, "Differences from Twisted").
    pub fn contains(&self, key: &PublicKey) -> bool {
        // Every key is compared, found or not, so the time does not tell where it was.
        self.keys.iter().fold(false, |found, k| {
            found | (k.options.is_none() & (k.key.key_data() == key.key_data()))
        })
    }
}

/// Skips an `authorized_keys` options field: up to the first space outside double quotes.
fn after_options(line: &str) -> Option<&str> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Some(line[i..].trim_start()),
            _ => {}
        }
    }
    None
}

/// Parses one `authorized_keys` line: `None` for blank lines and comments, `Some(Err(()))`
/// for a malformed one.
pub fn parse_authorized_key_line(line: &str) -> Option<Result<AuthorizedKey, ()>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    if let Ok(key) = PublicKey::from_openssh(line) {
        return Some(Ok(AuthorizedKey { key, options: None }));
    }
    let parsed = after_options(line).and_then(|rest| {
        let key = PublicKey::from_openssh(rest).ok()?;
        let options = line[..line.len() - rest.len()].trim_end().to_owned();
        Some(AuthorizedKey {
            key,
            options: Some(options),
        })
    });
    Some(parsed.ok_or(()))
}

/// Parses an OpenSSH `authorized_keys` file's text. Never fails: bad lines are listed.
pub fn parse_authorized_keys(text: &str) -> AuthorizedKeys {
    let mut parsed = AuthorizedKeys::default();
    for (n, line) in text.lines().enumerate() {
        match parse_authorized_key_line(line) {
            None => {}
            Some(Ok(key)) => parsed.keys.push(key),
            Some(Err(())) => parsed.malformed.push(n + 1),
        }
    }
    parsed
}

/// Where a user's `authorized_keys` file is.
type KeysPath = dyn Fn(&str) -> Option<PathBuf>;

/// Lets a user in with a key listed in their `authorized_keys` file (Twisted's
/// `SSHPublicKeyChecker(UNIXAuthorizedKeysFiles())`).
///
/// The file is read at every login, so edits apply to the next one. An unknown user, a
/// missing file and a key not listed take the same path: the file (empty if absent) is read
/// and every key compared, then the login is refused with [`UnauthorizedLogin`].
#[derive(Clone)]
pub struct AuthorizedKeysChecker {
    path_for: Rc<KeysPath>,
    users: Option<Rc<Vec<String>>>,
}

impl AuthorizedKeysChecker {
    /// One file for the users listed in `users` (every user when `users` is empty): what the
    /// example server uses.
    pub fn file(path: impl AsRef<Path>, users: &[&str]) -> AuthorizedKeysChecker {
        let path = path.as_ref().to_path_buf();
        AuthorizedKeysChecker {
            path_for: Rc::new(move |_| Some(path.clone())),
            users: (!users.is_empty())
                .then(|| Rc::new(users.iter().map(|u| u.to_string()).collect())),
        }
    }

    /// A file per user: `path_for(user)` names it (`None` for users who have none), as
    /// OpenSSH's `~user/.ssh/authorized_keys`.
    pub fn per_user(path_for: impl Fn(&str) -> Option<PathBuf> + 'static) -> AuthorizedKeysChecker {
        AuthorizedKeysChecker {
            path_for: Rc::new(path_for),
            users: None,
        }
    }

    /// The keys `user` may log in with (empty for an unknown user or a missing file).
    pub fn keys_for(&self, user: &str) -> AuthorizedKeys {
        let known = self
            .users
            .as_ref()
            .is_none_or(|users| users.iter().any(|u| u == user));
        let text = (self.path_for)(user)
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default();
        let mut keys = parse_authorized_keys(&text);
        if !known {
            keys.keys.clear();
        }
        keys
    }
}

impl CredentialsChecker<SshPublicKey> for AuthorizedKeysChecker {
    fn request_avatar_id(&self, credentials: SshPublicKey) -> Deferred<AvatarId> {
        if self
            .keys_for(credentials.username())
            .contains(credentials.key())
        {
            succeed(AvatarId::User(credentials.username))
        } else {
            fail(UnauthorizedLogin)
        }
    }
}
