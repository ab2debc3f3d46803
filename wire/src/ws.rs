//! The WebSocket protocol (API.md §7): client actions routed by `action`, server events as
//! `{"event", "data"}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::objects::{Message, MessageType};

/// A user id as the original Socket.IO server read it: a JSON integer, or its decimal text (it called
/// `int()` on the value). Anything else is the `invalid_id` error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LooseId {
    /// A JSON integer.
    Int(i64),
    /// Decimal text, as the original server accepted.
    Text(String),
}

impl LooseId {
    /// The id, if it is an integer or decimal text.
    pub fn get(&self) -> Option<i64> {
        match self {
            Self::Int(id) => Some(*id),
            Self::Text(text) => text.trim().parse().ok(),
        }
    }
}

impl From<i64> for LooseId {
    fn from(id: i64) -> Self {
        Self::Int(id)
    }
}

/// Ciphertext for one device (API.md §9.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Envelope {
    /// The receiver or the sender.
    pub user_id: i64,
    /// One of that user's devices.
    pub device_id: String,
    /// Standard base64.
    pub ciphertext: String,
}

/// `send_message`: store a message and fan it out. Every field is optional in the type so that each
/// failure gets the `error` code of API.md §7.3 (noted per field) instead of a generic decode error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SendMessage {
    /// The receiver (integer; decimal text is accepted as the original server did). Anything else is
    /// `invalid_id`; absent or null is `missing_fields`.
    #[serde(default)]
    pub receiver_id: Option<LooseId>,
    /// Opaque ciphertext, 1 B – 64 KiB. Absent, null, empty or not a string is `missing_fields`.
    #[serde(default)]
    pub encrypted_content: Option<String>,
    /// Default (also for null) `text`; anything else is `invalid_message_type`.
    #[serde(default)]
    pub message_type: Option<MessageType>,
    /// An object key or a URL we issued, owned by the sender; empty means none. Else `invalid_media`.
    #[serde(default)]
    pub media_url: Option<String>,
    /// A message visible to the sender in the same conversation (integer; decimal text is accepted as
    /// the original server did). Anything else, or no such message, is `reply_not_found`.
    #[serde(default)]
    pub reply_to_message_id: Option<LooseId>,
    /// 1–64 chars of `[A-Za-z0-9_-]`, else `invalid_client_msg_id`; a repeat within 24 h only repeats
    /// `message_sent`.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// At most 50 per-device ciphertexts for devices of the receiver or the sender, else
    /// `invalid_envelope`.
    #[serde(default)]
    pub envelopes: Option<Vec<Envelope>>,
}

/// `typing`: relayed to the receiver when they share a conversation; a frame that does not fit is
/// dropped silently, as the original server ignored bad input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Typing {
    /// The receiver (integer; decimal text is accepted as the original server did).
    pub receiver_id: LooseId,
    /// Started or stopped (a JSON boolean).
    pub is_typing: bool,
}

/// `mark_read`: as `POST /chats/{peer_id}/mark-read`, without an acknowledgement; a missing or
/// non-integer id is `invalid_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarkRead {
    /// The peer whose messages were read (integer; decimal text is accepted as for `send_message`).
    pub peer_id: LooseId,
    /// Only messages up to this id (integer or decimal text).
    #[serde(default)]
    pub up_to_id: Option<LooseId>,
}

/// `send_group_message` (API.md §15.4): an MLS application message for a group. Fields are optional in the
/// type so that each failure gets its `error` code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SendGroupMessage {
    /// The group's server id (decimal text accepted); not an integer is `invalid_id`, absent `missing_fields`.
    #[serde(default)]
    pub group_id: Option<LooseId>,
    /// A `PrivateMessage` (content type application) of this group at its current epoch or the one before,
    /// base64, at most 64 KiB; absent or empty is `missing_fields`.
    #[serde(default)]
    pub ciphertext: Option<String>,
    /// 1–64 chars of `[A-Za-z0-9_-]`, else `invalid_client_msg_id`; a repeat within 24 h only repeats
    /// `group_message_sent`.
    #[serde(default)]
    pub client_msg_id: Option<String>,
}

/// Why a frame has no action to perform (API.md §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Answered with an `error` event of this code.
    Error(WsErrorCode),
    /// Dropped without an answer: bad `typing` input, which the original server ignored too.
    Dropped,
}

/// Deserializes one action's fields from a JSON frame (its `action` is ignored); on failure, the top-level
/// field that failed (empty when the frame itself did).
fn fields<T: serde::de::DeserializeOwned>(frame: &[u8]) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(frame);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| match e.path().iter().next() {
        Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
        _ => String::new(),
    })
}

