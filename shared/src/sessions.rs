//! The sessions of WebSocket connections, cached per process (API.md §7.1: tokens are re-checked on every
//! action, cached ≤ 60 s).
//!
//! Every frame needs its connection's session (user, device, token version and expiry). Looking it up is a
//! three-table join per frame; a connection's session only changes when its token is revoked, and a
//! revocation closes the connection's socket. So a process keeps what it looked up for at most the configured
//! time (`WS_SESSION_CACHE_SECONDS`, 60 at most): a revocation whose close was lost (a crash between commit
//! and close) is noticed within that time, as the contract allows. The token's expiry is checked on every
//! frame, cached or not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::connections::ConnSession;

/// Sessions kept at most; beyond that the expired ones are dropped, and all of them if that is not enough.
const CAPACITY: usize = 100_000;

/// Sessions looked up in this process, by connection id.
#[derive(Debug)]
pub struct SessionCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (ConnSession, Instant)>>,
}

impl SessionCache {
    /// A cache whose entries are trusted for `ttl` after their lookup (zero: nothing is cached).
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ConnSession, Instant)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session of `connection_id` if it was looked up less than the cache's time ago.
    pub fn get(&self, connection_id: &str) -> Option<ConnSession> {
        let entries = self.entries();
        let (session, at) = entries.get(connection_id)?;
        (at.elapsed() < self.ttl).then(|| session.clone())
    }

    /// Remembers the session of `connection_id`, just looked up.
    pub fn put(&self, connection_id: &str, session: &ConnSession) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= CAPACITY && !entries.contains_key(connection_id) {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(connection_id.to_owned(), (session.clone(), Instant::now()));
    }

    /// Forgets `connection_id` (its connection ended).
    pub fn forget(&self, connection_id: &str) {
        self.entries().remove(connection_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(user_id: i64) -> ConnSession {
        ConnSession { user_id, device_id: "d".into(), token_version: 0, token_exp: 0 }
    }

    #[test]
    fn entries_last_their_time_and_no_longer() {
        let cache = SessionCache::new(Duration::from_millis(50));
        cache.put("c", &user(1));
        assert_eq!(cache.get("c"), Some(user(1)));
        assert_eq!(cache.get("other"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("c"), None, "expired");
        cache.put("c", &user(2));
        cache.forget("c");
        assert_eq!(cache.get("c"), None, "forgotten");
    }

    #[test]
    fn a_zero_time_caches_nothing() {
        let cache = SessionCache::new(Duration::ZERO);
        cache.put("c", &user(1));
        assert_eq!(cache.get("c"), None);
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = SessionCache::new(Duration::from_secs(60));
        for i in 0..CAPACITY {
            cache.put(&i.to_string(), &user(1));
        }
        cache.put("new", &user(2));
        assert_eq!(cache.get("new"), Some(user(2)));
        assert!(cache.entries().len() <= CAPACITY);
    }
}
