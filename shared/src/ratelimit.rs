//! Fixed-window rate limits kept in the database, since functions are stateless (API.md §1.2).
//!
//! Keys never hold a phone number, username or address: each is `scope:` plus an HMAC-SHA256 of the subject
//! under a key derived from the JWT secret, so the table cannot be reversed by brute force without it and
//! keys are stable across builds. A window that is full is refused without writing: the counting statement
//! changes nothing then, and this process remembers the refusal until the window ends, so a flood of
//! refused requests costs no database work at all. It also counts the refusals of each full window, so a
//! caller can answer the first one and act on a flood ([`Limiter::refusals`]).

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::config::{Limit, RateLimits};
use crate::db::{Conn, Db, rate_limits};
use crate::error::ApiError;

/// Refusals remembered per process at most (beyond that the memory is dropped and rebuilt).
const REMEMBERED: usize = 10_000;

fn window_ms(limit: Limit) -> i64 {
    i64::try_from(limit.window.as_millis()).unwrap_or(i64::MAX)
}

/// Keeps a per-process map of windows within [`REMEMBERED`] entries: at the bound the ended windows go, and
/// if that is not enough, all of them.
fn make_room<V>(windows: &mut HashMap<String, V>, now: i64, end: impl Fn(&V) -> i64) {
    if windows.len() >= REMEMBERED {
        windows.retain(|_, w| end(w) > now);
        if windows.len() >= REMEMBERED {
            windows.clear();
        }
    }
}

fn retry_after(window_end: i64, now: i64) -> u64 {
    u64::try_from((window_end - now + 999) / 1000).unwrap_or(1).max(1)
}

/// What a rate limit counts: the prefix of its counter keys (stored: renaming one starts its windows over)
/// and the configured limit ([`RateLimits`]) it counts against. The MLS claims count under the claim limits,
/// in counters of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Login attempts per account, from all addresses.
    LoginAccount,
    /// Per (phone or username as typed, source IP).
    LoginSubjectIp,
    /// Login attempts per source address.
    LoginIp,
    /// Registrations per source address.
    RegisterIp,
    /// Searches and username checks per user.
    Search,
    /// `send_message` per user.
    SendMessage,
    /// Per (sender, receiver).
    Typing,
    /// Key claims per caller.
    Claim,
    /// Key claims per (caller, target device).
    ClaimDevice,
    /// One-time keys taken per target device, from all callers.
    ClaimTarget,
    /// MLS key-package claims per caller.
    MlsClaim,
    /// MLS key-package claims per (caller, target device).
    MlsClaimDevice,
    /// MLS key packages taken per target device, from all callers.
    MlsClaimTarget,
    /// Uploads per user.
    Upload,
    /// Password checks under a token per user.
    PasswordChange,
    /// Look-ups of other users per user.
    Directory,
    /// Username changes per user.
    UsernameChange,
    /// WebSocket connections per user.
    Connect,
    /// Key uploads per device (identity keys) or identity (MLS key packages).
    KeyUpload,
    /// Per WebSocket connection.
    WsFrames,
    /// Per user and process, in memory ([`Limiter::hit_local`]).
    RestWrite,
    /// Per user and process, in memory ([`Limiter::hit_local`]).
    RestRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 22] = [
        Scope::LoginAccount,
        Scope::LoginSubjectIp,
        Scope::LoginIp,
        Scope::RegisterIp,
        Scope::Search,
        Scope::SendMessage,
        Scope::Typing,
        Scope::Claim,
        Scope::ClaimDevice,
        Scope::ClaimTarget,
        Scope::MlsClaim,
        Scope::MlsClaimDevice,
        Scope::MlsClaimTarget,
        Scope::Upload,
        Scope::PasswordChange,
        Scope::Directory,
        Scope::UsernameChange,
        Scope::Connect,
        Scope::KeyUpload,
        Scope::WsFrames,
        Scope::RestWrite,
        Scope::RestRead,
    ];

    /// The prefix of its counter keys.
    pub fn name(self) -> &'static str {
        match self {
            Scope::LoginAccount => "login_account",
            Scope::LoginSubjectIp => "login_subject_ip",
            Scope::LoginIp => "login_ip",
            Scope::RegisterIp => "register_ip",
            Scope::Search => "search",
            Scope::SendMessage => "send_message",
            Scope::Typing => "typing",
            Scope::Claim => "claim",
            Scope::ClaimDevice => "claim_device",
            Scope::ClaimTarget => "claim_target",
            Scope::MlsClaim => "mls_claim",
            Scope::MlsClaimDevice => "mls_claim_device",
            Scope::MlsClaimTarget => "mls_claim_target",
            Scope::Upload => "upload",
            Scope::PasswordChange => "password_change",
            Scope::Directory => "directory",
            Scope::UsernameChange => "username_change",
            Scope::Connect => "connect",
            Scope::KeyUpload => "key_upload",
            Scope::WsFrames => "ws_frames",
            Scope::RestWrite => "rest_write",
            Scope::RestRead => "rest_read",
        }
    }

    /// The limit it counts against.
    pub fn limit(self, limits: &RateLimits) -> Limit {
        match self {
            Scope::LoginAccount => limits.login_account,
            Scope::LoginSubjectIp => limits.login_account_ip,
            Scope::LoginIp => limits.login_ip,
            Scope::RegisterIp => limits.register_ip,
            Scope::Search => limits.search,
            Scope::SendMessage => limits.send_message,
            Scope::Typing => limits.typing,
            Scope::Claim | Scope::MlsClaim => limits.claim,
            Scope::ClaimDevice | Scope::MlsClaimDevice => limits.claim_device,
            Scope::ClaimTarget | Scope::MlsClaimTarget => limits.claim_target,
            Scope::Upload => limits.upload,
            Scope::PasswordChange => limits.password_change,
            Scope::Directory => limits.directory,
            Scope::UsernameChange => limits.username_change,
            Scope::Connect => limits.connect,
            Scope::KeyUpload => limits.key_upload,
            Scope::WsFrames => limits.ws_frames,
            Scope::RestWrite => limits.rest_write,
            Scope::RestRead => limits.rest_read,
        }
    }
}

