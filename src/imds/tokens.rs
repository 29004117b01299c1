//! The metadata listener's own IMDSv2 session tokens: an HMAC over uid and expiry under a key drawn
//! at start. They need no state, cannot be used by another user, and die with the process (an SDK
//! that gets 401 asks for a new one).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Session tokens bound to a uid: `<uid>.<expiry>.<hex HMAC-SHA256 of "uid.expiry">`.
pub struct Tokens {
    key: [u8; 32],
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens::new()
    }
}

impl Tokens {
    pub fn new() -> Tokens {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the kernel's random source");
        Tokens { key }
    }

    fn mac(&self, uid: u32, expires: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{uid}.{expires}").as_bytes());
        mac
    }

    pub fn issue(&self, uid: u32, expires: u64) -> String {
        let tag = self.mac(uid, expires).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{uid}.{expires}.{hex}")
    }

    /// Whether `token` was issued here, for `uid`, and has not expired at `now`.
    pub fn check(&self, token: &[u8], uid: u32, now: u64) -> bool {
        let Ok(token) = std::str::from_utf8(token) else { return false };
        let mut parts = token.split('.');
        let (Some(owner), Some(expires), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(owner), Ok(expires)) = (owner.parse::<u32>(), expires.parse::<u64>()) else { return false };
        let Some(tag) = unhex(tag) else { return false };
        owner == uid && now < expires && self.mac(owner, expires).verify_slice(&tag).is_ok()
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_uid_and_expire() {
        let tokens = Tokens::new();
        let token = tokens.issue(1001, 2_000);
        assert!(tokens.check(token.as_bytes(), 1001, 1_999));
        assert!(!tokens.check(token.as_bytes(), 1001, 2_000), "expired");
        assert!(!tokens.check(token.as_bytes(), 1002, 1_000), "another user's");
        let forged = token.replacen("1001.", "1002.", 1);
        assert!(!tokens.check(forged.as_bytes(), 1002, 1_000), "uid changed");
        let extended = token.replacen(".2000.", ".9000.", 1);
        assert!(!tokens.check(extended.as_bytes(), 1001, 1_000), "expiry changed");
        assert!(!Tokens::new().check(token.as_bytes(), 1001, 1_000), "another process's key");
        for junk in ["", "1001", "1001.2000", "1001.2000.zz", "1001.2000.abc.", "x.y.z"] {
            assert!(!tokens.check(junk.as_bytes(), 1001, 1_000), "{junk:?}");
        }
    }
}