/// Declares the client actions once: the [`ClientAction`] enum, each action's name (its API Gateway route
/// key), and how a frame whose field fails to decode is refused — per field (named as in its input type, so
/// a renamed field fails to compile), then for any other failure.
macro_rules! client_actions {
    ($(
        $(#[$doc:meta])*
        $variant:ident $(($input:ident { $($field:ident => $refusal:expr,)* _ => $otherwise:expr $(,)? }))? = $name:literal,
    )*) => {
        /// Every client → server frame, routed by `action` (route selection `$request.body.action`).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(tag = "action", rename_all = "snake_case")]
        pub enum ClientAction {
            $($(#[$doc])* $variant $(($input))?,)*
        }

        impl ClientAction {
            /// Every action's name: the routes of `ws-message` in `template.yaml` besides `$default`.
            pub const NAMES: &[&str] = &[$($name),*];

            /// The `action` name.
            pub const fn name(&self) -> &'static str {
                match self {
                    $(client_actions!(@pattern $variant $($input)?) => $name,)*
                }
            }

            /// Decodes the frame API Gateway routed to `route_key` into its action (API.md §7.2–7.3): an action
            /// without fields reads none, unparsable JSON is `invalid_json`, `$default` (no or an unknown
            /// `action`) `unknown_action`, and a field of the wrong type is refused as declared for it.
            pub fn decode(route_key: &str, frame: &[u8]) -> Result<Self, Refused> {
                #[allow(unused_imports)]
                use {Refused::{Dropped, Error}, WsErrorCode::*};
                $(client_actions!(@fieldless route_key, $name, $variant $($input)?);)*
                if serde_json::from_slice::<serde::de::IgnoredAny>(frame).is_err() {
                    return Err(Error(InvalidJson));
                }
                match route_key {
                    $($($name => fields::<$input>(frame).map(Self::$variant).map_err(|field| {
                        // Each named field exists in the input type.
                        let _ = |_input: &$input| { $(let _ = &_input.$field;)* };
                        match field.as_str() {
                            $(stringify!($field) => $refusal,)*
                            _ => $otherwise,
                        }
                    }),)?)*
                    _ => Err(Error(UnknownAction)),
                }
            }
        }
    };
    (@pattern $variant:ident) => { Self::$variant };
    (@pattern $variant:ident $input:ident) => { Self::$variant(_) };
    (@fieldless $route:ident, $name:literal, $variant:ident) => {
        if $route == $name {
            return Ok(Self::$variant);
        }
    };
    (@fieldless $route:ident, $name:literal, $variant:ident $input:ident) => {};
}

client_actions! {
    /// Send a message.
    SendMessage(SendMessage {
        receiver_id => Error(InvalidId),
        message_type => Error(InvalidMessageType),
        media_url => Error(InvalidMedia),
        reply_to_message_id => Error(ReplyNotFound),
        client_msg_id => Error(InvalidClientMsgId),
        envelopes => Error(InvalidEnvelope),
        // `encrypted_content` that is not a string counts as missing.
        _ => Error(MissingFields),
    }) = "send_message",
    /// Typing indicator.
    Typing(Typing { _ => Dropped }) = "typing",
    /// Read receipt.
    MarkRead(MarkRead { _ => Error(InvalidId) }) = "mark_read",
    /// Keep-alive; answered with `pong`.
    Ping = "ping",
    /// Send an MLS application message to a group.
    SendGroupMessage(SendGroupMessage {
        group_id => Error(InvalidId),
        client_msg_id => Error(InvalidClientMsgId),
        _ => Error(MissingFields),
    }) = "send_group_message",
}

macro_rules! ws_error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal $message:literal,)*) => {
        /// The codes of WebSocket `error` events (API.md §7.3), with their message texts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum WsErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl WsErrorCode {
            /// The wire form.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }

            /// The message text (the original server's where one existed).
            pub const fn message(self) -> &'static str {
                match self { $(Self::$variant => $message,)* }
            }
        }
    };
}

