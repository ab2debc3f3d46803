//! The contract's error codes (API.md §1.1) and the error body every non-2xx response carries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One failed field check of a 422 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The request field that failed (`body` for a body that is not JSON).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The body of every error response: `{"detail", "code"}`, plus `errors` on a 422 `validation_error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable message (the original backend's text where one existed).
    pub detail: String,
    /// Stable machine code, one of [`ErrorCode`].
    pub code: ErrorCode,
    /// The failed fields of a 422 `validation_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $status:literal $code:literal $detail:literal,)*) => {
        /// Every error code of the REST API, with its HTTP status and default detail.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The HTTP status this code is answered with.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// The wire form (`"phone_taken"`).
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The default `detail` text.
            pub const fn detail(self) -> &'static str {
                match self { $(ErrorCode::$variant => $detail,)* }
            }
        }
    };
}

error_codes! {
    /// No or blank `Authorization` header.
    NotAuthenticated = 401 "not_authenticated" "Not authenticated",
    /// Bad signature, expired, revoked, user gone.
    InvalidToken = 401 "invalid_token" "Could not validate credentials",
    /// Unknown route.
    NotFound = 404 "not_found" "Not Found",
    /// The path exists with other methods.
    MethodNotAllowed = 405 "method_not_allowed" "Method Not Allowed",
    /// Body or file above its limit.
    PayloadTooLarge = 413 "payload_too_large" "Payload too large",
    /// Too many requests; `Retry-After` tells when to retry.
    RateLimited = 429 "rate_limited" "Too many requests",
    /// Field or schema validation failed; `errors` names the fields.
    ValidationError = 422 "validation_error" "Request validation failed",
    /// Unexpected server failure; never carries internals.
    InternalError = 500 "internal_error" "Internal server error",
    /// The database is overloaded or unreachable for now; `Retry-After` tells when to retry.
    ServiceUnavailable = 503 "service_unavailable" "Service temporarily unavailable, retry later",
    /// Registration with a phone that already has an account.
    PhoneTaken = 400 "phone_taken" "Phone number already registered",
    /// Unknown account, deleted account or wrong password (the original's text).
    InvalidCredentials = 401 "invalid_credentials" "Логин или пароль неверен",
    /// Login of a banned account.
    AccountBanned = 403 "account_banned" "Account is banned",
    /// Password change with a wrong current password.
    WrongPassword = 403 "wrong_password" "Current password is incorrect",
    /// A destructive action (account deletion, identity key replacement) without the account's password.
    InvalidPassword = 403 "invalid_password" "Password is incorrect",
    /// Username taken by another account (case-insensitively).
    UsernameTaken = 400 "username_taken" "Username already taken",
    /// Username outside the rules of API.md §4.1.
    InvalidUsername = 422 "invalid_username" "Username must be 5-32 letters, digits or underscores and start with a letter",
    /// Unknown privacy value.
    InvalidPrivacyValue = 400 "invalid_privacy_value" "Invalid avatar_visibility value",
    /// `avatar_visibility_exceptions` not a list of user ids.
    InvalidExceptions = 400 "invalid_exceptions" "Invalid avatar_visibility_exceptions format",
    /// Unknown avatar frame.
    InvalidFrame = 400 "invalid_frame" "Invalid frame. Must be one of: none, fire, rainbow, purple",
    /// Unknown preset avatar.
    InvalidAvatarId = 400 "invalid_avatar_id" "Invalid avatar ID",
    /// Not a JPEG, PNG, GIF or WebP by its magic bytes.
    InvalidImage = 400 "invalid_image" "File must be an image",
    /// No such (or deleted) user.
    UserNotFound = 404 "user_not_found" "User not found",
    /// Message id ≤ 0.
    InvalidMessageId = 400 "invalid_message_id" "Invalid message ID",
    /// Missing, not the caller's conversation, or already invisible to the caller.
    MessageNotFound = 404 "message_not_found" "Message not found",
    /// A recipient asked to delete for everyone.
    NotMessageSender = 403 "not_message_sender" "You can only delete your own messages",
    /// No such theme of the caller.
    ThemeNotFound = 404 "theme_not_found" "Theme not found",
    /// 50 themes already.
    ThemeLimit = 409 "theme_limit" "Theme limit reached",
    /// A file reference the caller does not own.
    InvalidMedia = 400 "invalid_media" "Invalid media reference",
    /// No such or deleted contact.
    ContactNotFound = 404 "contact_not_found" "Contact not found",
    /// A local name for oneself.
    SelfContact = 400 "self_contact" "Cannot set local name for yourself",
    /// The user registered without a legacy public key.
    NoPublicKey = 404 "no_public_key" "User does not have a public key",
    /// A key signature does not verify.
    InvalidSignature = 400 "invalid_signature" "Key signature is invalid",
    /// More than 100 one-time keys per request or unclaimed per device.
    TooManyOneTimeKeys = 400 "too_many_one_time_keys" "Too many one-time keys",
    /// A one-time key id already used by this device.
    KeyIdConflict = 409 "key_id_conflict" "One-time key id already used",
    /// An MLS key package that does not parse or verify, or is not the caller device's (API.md §15.1).
    InvalidKeyPackage = 400 "invalid_key_package" "Invalid key package",
    /// More than 100 MLS key packages per request or unclaimed per device.
    TooManyKeyPackages = 400 "too_many_key_packages" "Too many key packages",
    /// MLS key packages of a device that has not uploaded its identity keys (API.md §9.2).
    NoDeviceKeys = 409 "no_device_keys" "Upload device keys first",
    /// No such group, or the caller is not a member (API.md §15.2).
    GroupNotFound = 404 "group_not_found" "Group not found",
    /// A group action for admins only.
    NotGroupAdmin = 403 "not_group_admin" "Only group admins can do this",
    /// `POST /groups` with an MLS group id already taken.
    GroupExists = 409 "group_exists" "Group already exists",
    /// The caller is in 100 groups already.
    TooManyGroups = 400 "too_many_groups" "Too many groups",
    /// A commit or message for an epoch the group has left (API.md §15.3).
    StaleEpoch = 409 "stale_epoch" "Group epoch has moved on",
    /// An MLS object that does not parse, or is not what the endpoint takes (type, group, content type).
    InvalidMlsMessage = 400 "invalid_mls_message" "Invalid MLS message",
    /// A commit that leaves out a pending removal.
    PendingRemovals = 409 "pending_removals" "The commit must remove every pending removal",
    /// An added device that does not exist or is not its user's, or a removed one that is not in the group.
    InvalidMember = 400 "invalid_member" "Invalid group member",
    /// A commit that would take the group past 1 000 member devices.
    GroupFull = 400 "group_full" "Group is full",
    /// No such welcome for the caller's device.
    WelcomeNotFound = 404 "welcome_not_found" "Welcome not found",
    /// No such device of the caller.
    DeviceNotFound = 404 "device_not_found" "Device not found",
    /// Every device of the account has keys and the cap is reached.
    TooManyDevices = 409 "too_many_devices" "Too many devices: remove one with DELETE /devices/{device_id}",
    /// A plain HTTP request to the WebSocket endpoint.
    UpgradeRequired = 426 "upgrade_required" "WebSocket upgrade required: connect with a WebSocket client",
    /// A WebSocket function called with an event that is not a WebSocket event.
    NotWebsocket = 400 "not_websocket" "Not a WebSocket event",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_form() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }
}
