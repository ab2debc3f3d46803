//! The objects several endpoints and events share (API.md §2, §3).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The token response of register, login and password change (API.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// HS256 JWT for `Authorization: Bearer`; the only field the original client reads.
    pub access_token: String,
    /// Always `"bearer"`.
    pub token_type: String,
    /// Lifetime of the token in seconds.
    pub expires_in: i64,
    /// The account's id.
    pub user_id: i64,
    /// The device this token is bound to.
    pub device_id: String,
}

/// An avatar frame (API.md §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AvatarFrameId {
    /// No frame: chosen as `none`, stored and answered as null.
    None,
    /// Fire.
    Fire,
    /// Rainbow.
    Rainbow,
    /// Purple.
    Purple,
}

crate::names!(AvatarFrameId { None => "none", Fire => "fire", Rainbow => "rainbow", Purple => "purple" });

/// The user object (`UserResponse`, API.md §3.1): the self view or a public view with privacy applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Immutable id, never reused.
    pub id: i64,
    /// Username (§4.1), or null.
    pub username: Option<String>,
    /// First name; null only for deleted accounts.
    pub first_name: Option<String>,
    /// Last name; null only for deleted accounts.
    pub last_name: Option<String>,
    /// Phone digits; others see it only per `phone_visibility`.
    pub phone: Option<String>,
    /// Legacy public key from registration.
    pub public_key: Option<String>,
    /// Presigned S3 URL or preset URL; others per `avatar_visibility`.
    pub avatar_url: Option<String>,
    /// Frame id (§10.1); null = no frame.
    pub avatar_frame: Option<AvatarFrameId>,
    /// At most 500 characters.
    pub bio: Option<String>,
    /// `YYYY-MM-DD`.
    pub birthdate: Option<String>,
    /// When the user's last connection closed (RFC 3339 UTC); per `show_last_seen`.
    pub last_seen: Option<String>,
    /// True while at least one WebSocket connection is open; per `show_online_status`.
    pub is_online: Option<bool>,
    /// `/chats/active` only: `encrypted_content` of the latest message visible to the caller.
    pub last_message: Option<String>,
    /// `/chats/active` only: its timestamp.
    pub last_message_time: Option<String>,
    /// `/chats/active` only: its sender.
    pub last_message_sender_id: Option<i64>,
    /// `/chats/active` only: its type.
    pub last_message_type: Option<MessageType>,
    /// The caller's private name for this user (§5.8).
    pub local_name: Option<String>,
    /// True for a deleted account: every other field is null.
    pub is_deleted: bool,
}

impl User {
    /// The stub shown for a deleted account: every field but `id` null.
    pub fn deleted(id: i64) -> Self {
        Self { id, is_deleted: true, ..Self::default() }
    }
}

/// Kinds of message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// Text (the default).
    #[default]
    Text,
    /// An image attachment.
    Image,
    /// Any other attachment.
    File,
}

crate::names!(MessageType { Text => "text", Image => "image", File => "file" });

/// The message object (API.md §3.2) as one viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// Strictly increasing id, below 10^12.
    pub id: i64,
    /// Sender (a deleted sender keeps its id).
    pub sender_id: i64,
    /// Receiver.
    pub receiver_id: i64,
    /// Opaque to the server; never null.
    pub encrypted_content: String,
    /// `text`, `image` or `file`.
    pub message_type: MessageType,
    /// Fresh presigned GET URL for the caller, or null.
    pub media_url: Option<String>,
    /// The message this one replies to (may since be deleted).
    pub reply_to_message_id: Option<i64>,
    /// Server time of storage (RFC 3339 UTC, milliseconds).
    pub timestamp: String,
    /// Received messages: their read state; sent messages: the state only when both users show read
    /// receipts, otherwise null.
    pub is_read: Option<bool>,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// The device that sent it.
    pub sender_device_id: Option<String>,
    /// Ciphertext addressed to the caller's device (§9.3), base64.
    pub envelope: Option<String>,
}

/// Who sees the avatar (API.md §4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AvatarVisibility {
    /// Everyone (default).
    #[default]
    All,
    /// Contacts of the owner (§4.2).
    Contacts,
    /// No one.
    Nobody,
    /// Everyone except the listed ids.
    Except,
}

crate::names!(AvatarVisibility { All => "all", Contacts => "contacts", Nobody => "nobody", Except => "except" });

/// Who sees the phone number (API.md §4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhoneVisibility {
    /// Everyone.
    All,
    /// Contacts of the owner.
    Contacts,
    /// No one (default).
    #[default]
    Nobody,
}

crate::names!(PhoneVisibility { All => "all", Contacts => "contacts", Nobody => "nobody" });

/// A `{"message": "..."}` confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageText {
    /// Fixed confirmation text.
    pub message: String,
}
