//! Keyed pseudonyms for subscriber identifiers: HMAC-SHA256 over `kind:value` with a secret
//! key, so the same key gives the same pseudonym (reports can be joined) and without the key
//! nobody can go back to the identifier, nor test a guess.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Makes pseudonyms with one key.
#[derive(Clone)]
pub struct Pseudonymiser {
    key: Vec<u8>,
}

impl std::fmt::Debug for Pseudonymiser {
    /// The key is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser { key: <hidden> }")
    }
}

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// A pseudonymisation key that is too short to be secret.
#[derive(Debug, thiserror::Error)]
#[error(
    "key of {0} bytes is too short (at least {min}; e.g. `head -c 32 /dev/urandom | base64 > key`)",
    min = MIN_KEY_BYTES
)]
pub struct KeyError(pub usize);

impl Pseudonymiser {
    /// The key is the file's content with surrounding whitespace removed.
    pub fn from_key_bytes(bytes: &[u8]) -> Result<Pseudonymiser, KeyError> {
        let key = bytes.trim_ascii();
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError(key.len()));
        }
        Ok(Pseudonymiser { key: key.to_vec() })
    }

    /// `psn_` and the first 20 hex digits (80 bits) of HMAC-SHA256(key, "kind:value").
    pub fn pseudonym(&self, kind: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut s = String::from("psn_");
        for b in &out[..10] {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_key_and_different_across_keys_and_kinds() {
        let a = Pseudonymiser::from_key_bytes(b"0123456789abcdef-key-one\n").unwrap();
        let b = Pseudonymiser::from_key_bytes(b"0123456789abcdef-key-two").unwrap();
        let p = a.pseudonym("msisdn", "33612345678");
        assert_eq!(p, a.pseudonym("msisdn", "33612345678"));
        assert_eq!(p.len(), 24);
        assert!(p.starts_with("psn_"));
        assert!(!p.contains("33612345678"));
        assert_ne!(p, b.pseudonym("msisdn", "33612345678"));
        assert_ne!(p, a.pseudonym("imsi", "33612345678"));
        assert!(Pseudonymiser::from_key_bytes(b"short").is_err());
    }

    #[test]
    fn matches_the_hmac_sha256_test_vector() {
        // RFC 4231 test case 2 (key "Jefe"), checked on the full MAC through the same code.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let out = mac.finalize().into_bytes();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
