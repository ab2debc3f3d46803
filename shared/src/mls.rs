//! What the Delivery Service reads of MLS messages (API.md §15): the plaintext header of handshake and
//! application messages, parsed with `openmls`. No group secret and no signature check: membership crypto is
//! the clients' job, the server orders and routes.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{ContentType, MlsMessageBodyIn, MlsMessageIn};

use crate::error::ApiError;
use wire::ErrorCode;

/// The plaintext header of a `PublicMessage` or `PrivateMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The epoch it was made in.
    pub epoch: u64,
    /// What it carries.
    pub kind: Kind,
}

/// The content type of a protocol message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An application message.
    Application,
    /// A proposal.
    Proposal,
    /// A commit.
    Commit,
}

/// Parses an `MLSMessage` that must be a `PublicMessage` or `PrivateMessage` of a member (not of an external
/// sender); anything else is 400 `invalid_mls_message`.
pub fn protocol_header(bytes: &[u8]) -> Result<Header, ApiError> {
    let invalid = || ApiError::code(ErrorCode::InvalidMlsMessage);
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| invalid())?;
    let message = message.try_into_protocol_message().map_err(|_| invalid())?;
    if message.is_external() {
        return Err(invalid());
    }
    let kind = match message.content_type() {
        ContentType::Application => Kind::Application,
        ContentType::Proposal => Kind::Proposal,
        ContentType::Commit => Kind::Commit,
    };
    Ok(Header { group_id: message.group_id().as_slice().to_vec(), epoch: message.epoch().as_u64(), kind })
}

/// Whether `bytes` is an `MLSMessage` carrying a `Welcome`.
pub fn is_welcome(bytes: &[u8]) -> bool {
    MlsMessageIn::tls_deserialize_exact(bytes).is_ok_and(|m| matches!(m.extract(), MlsMessageBodyIn::Welcome(_)))
}

/// A stored group message as the wire has it.
pub fn group_message(m: crate::db::mls_groups::MessageRow) -> wire::mls::GroupMessage {
    wire::mls::GroupMessage {
        id: m.id,
        group_id: m.group_id,
        sender_id: m.sender_id,
        sender_device_id: m.sender_device_id,
        epoch: m.epoch,
        ciphertext: m.ciphertext,
        client_msg_id: m.client_msg_id,
        timestamp: crate::time::format_ms(m.created_at),
    }
}

/// Sends `event` to every live connection of the member devices `to` (user id, device id).
pub async fn notify(state: &crate::AppState, to: &[(i64, String)], event: &wire::ws::ServerEvent) {
    let mut users: Vec<i64> = to.iter().map(|(u, _)| *u).collect();
    users.sort_unstable();
    users.dedup();
    let Ok(conn) = state.db.conn().await else { return };
    let connections = crate::db::connections::of_users(&conn, &users).await.unwrap_or_default();
    drop(conn);
    let frame = event.to_frame();
    let targets = connections
        .into_iter()
        .filter(|c| c.live && to.iter().any(|(u, d)| *u == c.user_id && *d == c.device_id))
        .map(|c| (c.id, frame.clone()))
        .collect();
    crate::realtime::push(state, targets).await;
}

/// After a device of `user_id` was deleted (alone or with its account): `group_updated` with `left` to the
/// remaining member devices of every group it was in, as a leave does (API.md §15.6).
pub async fn announce_removed_device(state: &crate::AppState, user_id: i64, device_id: &str) {
    let groups = match state.db.conn().await {
        Ok(conn) => {
            let mut out = Vec::new();
            for id in crate::db::mls_groups::pending_groups_of_device(&conn, device_id).await.unwrap_or_default() {
                let members = crate::db::mls_groups::members(&conn, id).await.unwrap_or_default();
                out.push((id, members.into_iter().map(|m| (m.user_id, m.device_id)).collect::<Vec<_>>()));
            }
            out
        }
        Err(_) => return,
    };
    for (group_id, to) in groups {
        let left = vec![wire::mls::MemberDevice { user_id, device_id: device_id.to_owned() }];
        let event =
            wire::ws::ServerEvent::GroupUpdated(wire::ws::GroupUpdated { group_id, name: None, left: Some(left) });
        notify(state, &to, &event).await;
    }
}

/// How long commits and welcomes are kept (API.md §15.3).
pub const HANDSHAKE_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// Deletes the commits and welcomes stored before `cutoff_ms`, in bounded write transactions (the hourly
/// clean-up passes now minus [`HANDSHAKE_TTL_MS`]); returns how many it deleted.
pub async fn expire(state: &crate::AppState, cutoff_ms: i64) -> Result<u64, ApiError> {
    let mut total = 0;
    loop {
        let conn = state.db.conn().await?;
        let tx = conn.write_tx().await?;
        let removed = crate::db::mls_groups::expire_batch(&tx, cutoff_ms, 500).await?;
        tx.commit().await?;
        total += removed;
        if removed == 0 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_invalid_mls_message_and_never_a_panic() {
        for bytes in [&b""[..], b"\x00\x01", b"\x00\x01\x00\x05\x01\x02", &[0xff; 64]] {
            assert_eq!(protocol_header(bytes).unwrap_err().error_code(), ErrorCode::InvalidMlsMessage);
            assert!(!is_welcome(bytes));
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = protocol_header(&bytes);
            let _ = is_welcome(&bytes);
        }
    }
}
