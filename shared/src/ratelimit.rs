//! Fixed-window rate limits kept in the database, since functions are stateless (API.md §1.2).

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::config::Limit;
use crate::db::{Db, rate_limits};
use crate::error::ApiError;

/// Keys are hashed so the table never holds phone numbers or usernames.
fn hashed(scope: &str, subject: &str) -> String {
    let mut h = DefaultHasher::new();
    subject.hash(&mut h);
    format!("{scope}:{:016x}", h.finish())
}

fn window_ms(limit: Limit) -> i64 {
    i64::try_from(limit.window.as_millis()).unwrap_or(i64::MAX)
}

fn retry_after(window_start: i64, limit: Limit, now: i64) -> u64 {
    u64::try_from((window_start + window_ms(limit) - now + 999) / 1000).unwrap_or(1).max(1)
}

/// Counts one event for (`scope`, `subject`); fails with 429 once the window holds more than `limit.max`.
pub async fn hit(db: &Db, scope: &str, subject: &str, limit: Limit) -> Result<(), ApiError> {
    let now = crate::time::now_ms();
    let conn = db.conn().await?;
    let window = rate_limits::hit(&conn, &hashed(scope, subject), now, window_ms(limit)).await?;
    if now % 64 == 0 {
        // Occasional clean-up of long-expired windows.
        rate_limits::delete_expired(&conn, now - 86_400_000).await?;
    }
    if window.count > i64::from(limit.max) {
        return Err(ApiError::RateLimited { retry_after: retry_after(window.window_start, limit, now) });
    }
    Ok(())
}

/// Fails with 429 if (`scope`, `subject`) has already used up its window, without counting an event.
pub async fn check(db: &Db, scope: &str, subject: &str, limit: Limit) -> Result<(), ApiError> {
    let now = crate::time::now_ms();
    let conn = db.conn().await?;
    if let Some(window) = rate_limits::current(&conn, &hashed(scope, subject), now, window_ms(limit)).await?
        && window.count >= i64::from(limit.max)
    {
        return Err(ApiError::RateLimited { retry_after: retry_after(window.window_start, limit, now) });
    }
    Ok(())
}

/// Forgets the counter of (`scope`, `subject`), e.g. after a successful login.
pub async fn clear(db: &Db, scope: &str, subject: &str) -> Result<(), ApiError> {
    let conn = db.conn().await?;
    rate_limits::clear(&conn, &hashed(scope, subject)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        for _ in 0..3 {
            hit(&db, "t", "alice", limit).await.unwrap();
        }
        match hit(&db, "t", "alice", limit).await {
            Err(ApiError::RateLimited { retry_after }) => assert!((1..=60).contains(&retry_after)),
            other => panic!("expected 429, got {other:?}"),
        }
        hit(&db, "t", "bob", limit).await.expect("other subjects have their own window");
        assert!(check(&db, "t", "alice", limit).await.is_err());
        clear(&db, "t", "alice").await.unwrap();
        check(&db, "t", "alice", limit).await.unwrap();
    }

    #[tokio::test]
    async fn a_new_window_starts_after_the_old_one_passed() {
        let (_dir, db) = db().await;
        let limit = Limit { max: 1, window: Duration::from_millis(50) };
        hit(&db, "t", "x", limit).await.unwrap();
        assert!(hit(&db, "t", "x", limit).await.is_err());
        tokio::time::sleep(Duration::from_millis(80)).await;
        hit(&db, "t", "x", limit).await.unwrap();
    }
}
