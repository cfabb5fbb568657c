//! Request signing: HMAC-SHA256 over `"<timestamp>.<body>"`, sent as
//! `X-Gate-Signature-256: sha256=<hex>`.
//!
//! The worker in `deliver.rs` signs each attempt at send time; receivers verify with the
//! same secret (`docs/webhooks.md` has a Python receiver). The timestamp is part of the
//! signed text so a receiver can refuse replays of an old request: a captured body cannot be
//! re-sent with a fresh timestamp without the secret. The secret is read from the
//! environment by the caller ([`super::resolve_webhooks`]); this module never sees the
//! environment, and [`Secret`] never prints its value.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the event ID (the receiver's de-duplication key).
pub const EVENT_ID_HEADER: &str = "X-Gate-Event-Id";
/// Header carrying the send time, unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Gate-Timestamp";
/// Header carrying the signature, `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Gate-Signature-256";

type HmacSha256 = Hmac<Sha256>;

/// A webhook's HMAC secret. Its `Debug` output does not show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from its bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The `X-Gate-Signature-256` value for a request sent at `timestamp` (unix seconds).
pub fn signature(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` sent at `timestamp` (constant-time compare).
/// Receivers should also refuse timestamps far from their own clock.
pub fn verify(secret: &Secret, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = secret.mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Reference values computed independently (Python's hmac module); the first is the
        // widely published HMAC-SHA256 example.
        let secret = Secret::new("key");
        let mut mac = secret.mac();
        mac.update(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            signature(&secret, 1_793_534_400, br#"{"id":"e1"}"#),
            "sha256=8c5a4e4e6aa89ee39cc4699f3ec1ce92dcaac7728ce9ab2f6e7c03f89590ab65"
        );
    }

    #[test]
    fn verify_accepts_only_the_same_secret_time_and_body() {
        let secret = Secret::new("s3cret");
        let body = br#"{"id":"e1","decision":"rollback"}"#;
        let sig = signature(&secret, 100, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert!(verify(&secret, 100, body, &sig));
        assert!(!verify(&secret, 101, body, &sig), "timestamp is signed");
        assert!(!verify(
            &secret,
            100,
            br#"{"id":"e1","decision":"promote"}"#,
            &sig
        ));
        assert!(!verify(&Secret::new("other"), 100, body, &sig));
        assert!(!verify(
            &secret,
            100,
            body,
            sig.trim_start_matches("sha256=")
        ));
        assert!(!verify(&secret, 100, body, "sha256=zz"));
    }

    #[test]
    fn debug_hides_the_secret() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(…)");
    }
}