/// The rate limiter of one process: the HMAC key of its counters, the limits, and the refusals it remembers.
pub struct Limiter {
    key: Hmac<Sha256>,
    limits: RateLimits,
    /// Counter key → a window known to be full.
    full: Mutex<HashMap<String, Full>>,
    /// (scope, subject) → the window of a limit counted in this process only ([`Limiter::hit_local`]).
    local: Mutex<HashMap<String, Local>>,
}

/// A window of a limit counted in this process's memory.
#[derive(Debug, Clone, Copy)]
struct Local {
    /// End of the window (epoch ms).
    end: i64,
    /// Events counted in it.
    count: u32,
}

/// A window this process knows to be full.
#[derive(Debug, Clone, Copy)]
struct Full {
    /// End of the window (epoch ms).
    end: i64,
    /// Events refused in it by this process.
    refusals: u32,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter of `limits` whose counter keys are derived from `secret` (the JWT secret).
    pub fn new(secret: &[u8], limits: RateLimits) -> Self {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        derive.update(b"messenger rate-limit keys v1");
        let key = Hmac::<Sha256>::new_from_slice(&derive.finalize().into_bytes()).expect("32-byte key");
        Self { key, limits, full: Mutex::new(HashMap::new()), local: Mutex::new(HashMap::new()) }
    }

    /// The limit `scope` counts against.
    pub fn limit(&self, scope: Scope) -> Limit {
        scope.limit(&self.limits)
    }