ws_error_codes! {
    /// `receiver_id` or `encrypted_content` absent or empty.
    MissingFields = "missing_fields" "Missing receiver_id or encrypted_content",
    /// `receiver_id` not an integer.
    InvalidId = "invalid_id" "Invalid user ID format",
    /// Receiver = sender.
    SelfMessage = "self_message" "Cannot send message to yourself",
    /// Unknown or deleted receiver.
    ReceiverNotFound = "receiver_not_found" "Receiver not found",
    /// Reply target missing, invisible, or in another conversation.
    ReplyNotFound = "reply_not_found" "Reply message not found",
    /// Content or envelopes above the limits.
    PayloadTooLarge = "payload_too_large" "Message too large",
    /// Not `text`, `image` or `file`.
    InvalidMessageType = "invalid_message_type" "Invalid message_type",
    /// A file reference the sender does not own.
    InvalidMedia = "invalid_media" "Invalid media reference",
    /// An envelope for a stranger's or unknown device, a duplicate, or bad base64.
    InvalidEnvelope = "invalid_envelope" "Invalid envelope",
    /// Too many messages.
    RateLimited = "rate_limited" "Rate limit exceeded",
    /// Not 1–64 chars of `[A-Za-z0-9_-]`.
    InvalidClientMsgId = "invalid_client_msg_id" "Invalid client_msg_id",
    /// Token revoked mid-connection; the connection is closed.
    Unauthorized = "unauthorized" "Unauthorized",
    /// Storage failure.
    InternalError = "internal_error" "Failed to send message",
    /// The database is overloaded for now; nothing was done, the action may be retried.
    ServiceUnavailable = "service_unavailable" "Service temporarily unavailable, retry later",
    /// The frame is not JSON.
    InvalidJson = "invalid_json" "Invalid JSON",
    /// No such action.
    UnknownAction = "unknown_action" "Unknown action",
    /// No such group, or the sending device is not a member (API.md §15.4).
    GroupNotFound = "group_not_found" "Group not found",
    /// A group message for an epoch older than the one before the group's current one.
    StaleEpoch = "stale_epoch" "Group epoch has moved on",
    /// A group message that is not an application message of this group.
    InvalidMlsMessage = "invalid_mls_message" "Invalid MLS message",
}

/// `message_sent` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageSent {
    /// The stored message's id.
    pub message_id: i64,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// Server time of storage.
    pub timestamp: String,
}

/// `messages_read` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessagesRead {
    /// Ids newly read, ascending.
    pub message_ids: Vec<i64>,
    /// Who read them.
    pub reader_id: i64,
}

/// `typing` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TypingEvent {
    /// Who is typing.
    pub sender_id: i64,
    /// Started or stopped.
    pub is_typing: bool,
}

/// `error` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEvent {
    /// Human-readable text.
    pub message: String,
    /// Stable code.
    pub code: WsErrorCode,
    /// The `client_msg_id` of the frame that failed.
    pub client_msg_id: Option<String>,
}

impl ErrorEvent {
    /// The event for `code` with its message text.
    pub fn new(code: WsErrorCode, client_msg_id: Option<String>) -> Self {
        Self { message: code.message().to_owned(), code, client_msg_id }
    }
}

/// `message_deleted` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageDeleted {
    /// The message.
    pub message_id: i64,
    /// The other user, from the recipient's point of view.
    pub peer_id: i64,
    /// Deleted for both users.
    pub for_everyone: bool,
}

/// `chat_cleared` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = ChatClearedEvent)]
pub struct ChatCleared {
    /// The other user, from the recipient's point of view.
    pub peer_id: i64,
    /// Cleared for both users.
    pub for_everyone: bool,
    /// Messages up to this id were cleared.
    pub up_to_id: i64,
}

/// `presence` data, privacy applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Presence {
    /// Whose presence.
    pub user_id: i64,
    /// Online state, or null when hidden.
    pub is_online: Option<bool>,
    /// Last disconnect, or null when hidden.
    pub last_seen: Option<String>,
}

/// What happened to a device's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyChangeKind {
    /// First key upload of the device.
    Added,
    /// The device's identity key changed.
    IdentityChanged,
    /// The device was removed.
    Removed,
}

impl KeyChangeKind {
    /// The wire form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::IdentityChanged => "identity_changed",
            Self::Removed => "removed",
        }
    }
}

/// `key_change` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyChange {
    /// The device's owner.
    pub user_id: i64,
    /// The device.
    pub device_id: String,
    /// What happened.
    pub change: KeyChangeKind,
}

/// `pong` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pong {
    /// Server time.
    pub time: String,
}

/// `group_message_sent` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupMessageSent {
    /// The stored message's id.
    pub message_id: i64,
    /// The sender's id for it, if it gave one.
    pub client_msg_id: Option<String>,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

/// `group_updated` data (API.md §15.5): `name` after a rename, `left` after members left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupUpdated {
    /// The group's server id.
    pub group_id: i64,
    /// The new name (null: removed); present after a rename only.
    #[serde(default, deserialize_with = "crate::present", skip_serializing_if = "Option::is_none")]
    pub name: Option<Option<String>>,
    /// The devices that left the routing table; present after a leave only. The group's next commit must
    /// remove their leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<Vec<crate::mls::MemberDevice>>,
}

