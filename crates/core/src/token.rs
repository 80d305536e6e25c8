//! API tokens: what a secret looks like, how it is stored, and how a
//! presented one is checked. Pure: the randomness comes from the caller.
//!
//! A secret reads `hifi_<lookup>_<key>`: `lookup` (8 hex characters) finds
//! the token's row without comparing secrets in SQL, `key` (64 hex
//! characters, 256 random bits) is what makes it secret. Only the SHA-256 of
//! the whole secret is stored; a presented secret is hashed and compared
//! with the stored hash in constant time. A fast hash is right here: the
//! secret is random, not a password, so there is nothing to guess.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The random bytes a new secret is made of.
pub const RANDOM_BYTES: usize = 36;

/// A token's secret as handed to its owner once.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in a log or a panic message.
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A new secret from `RANDOM_BYTES` random bytes.
    pub fn from_random(bytes: &[u8; RANDOM_BYTES]) -> Secret {
        Secret(format!("hifi_{}_{}", hex(&bytes[..4]), hex(&bytes[4..])))
    }

    /// The text to give its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The id its row is found by.
    pub fn lookup(&self) -> &str {
        &self.0[5..13]
    }

    /// What is stored: the SHA-256 of the whole secret, in hex.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }

    /// Reads a presented secret; `None` when it cannot be one of hifi's
    /// (which is then refused like a wrong one, without a lookup).
    pub fn parse(text: &str) -> Option<Secret> {
        let rest = text.strip_prefix("hifi_")?;
        let (lookup, key) = rest.split_once('_')?;
        let hexy = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hexy(lookup, 8) && hexy(key, 64)).then(|| Secret(text.to_ascii_lowercase()))
    }

    /// Whether this secret is the one `stored_hash` was made from, compared
    /// in constant time.
    pub fn verify(&self, stored_hash: &str) -> bool {
        self.hash().as_bytes().ct_eq(stored_hash.as_bytes()).into()
    }
}

/// Checks a token's name: it is recorded as the actor of every event made
/// with the token. Letters, digits, `.`, `_`, `-` and `@`, starting with a
/// letter or digit, at most 64 characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a token name; use letters, digits, `.`, `_`, `-` or `@`, starting with a letter or digit (like ann or ci-bot)"
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_hash_only() {
        let secret = Secret::from_random(&[7; RANDOM_BYTES]);
        assert!(secret.expose().starts_with("hifi_07070707_"));
        assert_eq!(secret.lookup(), "07070707");
        let stored = secret.hash();
        assert_eq!(stored.len(), 64);
        let presented = Secret::parse(secret.expose()).unwrap();
        assert!(presented.verify(&stored));
        let other = Secret::from_random(&[8; RANDOM_BYTES]);
        assert!(!other.verify(&stored));
        assert!(!presented.verify(""));
    }

    #[test]
    fn malformed_secrets_are_not_secrets() {
        for text in [
            "",
            "hifi_",
            "hifi_0707_07",
            "token",
            "hifi_0707070g_0",
            "hifi_07070707",
        ] {
            assert!(Secret::parse(text).is_none(), "{text}");
        }
        assert_eq!(
            format!("{:?}", Secret::from_random(&[1; RANDOM_BYTES])),
            "Secret(…)"
        );
    }

    #[test]
    fn token_names_are_actor_names() {
        assert!(validate_name("ann").is_ok());
        assert!(validate_name("ci-bot@shop.example").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
    }
}
