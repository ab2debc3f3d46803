//! Presence: the `presence` frames a user's peers get, with the user's privacy settings applied, and
//! who those peers are.

use crate::db::{connections, messages, users};
use crate::realtime::transport::Target;
use crate::state::AppState;
use wire::ws::{Presence, ServerEvent};

/// The `presence` frames for `user_id`, one per connection of its peers. None when the user is deleted or
/// hides the online status (§4.2: the timing of presence events would reveal it); `last_seen` only when
/// the user shows it.
pub async fn targets(state: &AppState, user_id: i64) -> Vec<Target> {
    let result = async {
        let conn = state.db.conn().await?;
        let Some(user) = users::find(&conn, user_id).await? else { return Ok(Vec::new()) };
        let online = connections::of_users(&conn, &[user_id]).await?.iter().any(|c| c.live);
        let (show_online, show_seen) = (user.privacy.show_online_status, user.privacy.show_last_seen);
        if user.is_deleted || !show_online {
            return Ok(Vec::new());
        }
        let peers = messages::peers_of(&conn, user_id).await?;
        let payload = ServerEvent::Presence(Presence {
            user_id,
            is_online: show_online.then_some(online),
            last_seen: if show_seen { user.last_seen.map(crate::time::format_ms) } else { None },
        })
        .to_frame();
        let conns = connections::of_users(&conn, &peers).await?;
        // Connections whose session ended get nothing (closing them is the pushes' job, not presence's).
        Ok::<_, libsql::Error>(conns.into_iter().filter(|c| c.live).map(|c| (c.id, payload.clone())).collect())
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::warn!(error = ?e, "presence not computed");
        Vec::new()
    })
}
