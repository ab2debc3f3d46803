//! Ownership of S3 objects: resolving client references to owned keys, and deleting objects nothing
//! references any more (API.md §6).

use crate::db::objects;
use crate::error::ApiError;
use crate::state::AppState;

/// Kinds of objects: avatars, `/upload` images, presigned attachments, and objects whose owner is gone
/// (their deletion is pending).
pub mod kind {
    /// An uploaded avatar.
    pub const AVATAR: &str = "avatar";
    /// An image from `POST /upload`.
    pub const UPLOAD: &str = "upload";
    /// An attachment uploaded through a presigned PUT.
    pub const PRESIGNED: &str = "presigned";
    /// Deletion pending (retried by the clean-up).
    pub const DELETED: &str = "deleted";
}

/// Extracts the object key from a reference: the key itself, or a URL this service issued (path-style
/// `/bucket/key` or virtual-hosted `/key`; the query is ignored).
pub fn key_of(bucket: &str, reference: &str) -> String {
    match reference.split_once("://") {
        None => reference.trim().to_owned(),
        Some((_, rest)) => {
            let path = rest.split(['?', '#']).next().unwrap_or_default();
            let path = path.split_once('/').map(|(_, p)| p).unwrap_or_default();
            let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
            path.strip_prefix(&format!("{bucket}/")).map_or(path.clone(), str::to_owned)
        }
    }
}

/// The key behind `reference` if it names an upload or attachment object owned by `owner`.
pub async fn owned_key(state: &AppState, owner: i64, reference: &str) -> Result<Option<String>, ApiError> {
    let conn = state.db.conn().await?;
    owned_key_on(state, &conn, owner, reference).await
}

/// [`owned_key`] on `conn`: inside a write transaction, the answer holds until it commits.
pub async fn owned_key_on(
    state: &AppState,
    conn: &crate::db::Conn,
    owner: i64,
    reference: &str,
) -> Result<Option<String>, ApiError> {
    let key = key_of(state.storage.bucket(), reference);
    Ok(objects::is_live_upload_of(conn, owner, &key).await?.then_some(key))
}

/// A fresh presigned GET URL for an object, or `None` when the object is gone. Attachments from the
/// presigned flow are served as `application/octet-stream` attachments.
pub async fn url(state: &AppState, key: &str) -> Result<Option<String>, ApiError> {
    let kind = {
        let conn = state.db.conn().await?;
        objects::kind_of(&conn, key).await?
    };
    match kind.as_deref() {
        None | Some(kind::DELETED) => Ok(None),
        Some(k) => Ok(Some(state.storage.presign_get_as(key, k == kind::PRESIGNED).await?)),
    }
}

/// Deletes an S3 object, retrying transient failures.
async fn delete_object(state: &AppState, key: &str) -> bool {
    for attempt in 0..3u64 {
        match state.storage.delete(key).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = ?e, attempt, "object deletion failed");
                tokio::time::sleep(std::time::Duration::from_millis(100 * (attempt + 1))).await;
            }
        }
    }
    false
}

/// Deletes the objects among `keys` that nothing references any more (row and S3 object). A failed S3
/// deletion leaves the row marked `deleted`, so the clean-up retries it.
pub async fn delete_if_orphaned(state: &AppState, keys: &[String]) {
    for key in keys {
        let orphaned = mark_if_orphaned(state, key, false).await;
        match orphaned {
            Ok(true) => purge(state, key).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = ?e, "orphan check failed"),
        }
    }
}

