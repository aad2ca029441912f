//! Sign-in for the status page: random session ids kept in memory (never
//! a secret in the cookie but the id), each with its own CSRF token and
//! the contact acting; 12 hours each. Sign-in failures are counted per
//! address: ten within a minute slow that address down. The clock is an
//! argument (seconds), so all of it is tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

/// How long a session lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Failures within [`FAIL_WINDOW`] from one address before it is slowed.
pub const FAIL_LIMIT: usize = 10;
pub const FAIL_WINDOW: i64 = 60;
/// Most sessions kept (the oldest go first); most addresses counted.
const MAX_SESSIONS: usize = 10_000;
const MAX_ADDRESSES: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The contact acting (acks are recorded as theirs).
    pub name: String,
    /// The token every form of this session carries.
    pub csrf: String,
    pub expires: i64,
}

/// 32 random bytes as hex, from the kernel (an error when it has none:
/// no session is made without).
pub fn random_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    let mut filled = 0;
    while filled < b.len() {
        match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("no randomness for a session: getrandom: {e}")),
        }
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, Vec<i64>>>,
}

impl Sessions {
    /// A new session for `name` at `now`: its id (the cookie's value).
    pub fn create(&self, name: &str, now: i64) -> Result<(String, Session), String> {
        let id = random_token()?;
        let s = Session {
            name: name.to_string(),
            csrf: random_token()?,
            expires: now + SESSION_SECONDS,
        };
        let mut m = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, s| s.expires > now);
        if m.len() >= MAX_SESSIONS {
            if let Some(oldest) = m
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert(id.clone(), s.clone());
        Ok((id, s))
    }

    /// The session of cookie value `id` if it is live at `now`.
    pub fn get(&self, id: &str, now: i64) -> Option<Session> {
        let m = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        m.get(id).filter(|s| s.expires > now).cloned()
    }

    /// Signs out.
    pub fn remove(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Records a failed sign-in from `addr` at `now`.
    pub fn failed(&self, addr: IpAddr, now: i64) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_ADDRESSES && !m.contains_key(&addr) {
            m.retain(|_, v| v.last().is_some_and(|&t| t > now - FAIL_WINDOW));
        }
        let v = m.entry(addr).or_default();
        v.retain(|&t| t > now - FAIL_WINDOW);
        v.push(now);
    }

    /// How many seconds a sign-in from `addr` waits before it is answered:
    /// 0 until [`FAIL_LIMIT`] failures within the minute, then one more
    /// second for each failure past it (at most 10).
    pub fn delay(&self, addr: IpAddr, now: i64) -> u64 {
        let m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = m
            .get(&addr)
            .map_or(0, |v| v.iter().filter(|&&t| t > now - FAIL_WINDOW).count());
        (n + 1).saturating_sub(FAIL_LIMIT).min(10) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_after_twelve_hours_and_sign_out() {
        let s = Sessions::default();
        let (id, sess) = s.create("olga", 1000).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, sess.csrf);
        assert_eq!(s.get(&id, 1000 + SESSION_SECONDS - 1).unwrap().name, "olga");
        assert_eq!(s.get(&id, 1000 + SESSION_SECONDS), None);
        let (id2, _) = s.create("ivan", 1000).unwrap();
        assert_ne!(id, id2, "random ids");
        s.remove(&id2);
        assert_eq!(s.get(&id2, 1001), None);
        assert_eq!(s.get("", 1001), None);
    }

    #[test]
    fn ten_failures_a_minute_slow_an_address_down() {
        let s = Sessions::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..9 {
            s.failed(a, 100 + i);
        }
        assert_eq!(s.delay(a, 110), 0, "nine: not yet");
        s.failed(a, 110);
        assert_eq!(s.delay(a, 110), 1, "the tenth: slowed");
        for i in 0..20 {
            s.failed(a, 111 + i / 10);
        }
        assert_eq!(s.delay(a, 112), 10, "at most 10 s");
        assert_eq!(s.delay(b, 112), 0, "another address is not");
        assert_eq!(
            s.delay(a, 112 + FAIL_WINDOW),
            0,
            "a minute later: forgotten"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
