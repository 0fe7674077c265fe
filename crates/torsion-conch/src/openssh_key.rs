//! Reading OpenSSH private key files, including ECDSA keys whose secret is "short".
//!
//! OpenSSH writes an ECDSA private scalar as an `mpint`, which drops leading zero bytes, so
//! about one P-256 key in 256 that `ssh-keygen` makes has a 31-byte secret. ssh-key (0.7, the
//! key parser under russh) refuses any ECDSA secret shorter than 32 bytes ("length invalid"),
//! so such a key, which OpenSSH itself uses without complaint, would not load. When russh
//! refuses a key, [`decode`] reads the `openssh-key-v1` container itself (decrypting it with
//! ssh-key's own KDF and cipher), pads the secret to its curve's size, checks it against the
//! container's public key, and builds the key from the parts. Every other key, and every
//! refusal the repair does not explain (a wrong passphrase, a damaged file), keeps russh's
//! result and its error.

use std::path::Path;

use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};
use russh::keys::ssh_key::encoding::Decode;
use russh::keys::ssh_key::private::{EcdsaKeypair, EcdsaPrivateKey, KeypairData};
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::sec1::EncodedPoint;
use russh::keys::ssh_key::{Cipher, Kdf};
use russh::keys::{Error, PrivateKey};
use zeroize::Zeroizing;

