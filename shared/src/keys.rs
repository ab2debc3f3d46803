//! Shared pieces of the end-to-end encryption key directory (API.md §9): base64 as the contract wants it,
//! `key_change` events and device removal.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::db;
use crate::error::ApiError;
use crate::realtime;
use crate::state::AppState;
use wire::ws::{KeyChange, KeyChangeKind, ServerEvent};

/// Standard alphabet; padding optional on input, always written on output; non-canonical trailing bits
/// are rejected.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes standard base64 (padding optional).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    // No trimming: what is stored verbatim (envelopes) must decode the same in every client.
    B64.decode(text).ok()
}

/// Encodes standard base64 with padding.
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Sends `key_change` for (`user_id`, `device_id`) to the owner's other devices and to every user sharing a
/// conversation with the owner.
pub async fn broadcast_key_change(state: &AppState, user_id: i64, device_id: &str, change: KeyChangeKind) {
    let peers = match state.db.conn().await {
        Ok(conn) => db::messages::peers_of(&conn, user_id).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let payload = ServerEvent::KeyChange(KeyChange { user_id, device_id: device_id.to_owned(), change }).to_frame();
    let mut targets = Vec::new();
    if let Ok(conn) = state.db.conn().await {
        let mut users = peers;
        users.push(user_id);
        for c in db::connections::of_users(&conn, &users).await.unwrap_or_default() {
            if c.live && !(c.user_id == user_id && c.device_id == device_id) {
                targets.push((c.id, payload.clone()));
            }
        }
    }
    realtime::push(state, targets).await;
}

/// Deletes the rows of a device and its keys inside a caller's transaction, and queues the purge of its
/// envelopes; run [`crate::bulk::finish_queued`] after the commit.
pub async fn delete_device_rows(tx: &crate::db::Conn, user_id: i64, device_id: &str) -> Result<(), ApiError> {
    db::devices::delete_with_keys(tx, user_id, device_id, crate::time::now_ms()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_padding_is_optional_but_encodings_must_be_canonical() {
        assert_eq!(decode("AAE=").unwrap(), vec![0, 1]);
        assert_eq!(decode("AAE").unwrap(), vec![0, 1]);
        assert!(decode("AAF=").is_none(), "non-zero trailing bits");
        assert!(decode("A-E=").is_none(), "url-safe alphabet");
        assert_eq!(encode(&[0, 1]), "AAE=");
        assert!(decode(" AAE=").is_none() && decode("AAE=\n").is_none(), "no surrounding whitespace");
    }

    proptest::proptest! {
        #[test]
        fn encodings_round_trip_with_or_without_padding(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let text = encode(&bytes);
            proptest::prop_assert_eq!(decode(&text), Some(bytes.clone()));
            proptest::prop_assert_eq!(decode(text.trim_end_matches('=')), Some(bytes));
        }

        #[test]
        fn whatever_decodes_is_the_canonical_encoding(text in "[A-Za-z0-9+/= \\-_]{0,24}") {
            if let Some(bytes) = decode(&text) {
                // Accepted text is the canonical encoding, padding optional: no other spelling of the bytes.
                let canonical = encode(&bytes);
                proptest::prop_assert_eq!(canonical.trim_end_matches('='), text.trim_end_matches('='));
            }
        }
    }
}
