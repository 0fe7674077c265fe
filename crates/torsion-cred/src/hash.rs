//! Password hashes: making them ([`hash_password`]) and checking a password against one
//! ([`StoredHash`]).
//!
//! A stored hash is a PHC string of Argon2 (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`, as
//! RustCrypto's `argon2`, Python's `argon2-cffi` and libargon2 write them) or a bcrypt hash
//! (`$2b$12$...`, as `htpasswd -B` and Python's `bcrypt` write them). New hashes are
//! argon2id with the `argon2` crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's minimum for
//! argon2id) and a 16-byte salt from the operating system's random number generator.
//!
//! Verifying is slow on purpose (tens of milliseconds in a release build): the checkers in
//! this crate run it in a worker thread, never on the reactor.
//!
//! ```
//! use torsion_cred::{hash_password, StoredHash};
//!
//! let text = hash_password("correct horse");
//! assert!(text.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
//! let stored = StoredHash::parse(&text).unwrap();
//! assert!(stored.verify(b"correct horse"));
//! assert!(!stored.verify(b"wrong"));
//!
//! // A stand-in of the same cost that no password matches: what an unknown user is
//! // checked against, so that their refusal takes as long as a wrong password's.
//! let dummy = stored.dummy();
//! assert_eq!(dummy.cost(), stored.cost());
//! assert!(!dummy.verify(b"correct horse"));
//! ```
use std::fmt;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::error::HashFormatError;

/// The most memory an Argon2 hash may ask for, in KiB (1 GiB): a file line with more is
/// refused when loaded, since each verification allocates it and several run at once.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;

/// The most passes an Argon2 hash may ask for.
pub const MAX_ARGON2_PASSES: u32 = 64;

/// The most lanes an Argon2 hash may ask for (verified one after another here).
pub const MAX_ARGON2_LANES: u32 = 64;

/// The highest bcrypt cost accepted (2^20 rounds, about a minute per verification).
pub const MAX_BCRYPT_COST: u32 = 20;

/// The family of a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Argon2 (`argon2id`, `argon2i` or `argon2d`), a PHC string.
    Argon2,
    /// bcrypt (`$2a$`, `$2b$`, `$2x$` or `$2y$`).
    Bcrypt,
}

#[derive(Clone)]
enum Parsed {
    Argon2(Box<PasswordHash>),
    Bcrypt,
}

/// A password hash as stored, parsed and checked once when it is loaded, so that verifying
/// can only answer yes or no.
#[derive(Clone)]
pub struct StoredHash {
    text: String,
    parsed: Parsed,
}

impl StoredHash {
    /// Reads a hash: an Argon2 PHC string or a bcrypt hash, with parameters within this
    /// module's limits ([`MAX_ARGON2_MEMORY_KIB`], [`MAX_BCRYPT_COST`]...).
    pub fn parse(text: &str) -> Result<StoredHash, HashFormatError> {
        let text = text.trim();
        if text.starts_with("$argon2") {
            return parse_argon2(text);
        }
        if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            return parse_bcrypt(text);
        }
        Err(HashFormatError::new(
            "not a password hash: expected an Argon2 PHC string ($argon2id$...) or bcrypt ($2b$...)",
        ))
    }

    /// The hash as text, as it was stored.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its family.
    pub fn scheme(&self) -> Scheme {
        match self.parsed {
            Parsed::Argon2(_) => Scheme::Argon2,
            Parsed::Bcrypt => Scheme::Bcrypt,
        }
    }

    /// What verifying against it costs, as text: the algorithm and its parameters without
    /// salt or hash (`argon2id v=19 m=19456,t=2,p=1 out=32`, `bcrypt 12`). Two hashes with
    /// the same cost take the same time to verify.
    pub fn cost(&self) -> String {
        match &self.parsed {
            Parsed::Argon2(h) => format!(
                "{} v={} {} out={}",
                h.algorithm.as_str(),
                h.version.unwrap_or(0x10),
                h.params.as_str(),
                h.hash.as_ref().map_or(0, |o| o.len())
            ),
            Parsed::Bcrypt => format!("bcrypt {}", bcrypt_cost(&self.text).unwrap_or(0)),
        }
    }

    /// Whether `password` is the one this hash was made from. Slow by design: call it off the
    /// reactor thread.
    pub fn verify(&self, password: &[u8]) -> bool {
        match &self.parsed {
            Parsed::Argon2(h) => Argon2::default().verify_password(password, &**h).is_ok(),
            // bcrypt reads at most 72 bytes of a password, as every bcrypt does.
            Parsed::Bcrypt => bcrypt::verify(password, &self.text).unwrap_or(false),
        }
    }

    /// A hash of the same [`cost`](Self::cost) with a fresh random salt that no password
    /// matches (its output is zeros, or another cost's): verifying against it takes as long
    /// as against this one. Checkers verify an unknown user's password against such a hash,
    /// so that "no such user" and "wrong password" take the same time.
    pub fn dummy(&self) -> StoredHash {
        match &self.parsed {
            Parsed::Argon2(h) => {
                let mut d = (**h).clone();
                let len = h
                    .hash
                    .as_ref()
                    .map_or(Params::DEFAULT_OUTPUT_LEN, |o| o.len());
                d.salt = Some(Salt::generate());
                d.hash = Output::new(&vec![0u8; len]).ok();
                StoredHash {
                    text: d.to_string(),
                    parsed: Parsed::Argon2(Box::new(d)),
                }
            }
            Parsed::Bcrypt => {
                let cost = bcrypt_cost(&self.text).unwrap_or(bcrypt::DEFAULT_COST);
                // A real hash at the cheapest cost gives a well-formed salt and output; under
                // this cost's header it matches no password.
                let salt: [u8; 16] = Salt::generate()
                    .as_ref()
                    .get(..16)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or([7; 16]);
                let cheap = bcrypt::hash_with_salt(b"torsion-cred dummy", 4, salt)
                    .map(|p| p.format_for_version(bcrypt::Version::TwoB))
                    .unwrap_or_default();
                let tail = cheap.get(7..).unwrap_or("");
                StoredHash {
                    text: format!("$2b${cost:02}${tail}"),
                    parsed: Parsed::Bcrypt,
                }
            }
        }
    }

    /// The stand-in for a store with no hashes yet: a [`dummy`](Self::dummy) of the cost
    /// [`hash_password`] uses.
    pub fn default_dummy() -> StoredHash {
        let params = Params::default();
        let hash = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(argon2::Version::V0x13.into()),
            params: ParamsString::try_from(&params).unwrap_or_default(),
            salt: Some(Salt::generate()),
            hash: Output::new(&[0u8; Params::DEFAULT_OUTPUT_LEN]).ok(),
        };
        StoredHash {
            text: hash.to_string(),
            parsed: Parsed::Argon2(Box::new(hash)),
        }
    }
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cost only: a hash is a secret worth guarding (offline guessing).
        write!(f, "StoredHash({})", self.cost())
    }
}