    /// The counter key of (`scope`, `subject`).
    fn counter(&self, scope: Scope, subject: &str) -> String {
        let scope = scope.name();
        let mut mac = self.key.clone();
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(subject.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{scope}:{hex}")
    }

    /// The end of `counter`'s window if it is known to be full, counting one more refusal in it.
    fn remembered(&self, counter: &str, now: i64) -> Option<i64> {
        let mut full = self.full.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = full.get_mut(counter).filter(|w| w.end > now)?;
        window.refusals = window.refusals.saturating_add(1);
        Some(window.end)
    }

    /// Remembers `counter`'s window as full until `window_end`, with one refusal (one more when another
    /// task of this process found the same window full at the same time).
    fn remember(&self, counter: String, window_end: i64, now: i64) {
        let mut full = self.full.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        make_room(&mut full, now, |w| w.end);
        let window = full.entry(counter).or_insert(Full { end: window_end, refusals: 0 });
        if window.end != window_end {
            *window = Full { end: window_end, refusals: 0 };
        }
        window.refusals = window.refusals.saturating_add(1);
    }

    /// How many events of (`scope`, `subject`) this process refused in the current window (0 when it knows
    /// of no full window).
    pub fn refusals(&self, scope: Scope, subject: &str) -> u32 {
        let counter = self.counter(scope, subject);
        let now = crate::time::now_ms();
        let full = self.full.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        full.get(&counter).filter(|w| w.end > now).map_or(0, |w| w.refusals)
    }

    /// Refuses (`scope`, `subject`) when this process knows its window is full, without asking the database;
    /// [`Limiter::hit`] or [`Limiter::hit_on`] still count an event that passes.
    pub fn check(&self, scope: Scope, subject: &str) -> Result<(), ApiError> {
        self.unrefused(scope, subject).map(drop)
    }

    fn forget(&self, counter: &str) {
        self.full.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(counter);
    }

    /// Counts one event for (`scope`, `subject`); fails with 429 once the window already holds the scope's
    /// limit.
    pub async fn hit(&self, db: &Db, scope: Scope, subject: &str) -> Result<(), ApiError> {
        let (counter, now) = self.unrefused(scope, subject)?;
        let conn = db.conn().await?;
        self.count(&conn, counter, now, self.limit(scope)).await
    }

    /// Counts one event like [`Limiter::hit`], on `conn`: inside the caller's write transaction the count
    /// commits or rolls back with the rest of it (one transaction per message sent).
    pub async fn hit_on(&self, conn: &Conn, scope: Scope, subject: &str) -> Result<(), ApiError> {
        let (counter, now) = self.unrefused(scope, subject)?;
        self.count(conn, counter, now, self.limit(scope)).await
    }

    /// Counts one event for (`scope`, `subject`) in this process's memory only, without any database work;
    /// fails with 429 once the window already holds the scope's limit. For coarse budgets where a counter in the
    /// database would add a write to every call: each process (each Lambda execution environment) counts on
    /// its own, so the budget of a deployment is `limit.max` per process a user's requests reach, bounded by
    /// the functions' concurrency.
    pub fn hit_local(&self, scope: Scope, subject: &str) -> Result<(), ApiError> {
        let limit = self.limit(scope);
        let now = crate::time::now_ms();
        let mut local = self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        make_room(&mut local, now, |w| w.end);
        let window = local.entry(format!("{}\0{subject}", scope.name())).or_insert(Local { end: 0, count: 0 });
        if window.end <= now {
            *window = Local { end: now.saturating_add(window_ms(limit)), count: 0 };
        }
        if window.count >= limit.max {
            return Err(ApiError::RateLimited { retry_after: retry_after(window.end, now) });
        }
        window.count += 1;
        Ok(())
    }

    /// The counter of (`scope`, `subject`) and the time, or the 429 this process remembers for it.
    fn unrefused(&self, scope: Scope, subject: &str) -> Result<(String, i64), ApiError> {
        let now = crate::time::now_ms();
        let counter = self.counter(scope, subject);
        match self.remembered(&counter, now) {
            Some(end) => Err(ApiError::RateLimited { retry_after: retry_after(end, now) }),
            None => Ok((counter, now)),
        }
    }

    async fn count(&self, conn: &Conn, counter: String, now: i64, limit: Limit) -> Result<(), ApiError> {
        let max = i64::from(limit.max);
        if rate_limits::hit_below(conn, &counter, now, window_ms(limit), max).await?.is_some() {
            if now % 64 == 0 {
                // Occasional clean-up of long-expired windows.
                rate_limits::delete_expired(conn, now - 86_400_000).await?;
            }
            return Ok(());
        }
        // Full: nothing was written. Remember until the window ends.
        let end = match rate_limits::current(conn, &counter, now, window_ms(limit)).await? {
            Some(window) => window.window_start.saturating_add(window_ms(limit)),
            None => now.saturating_add(1000),
        };
        self.remember(counter, end, now);
        Err(ApiError::RateLimited { retry_after: retry_after(end, now) })
    }

    /// Forgets the counter of (`scope`, `subject`), e.g. after a successful login.
    pub async fn clear(&self, db: &Db, scope: Scope, subject: &str) -> Result<(), ApiError> {
        let counter = self.counter(scope, subject);
        self.forget(&counter);
        let conn = db.conn().await?;
        rate_limits::clear(&conn, &counter).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The scope most tests count in.
    const T: Scope = Scope::Search;

    /// Every scope limited to `limit`.
    fn every(limit: Limit) -> RateLimits {
        RateLimits {
            login_account: limit,
            login_account_ip: limit,
            login_ip: limit,
            register_ip: limit,
            search: limit,
            send_message: limit,
            typing: limit,
            claim: limit,
            claim_device: limit,
            claim_target: limit,
            upload: limit,
            password_change: limit,
            directory: limit,
            username_change: limit,
            connect: limit,
            key_upload: limit,
            ws_frames: limit,
            rest_write: limit,
            rest_read: limit,
        }
    }

    fn limiter(limit: Limit) -> Limiter {
        Limiter::new(b"a test secret of at least thirty-two bytes", every(limit))
    }

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("file:{}", dir.path().join("r.db").display()), None).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn the_event_after_the_limit_is_refused_with_retry_after() {
        let (_dir, db) = db().await;
        let limit = Limit { max: 3, window: Duration::from_secs(60) };
        let l = limiter(limit);
        for _ in 0..3 {
            l.hit(&db, T, "alice").await.unwrap();
        }
        match l.hit(&db, T, "alice").await {
            Err(ApiError::RateLimited { retry_after }) => assert!((1..=60).contains(&retry_after)),
            other => panic!("expected 429, got {other:?}"),
        }
        l.hit(&db, T, "bob").await.expect("other subjects have their own window");
        l.clear(&db, T, "alice").await.unwrap();
        l.hit(&db, T, "alice").await.expect("a cleared counter starts over");
    }

    /// `PRAGMA data_version` of another connection changes whenever a write is committed.
    async fn data_version(db: &Db) -> i64 {
        let conn = db.conn().await.unwrap();
        crate::db::value(conn.query("PRAGMA data_version", ()).await.unwrap()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn refusals_write_nothing_neither_in_the_database_nor_through_a_fresh_process() {
        let (dir, db) = db().await;
        let limit = Limit { max: 2, window: Duration::from_secs(60) };
        let l = limiter(limit);
        l.hit(&db, T, "x").await.unwrap();
        l.hit(&db, T, "x").await.unwrap();
        let watcher = Db::open(&format!("file:{}", dir.path().join("r.db").display()), None).await.unwrap();
        let before = data_version(&watcher).await;
        // This process remembers the refusal; another one (a second limiter) asks the database, whose
        // counting statement changes nothing once the window is full.
        for l in [&l, &limiter(limit)] {
            for _ in 0..20 {
                assert!(matches!(l.hit(&db, T, "x").await, Err(ApiError::RateLimited { .. })));
            }
        }
        assert_eq!(data_version(&watcher).await, before, "a refused hit wrote to the database");
        let conn = db.conn().await.unwrap();
        let count: i64 =
            crate::db::value(conn.query("SELECT count FROM rate_limit", ()).await.unwrap()).await.unwrap().unwrap();
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn keys_are_keyed_hashes_that_hold_no_subject() {
        let (_dir, db) = db().await;
        let limit = Limit { max: 5, window: Duration::from_secs(60) };
        limiter(limit).hit(&db, Scope::LoginAccount, "15550100001").await.unwrap();
        Limiter::new(b"another secret of at least thirty-two bytes", every(limit))
            .hit(&db, Scope::LoginAccount, "15550100001")
            .await
            .unwrap();
        let conn = db.conn().await.unwrap();
        let mut rows = conn.query("SELECT key FROM rate_limit ORDER BY key", ()).await.unwrap();
        let mut keys = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            keys.push(row.get::<String>(0).unwrap());
        }
        assert_eq!(keys.len(), 2, "another secret gives another key: {keys:?}");
        assert!(keys.iter().all(|k| k.starts_with("login_account:") && !k.contains("5550100001")), "{keys:?}");
        assert_eq!(limiter(limit).counter(T, "a"), limiter(limit).counter(T, "a"), "stable for one secret");
    }

    #[tokio::test]
    async fn refusals_are_counted_per_full_window() {
        let (_dir, db) = db().await;
        let limit = Limit { max: 2, window: Duration::from_millis(300) };
        let l = limiter(limit);
        l.hit(&db, T, "x").await.unwrap();
        l.check(T, "x").expect("a window with room passes the check");
        l.hit(&db, T, "x").await.unwrap();
        assert_eq!(l.refusals(T, "x"), 0, "a full window refused nothing yet");
        assert!(l.hit(&db, T, "x").await.is_err());
        assert_eq!(l.refusals(T, "x"), 1);
        assert!(l.check(T, "x").is_err(), "known full without asking the database");
        assert!(l.hit(&db, T, "x").await.is_err());
        assert_eq!(l.refusals(T, "x"), 3);
        assert_eq!(l.refusals(T, "y"), 0, "each subject has its own count");
        assert_eq!(limiter(limit).refusals(T, "x"), 0, "refusals are this process's");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(l.refusals(T, "x"), 0, "a new window starts with none");
        l.hit(&db, T, "x").await.unwrap();
    }

    #[test]
    fn every_scope_has_counters_of_its_own() {
        let names: std::collections::HashSet<&str> = Scope::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Scope::ALL.len(), "two scopes share a counter prefix");
        let limits = RateLimits::default();
        assert_eq!(Scope::MlsClaim.limit(&limits), limits.claim);
        assert_eq!(Scope::LoginSubjectIp.limit(&limits), limits.login_account_ip);
    }

    #[tokio::test]
    async fn a_new_window_starts_after_the_old_one_passed() {
        let (_dir, db) = db().await;
        let limit = Limit { max: 1, window: Duration::from_millis(50) };
        let l = limiter(limit);
        l.hit(&db, T, "x").await.unwrap();
        assert!(l.hit(&db, T, "x").await.is_err());
        tokio::time::sleep(Duration::from_millis(80)).await;
        l.hit(&db, T, "x").await.unwrap();
    }
}