/// Reads the OpenSSH private key file at `path`, decrypting it with `passphrase` if it is
/// protected.
pub(crate) fn load(path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, Error> {
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    decode(&text, passphrase)
}

/// Parses an OpenSSH private key's text (or any format russh reads), decrypting it with
/// `passphrase` if it is protected.
pub(crate) fn decode(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, Error> {
    russh::keys::decode_secret_key(text, passphrase)
        .or_else(|refused| short_ecdsa(text, passphrase).ok_or(refused))
}

/// The key in `text` if it is an `openssh-key-v1` ECDSA key; `None` for anything else, and for
/// a key that cannot be decrypted or does not hold together.
fn short_ecdsa(text: &str, passphrase: Option<&str>) -> Option<PrivateKey> {
    let body = text
        .trim()
        .strip_prefix("-----BEGIN OPENSSH PRIVATE KEY-----")?
        .strip_suffix("-----END OPENSSH PRIVATE KEY-----")?;
    let base64 = Zeroizing::new(body.split_ascii_whitespace().collect::<String>());
    let bytes = Zeroizing::new(Base64::decode_vec(&base64).ok()?);
    let mut r = bytes.strip_prefix(b"openssh-key-v1\0")?;
    let cipher: Cipher = String::decode(&mut r).ok()?.parse().ok()?;
    let kdf = Kdf::decode(&mut r).ok()?;
    if u32::decode(&mut r).ok()? != 1 {
        return None;
    }
    let public = KeyData::decode(&mut &*Vec::<u8>::decode(&mut r).ok()?).ok()?;
    let mut private = Zeroizing::new(Vec::<u8>::decode(&mut r).ok()?);
    if cipher.is_some() {
        let tag = if cipher.has_tag() {
            Some(r.try_into().ok()?)
        } else {
            None
        };
        let (key, iv) = kdf.derive_key_and_iv(cipher, passphrase?).ok()?;
        cipher.decrypt(&key, &iv, &mut private, tag).ok()?;
    }
    let mut r = &private[..];
    if u32::decode(&mut r).ok()? != u32::decode(&mut r).ok()? {
        return None; // the check words differ: a wrong passphrase
    }
    let algorithm = String::decode(&mut r).ok()?;
    let _curve = String::decode(&mut r).ok()?;
    let point = Vec::<u8>::decode(&mut r).ok()?;
    let secret = Zeroizing::new(Vec::<u8>::decode(&mut r).ok()?);
    let comment = String::decode(&mut r).ok()?;
    let keypair = match algorithm.as_str() {
        "ecdsa-sha2-nistp256" => EcdsaKeypair::NistP256 {
            public: EncodedPoint::from_bytes(&point).ok()?,
            private: EcdsaPrivateKey::from(padded::<32>(&secret)?),
        },
        "ecdsa-sha2-nistp384" => EcdsaKeypair::NistP384 {
            public: EncodedPoint::from_bytes(&point).ok()?,
            private: EcdsaPrivateKey::from(padded::<48>(&secret)?),
        },
        "ecdsa-sha2-nistp521" => EcdsaKeypair::NistP521 {
            public: EncodedPoint::from_bytes(&point).ok()?,
            private: EcdsaPrivateKey::from(padded::<66>(&secret)?),
        },
        _ => return None,
    };
    let key = PrivateKey::new(KeypairData::Ecdsa(keypair), comment).ok()?;
    (key.public_key().key_data() == &public).then_some(key)
}

/// An `mpint`'s magnitude as exactly `N` big-endian bytes: leading zeros stripped (a positive
/// `mpint` may carry one), then zeros put back in front up to the curve's size.
fn padded<const N: usize>(mpint: &[u8]) -> Option<[u8; N]> {
    let start = mpint.iter().position(|&b| b != 0).unwrap_or(mpint.len());
    let digits = &mpint[start..];
    let mut out = [0; N];
    out.get_mut(N.checked_sub(digits.len())?..)?
        .copy_from_slice(digits);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::PublicKey;

    const PLAIN: &str = include_str!("../tests/keys/p256_short_scalar");
    const CTR: &str = include_str!("../tests/keys/p256_short_scalar_aes256_ctr");
    const GCM: &str = include_str!("../tests/keys/p256_short_scalar_aes256_gcm");
    const PUBLIC: &str = include_str!("../tests/keys/p256_short_scalar.pub");

    #[test]
    fn russh_alone_refuses_a_short_secret() {
        // The reason for this module: if ssh-key learns to read these keys, this fails and
        // the repair can go.
        let e = russh::keys::decode_secret_key(PLAIN, None).unwrap_err();
        assert!(e.to_string().contains("length invalid"), "{e}");
    }

    #[test]
    fn a_short_secret_loads_plain_and_under_both_ciphers() {
        let public = PublicKey::from_openssh(PUBLIC.trim()).unwrap();
        for (text, pass) in [
            (PLAIN, None),
            (CTR, Some("correct horse")),
            (GCM, Some("correct horse")),
        ] {
            let key = decode(text, pass).unwrap();
            assert_eq!(key.public_key().key_data(), public.key_data());
            assert_eq!(key.comment().as_bytes(), b"short scalar");
            let KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) = key.key_data() else {
                panic!("not a P-256 key");
            };
            assert_eq!(private.as_slice()[0], 0, "the secret is padded in front");
        }
    }

    #[test]
    fn a_wrong_or_missing_passphrase_keeps_russhs_error() {
        for (text, pass) in [(CTR, Some("wrong")), (GCM, Some("wrong")), (CTR, None)] {
            assert!(decode(text, pass).is_err());
        }
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let lines: Vec<&str> = PLAIN.lines().collect();
        // Every cut that leaves out at least one line of the key's data (the last line is
        // the END marker, put back each time).
        for cut in 1..lines.len() - 1 {
            let mut damaged = lines[..cut].join("\n");
            damaged.push_str("\n-----END OPENSSH PRIVATE KEY-----\n");
            assert!(decode(&damaged, None).is_err(), "cut after line {cut}");
        }
        assert!(decode("not a key", None).is_err());
    }

    #[test]
    fn padding_strips_and_restores_leading_zeros() {
        assert_eq!(padded::<4>(&[0, 0x80, 1]), Some([0, 0, 0x80, 1]));
        assert_eq!(padded::<2>(&[0, 0, 1, 2]), Some([1, 2]));
        assert_eq!(padded::<2>(&[1, 2, 3]), None);
        assert_eq!(padded::<2>(&[]), Some([0, 0]));
    }
}