fn parse_argon2(text: &str) -> Result<StoredHash, HashFormatError> {
    let bad = |why: &str| HashFormatError::new(format!("Argon2 hash: {why}"));
    let hash = PasswordHash::new(text).map_err(|e| bad(&e.to_string()))?;
    let alg = hash.algorithm.as_str();
    if !["argon2id", "argon2i", "argon2d"].contains(&alg) {
        return Err(bad(&format!("unknown algorithm {alg}")));
    }
    if !matches!(hash.version, None | Some(0x10) | Some(0x13)) {
        return Err(bad("unknown version (expected v=19 or v=16)"));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(bad("no salt or no hash"));
    }
    let params = Params::try_from(&hash).map_err(|e| bad(&e.to_string()))?;
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB {
        return Err(bad(&format!(
            "memory cost m={} KiB is over the limit of {MAX_ARGON2_MEMORY_KIB}",
            params.m_cost()
        )));
    }
    if params.t_cost() > MAX_ARGON2_PASSES {
        return Err(bad(&format!(
            "t={} passes is over the limit of {MAX_ARGON2_PASSES}",
            params.t_cost()
        )));
    }
    if params.p_cost() > MAX_ARGON2_LANES {
        return Err(bad(&format!(
            "p={} lanes is over the limit of {MAX_ARGON2_LANES}",
            params.p_cost()
        )));
    }
    if hash.params.iter().any(|(name, _)| name.as_str() == "keyid") {
        return Err(bad(
            "a keyed hash (keyid) needs a secret this crate does not have",
        ));
    }
    Ok(StoredHash {
        text: text.to_owned(),
        parsed: Parsed::Argon2(Box::new(hash)),
    })
}

fn parse_bcrypt(text: &str) -> Result<StoredHash, HashFormatError> {
    let bad = |why: &str| HashFormatError::new(format!("bcrypt hash: {why}"));
    let parts: bcrypt::HashParts = text
        .parse()
        .map_err(|e: bcrypt::BcryptError| bad(&e.to_string()))?;
    let cost = parts.get_cost();
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(bad(&format!(
            "cost {cost} is outside 4 to {MAX_BCRYPT_COST}"
        )));
    }
    Ok(StoredHash {
        text: text.to_owned(),
        parsed: Parsed::Bcrypt,
    })
}

fn bcrypt_cost(text: &str) -> Option<u32> {
    text.get(4..6)?.parse().ok()
}

/// Hashes `password` for storing: argon2id with the `argon2` crate's default cost and a
/// random 16-byte salt from the operating system, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$...`). What `torsiond mail --hash-password` prints.
///
/// Slow by design, like verifying: off the reactor thread in a server.
///
/// # Panics
/// If the operating system's random number generator fails (`getrandom`), which leaves no
/// safe salt to use.
pub fn hash_password(password: impl AsRef<[u8]>) -> String {
    Argon2::default()
        .hash_password(password.as_ref())
        .expect("hashing with the default Argon2 parameters and an OS-random salt")
        .to_string()
}

/// Checks a password against a stored hash: [`StoredHash::verify`] unless replaced.
///
/// The checkers in this crate call their verifier exactly once per login, whether the user
/// exists (against their hash) or not (against a [dummy](StoredHash::dummy) of the same
/// cost); a test counts the calls through its own verifier, and a program may add a pepper
/// or a metric here.
pub trait Verifier: Send + Sync + 'static {
    /// Whether `password` matches `hash`.
    fn verify(&self, password: &[u8], hash: &StoredHash) -> bool;
}

/// The verifier that calls [`StoredHash::verify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HashVerifier;

impl Verifier for HashVerifier {
    fn verify(&self, password: &[u8], hash: &StoredHash) -> bool {
        hash.verify(password)
    }
}