/// `group_commit` data: a commit other members must merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupCommitEvent {
    /// The group's server id.
    pub group_id: i64,
    /// The epoch the commit created.
    pub epoch: i64,
    /// The commit `MLSMessage`, base64; null when over 64 KiB (fetch it with `GET /groups/{id}/commits`).
    pub commit: Option<String>,
    /// The committer.
    pub sender_id: i64,
    /// The committer's device.
    pub sender_device_id: String,
}

/// `group_welcome` data: this device was added to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupWelcomeEvent {
    /// Acknowledge it with `DELETE /mls/welcomes/{id}`.
    pub welcome_id: i64,
    /// The group as the commit left it.
    pub group: crate::mls::Group,
    /// The epoch the welcome is for.
    pub epoch: i64,
    /// The `Welcome`, base64; null when over 64 KiB (fetch it with `GET /mls/welcomes`).
    pub welcome: Option<String>,
}

/// Every server → client frame: `{"event": "<name>", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ServerEvent {
    /// A message for this device (receiver's connections and the sender's other connections).
    NewMessage(Message),
    /// The sending connection's acknowledgement.
    MessageSent(MessageSent),
    /// Read receipts.
    MessagesRead(MessagesRead),
    /// Typing indicator.
    Typing(TypingEvent),
    /// An action failed.
    Error(ErrorEvent),
    /// A message was deleted.
    MessageDeleted(MessageDeleted),
    /// A chat was cleared.
    ChatCleared(ChatCleared),
    /// A peer went online or offline.
    Presence(Presence),
    /// A device's keys changed.
    KeyChange(KeyChange),
    /// Answer to `ping`.
    Pong(Pong),
    /// A group was renamed or members left it (API.md §15.5).
    GroupUpdated(GroupUpdated),
    /// A commit to a group this device is (or was, until this commit) a member of.
    GroupCommit(GroupCommitEvent),
    /// This device was added to a group.
    GroupWelcome(GroupWelcomeEvent),
    /// A group message for this device.
    NewGroupMessage(crate::mls::GroupMessage),
    /// The sending connection's acknowledgement of a group message.
    GroupMessageSent(GroupMessageSent),
}

impl ServerEvent {
    /// The serialized frame.
    pub fn to_frame(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_routed_by_their_action_field() {
        let a: ClientAction = serde_json::from_str(r#"{"action":"typing","receiver_id":2,"is_typing":true}"#).unwrap();
        assert_eq!(a, ClientAction::Typing(Typing { receiver_id: LooseId::Int(2), is_typing: true }));
        let a: ClientAction = serde_json::from_str(r#"{"action":"ping"}"#).unwrap();
        assert_eq!(a.name(), "ping");
        assert!(serde_json::from_str::<ClientAction>(r#"{"action":"fly"}"#).is_err());
    }

    #[test]
    fn the_declared_names_are_the_action_tags() {
        for name in ClientAction::NAMES {
            let tagged = serde_json::json!({"action": name});
            if let Err(e) = serde_json::from_value::<ClientAction>(tagged) {
                assert!(!e.to_string().contains("unknown variant"), "{name}: {e}");
            }
        }
        let e = serde_json::from_value::<ClientAction>(serde_json::json!({"action": "fly"})).unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "the check above can fail: {e}");
        let ping: ClientAction = serde_json::from_str(r#"{"action":"ping"}"#).unwrap();
        assert_eq!(ClientAction::decode(ping.name(), b"{}"), Ok(ping));
    }

    #[test]
    fn events_carry_event_and_data() {
        let e = ServerEvent::Pong(Pong { time: "t".into() });
        assert_eq!(e.to_frame(), r#"{"event":"pong","data":{"time":"t"}}"#);
        let e = ServerEvent::Error(ErrorEvent::new(WsErrorCode::InvalidJson, None));
        let v: serde_json::Value = serde_json::from_str(&e.to_frame()).unwrap();
        assert_eq!(v["data"]["code"], "invalid_json");
        assert_eq!(v["data"]["message"], "Invalid JSON");
    }

    #[test]
    fn loose_ids_accept_integers_and_decimal_text_only() {
        assert_eq!(serde_json::from_str::<LooseId>("7").unwrap().get(), Some(7));
        assert_eq!(serde_json::from_str::<LooseId>(r#"" 7""#).unwrap().get(), Some(7));
        assert_eq!(serde_json::from_str::<LooseId>(r#""x""#).unwrap().get(), None);
        assert!(serde_json::from_str::<LooseId>("true").is_err());
    }
}
