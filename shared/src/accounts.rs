//! What happens to a whole account: deletion (`DELETE /users/me` and the operator panel), bans, revoking
//! every session, and operator rights (granted only by the command-line operator step). Each is one path,
//! whoever asks.

use wire::ws::{KeyChangeKind, Presence, ServerEvent};

use crate::db::admin::AuditEntry;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{db, realtime};

/// Deletes account `user_id` (API.md §5.9): one write transaction removes the profile, secrets, devices,
/// connections, themes, contact rows in both directions and panel sessions, bumps the token version and
/// queues the purge of the messages only this user could still see (done in bounded steps after it); peers keep shared conversations (the user becomes the
/// `is_deleted` stub). Then every S3 object of the user is deleted (leftovers are retried by the clean-up),
/// open connections are closed, key removals are announced and, if the user showed being online, peers
/// see them go offline. Returns false when there is no live account `user_id`.
pub async fn delete(state: &AppState, user_id: i64) -> Result<bool, ApiError> {
    let failed = |e: ApiError| match e {
        ApiError::Internal(source) => ApiError::InternalWith { detail: "Failed to delete account", source },
        other => other,
    };
    let conn = state.db.conn().await?;
    let Some(row) = db::users::find(&conn, user_id).await?.filter(|u| !u.is_deleted) else {
        return Ok(false);
    };
    let peers = db::messages::peers_of(&conn, user_id).await?;
    let deleted = async {
        let tx = conn.write_tx().await?;
        let deleted = db::users::delete_account(&tx, user_id).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(deleted)
    }
    .await
    .map_err(failed)?;
    drop(conn);
    tracing::info!(user_id, "account deleted");
    realtime::close(state, &deleted.connections).await;
    for key in &deleted.object_keys {
        crate::files::purge(state, key).await;
    }
    for device in &deleted.devices {
        crate::keys::broadcast_key_change(state, user_id, device, KeyChangeKind::Removed).await;
        crate::mls::announce_removed_device(state, user_id, device).await;
    }
    // What the account leaves in its conversations and devices goes in bounded steps (`crate::bulk`);
    // past the request's budget the clean-up finishes it.
    crate::bulk::finish_queued(state, user_id).await;
    if row.privacy.show_online_status {
        let gone = ServerEvent::Presence(Presence { user_id, is_online: Some(false), last_seen: None });
        realtime::push_to_users(state, &peers, None, &gone.to_frame()).await;
    }
    Ok(true)
}

/// Bans or unbans a live account. A ban revokes every token at once (so an unban revives none) and closes
/// every open connection; login then answers 403 `account_banned`. Returns false when there is no such account.
pub async fn set_banned(state: &AppState, user_id: i64, banned: bool) -> Result<bool, ApiError> {
    let found = {
        let conn = state.db.conn().await?;
        db::admin::set_banned(&conn, user_id, banned).await?
    };
    if found && banned {
        realtime::close_user_connections(state, user_id, None).await;
    }
    Ok(found)
}

/// Revokes every token of a live account and closes its connections; returns false when there is no such account.
pub async fn revoke_sessions(state: &AppState, user_id: i64) -> Result<bool, ApiError> {
    let found = {
        let conn = state.db.conn().await?;
        db::admin::revoke_tokens(&conn, user_id).await?
    };
    if found {
        realtime::close_user_connections(state, user_id, None).await;
    }
    Ok(found)
}

/// The outcome of [`set_operator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorChange {
    /// The account.
    pub user_id: i64,
    /// Whether its rights changed (false: it already was, or was not, an operator).
    pub changed: bool,
}

/// Grants (`grant`) or revokes operator rights of the live account whose phone or username is `login`: the
/// command-line operator step, never reachable through the API or the panel. A revocation also ends the
/// account's panel sessions; each change is written to the audit log (operator: the command line).
/// Returns `None` when no live account has that phone or username.
pub async fn set_operator(db: &db::Db, login: &str, grant: bool) -> Result<Option<OperatorChange>, libsql::Error> {
    let conn = db.conn().await?;
    let tx = conn.write_tx().await?;
    // The account a login names, as sign-in finds it.
    let found = match crate::auth::LoginName::parse(login) {
        crate::auth::LoginName::Phone(digits) => db::users::find_login_by_phone(&tx, &digits).await?,
        crate::auth::LoginName::Username(lower) => db::users::find_login_by_username(&tx, &lower).await?,
    };
    let Some(user_id) = found.map(|f| f.id) else {
        return Ok(None);
    };
    let changed = db::admin::set_admin(&tx, user_id, grant).await?;
    if !grant {
        db::admin::delete_sessions_of_user(&tx, user_id).await?;
    }
    if changed {
        let action = if grant { "grant_admin" } else { "revoke_admin" };
        let entry = AuditEntry { admin_id: None, action, target_kind: "user", target_id: user_id };
        db::admin::audit(&tx, entry, crate::time::now_ms()).await?;
    }
    tx.commit().await?;
    Ok(Some(OperatorChange { user_id, changed }))
}