/// In one write transaction: if nothing references `key` (or `force`), mark it `deleted`, so no new
/// reference can be made to it (references check the kind inside their own write transaction).
async fn mark_if_orphaned(state: &AppState, key: &str, force: bool) -> Result<bool, libsql::Error> {
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    if !force && objects::is_referenced(&tx, key).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    objects::mark_deleted(&tx, key).await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes the S3 object (retried), then its row; a failure leaves the row for the clean-up to retry. A row
/// younger than the longest presigned PUT stays, marked `deleted`: a PUT issued with it could re-create
/// the object, and the clean-up deletes it again until the PUT has expired.
pub async fn purge(state: &AppState, key: &str) {
    if delete_object(state, key).await {
        let issued_after = crate::time::now_ms() - put_lifetime_ms(state);
        match state.db.conn().await {
            Ok(conn) => {
                if let Err(e) = objects::delete_settled(&conn, key, issued_after).await {
                    tracing::warn!(error = ?e, "object row not deleted");
                }
            }
            Err(e) => tracing::warn!(error = ?e, "object row not deleted"),
        }
    }
}

/// How long a presigned PUT of this deployment can be used, in ms.
fn put_lifetime_ms(state: &AppState) -> i64 {
    i64::try_from(state.storage.put_ttl().as_millis()).unwrap_or(i64::MAX)
}

/// How old an object without a row must be before the sweep deletes it: far past the moment between an
/// avatar's S3 write and its row.
pub const SWEEP_MIN_AGE_MS: i64 = 3600 * 1000;

/// Deletes every object of the bucket last written before `cutoff_ms` that has no row: one re-created by a
/// presigned PUT after its row was purged, or left by a process that died between its S3 write and its
/// row. Returns how many it deleted.
pub async fn sweep_bucket(state: &AppState, cutoff_ms: i64) -> Result<usize, ApiError> {
    let mut removed = 0;
    let mut token = None;
    loop {
        let (page, next) = state.storage.list_page(token).await?;
        let old: Vec<&str> = page.iter().filter(|o| o.last_modified_ms < cutoff_ms).map(|o| o.key.as_str()).collect();
        if !old.is_empty() {
            let known = {
                let conn = state.db.conn().await?;
                objects::with_rows(&conn, &old).await?
            };
            for key in old.into_iter().filter(|k| !known.iter().any(|known| known == k)) {
                if delete_object(state, key).await {
                    removed += 1;
                }
            }
        }
        token = next;
        if token.is_none() {
            return Ok(removed);
        }
    }
}

/// Candidates read per batch by the clean-up.
pub const CLEANUP_BATCH: i64 = 1000;

/// How long an upload may stay unreferenced before the clean-up deletes it (the scheduled `cleanup`
/// function and the local stack); presigned PUTs live far shorter
/// ([`crate::config::MAX_PRESIGNED_PUT_TTL_SECONDS`]).
pub const MAX_UNREFERENCED_MS: i64 = 24 * 3600 * 1000;

/// The scheduled clean-up: deletes objects created before `cutoff_ms` that nothing references (uploads
/// never used within 24 h), and retries pending deletions. Returns how many objects were removed.
pub async fn cleanup(state: &AppState, cutoff_ms: i64) -> Result<usize, ApiError> {
    cleanup_in_batches(state, cutoff_ms, CLEANUP_BATCH).await
}

/// [`cleanup`] reading `batch` candidates at a time, in key order, until none is left.
pub async fn cleanup_in_batches(state: &AppState, cutoff_ms: i64, batch: i64) -> Result<usize, ApiError> {
    let mut removed = 0;
    let mut after = String::new();
    loop {
        let candidates = {
            let conn = state.db.conn().await?;
            objects::cleanup_candidates(&conn, cutoff_ms, &after, batch).await?
        };
        let Some(last) = candidates.last().map(|c| c.key.clone()) else { break };
        let full = i64::try_from(candidates.len()).unwrap_or(i64::MAX) >= batch;
        for objects::ObjectKind { key, kind } in candidates {
            // Re-checked in a write transaction: a reference may have appeared since the batch was read.
            if mark_if_orphaned(state, &key, kind == kind::DELETED).await? {
                purge(state, &key).await;
                removed += 1;
            }
        }
        if !full {
            break;
        }
        after = last;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_keys_and_issued_urls() {
        assert_eq!(key_of("b", "u/abc"), "u/abc");
        assert_eq!(key_of("b", "http://127.0.0.1:3001/b/u/abc?X-Amz-Signature=1"), "u/abc");
        assert_eq!(key_of("b", "https://b.s3.amazonaws.com/u/abc?x=1"), "u/abc");
        assert_eq!(key_of("b", "https://evil.example/u/abc"), "u/abc", "ownership is still checked afterwards");
    }
}
