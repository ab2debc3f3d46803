//! Own profile, usernames, privacy, avatars and finding users (API.md §4): the `users` function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoint;
use crate::endpoint::Empty;
use crate::objects::{AvatarFrameId, AvatarVisibility, PhoneVisibility, User};
use crate::{FileUpload, present};

/// `PUT /users/me/username` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetUsernameRequest {
    /// The new username (§4.1: 5–32 of `[A-Za-z0-9_]`, first a letter); trimmed.
    #[schema(pattern = r"^[A-Za-z][A-Za-z0-9_]{4,31}$")]
    pub new_username: String,
}

/// `GET /users/check_availability` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckAvailabilityRequest {
    /// The username to check; trimmed.
    #[schema(max_length = 64)]
    pub username: String,
}

/// Why a username is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnavailableReason {
    /// Another account has it (case-insensitively).
    Taken,
    /// It breaks the rules of §4.1.
    Invalid,
}

/// `GET /users/check_availability` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    /// Whether the caller could take it.
    pub available: bool,
    /// Null when available.
    pub reason: Option<UnavailableReason>,
}

/// `PUT /users/me/profile` input: only given fields change; empty or blank clears.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdateProfileRequest {
    /// At most 500 characters; trimmed. Null or blank clears; absent keeps.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub bio: Option<Option<String>>,
    /// `YYYY-MM-DD` between 1900-01-01 and today. Null or blank clears; absent keeps.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub birthdate: Option<Option<String>>,
}

/// `PUT /users/me/bio` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetBioRequest {
    /// At most 500 characters; missing, null or blank clears.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub bio: Option<String>,
}

/// `PUT /users/me/birthdate` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetBirthdateRequest {
    /// `YYYY-MM-DD` between 1900-01-01 and today; missing, null or blank clears.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub birthdate: Option<String>,
}

/// `GET /users` input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListUsersRequest {
    /// Page size: default 100, capped at 500, at least 1.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Only ids above this one.
    #[serde(default)]
    pub after_id: Option<i64>,
}

/// `GET /users/search` input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchUsersRequest {
    /// Matched case-insensitively and literally against username, names and "first last"; at most 64
    /// characters; under 2 answers `[]`.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub query: Option<String>,
}

/// `GET /users/{user_id}/profile` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GetProfileRequest {
    /// Path: the user.
    pub user_id: i64,
}

/// The caller's privacy settings (API.md §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrivacySettings {
    /// Who sees the avatar.
    pub avatar_visibility: AvatarVisibility,
    /// The exceptions as a JSON-encoded string such as `"[3,17]"` (what the original client decodes), or
    /// null when empty.
    pub avatar_visibility_exceptions: Option<String>,
    /// Reciprocal read receipts.
    pub show_read_receipts: bool,
    /// `last_seen` visible to others.
    pub show_last_seen: bool,
    /// `is_online` visible to others.
    pub show_online_status: bool,
    /// Who sees the phone number.
    pub phone_visibility: PhoneVisibility,
    /// The exceptions as an array of user ids.
    pub avatar_visibility_exception_ids: Vec<i64>,
}

/// `PUT /users/me/privacy` input: every field optional, only given fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdatePrivacyRequest {
    /// `all`, `contacts`, `nobody` or `except`; anything else is a 400 `invalid_privacy_value`.
    #[serde(default)]
    #[schema(value_type = Option<AvatarVisibility>)]
    pub avatar_visibility: Option<String>,
    /// At most 1000 positive user ids: a JSON array, or (as the original client sends it in the query) a
    /// JSON-encoded string such as `"[3,17]"`; `[]` or an empty string clears, null keeps. Any JSON is
    /// accepted here on purpose: whatever is not such a list is the contract's 400 `invalid_exceptions`,
    /// not a 422.
    #[serde(default)]
    #[schema(schema_with = exceptions_schema)]
    pub avatar_visibility_exceptions: Option<serde_json::Value>,
    /// Reciprocal read receipts; in the query `true`/`false` or `1`/`0`.
    #[serde(default)]
    pub show_read_receipts: Option<bool>,
    /// `last_seen` visible to others; in the query `true`/`false` or `1`/`0`.
    #[serde(default)]
    pub show_last_seen: Option<bool>,
    /// `is_online` visible to others; in the query `true`/`false` or `1`/`0`.
    #[serde(default)]
    pub show_online_status: Option<bool>,
    /// `all`, `contacts` or `nobody`; anything else is a 400 `invalid_privacy_value`.
    #[serde(default)]
    #[schema(value_type = Option<PhoneVisibility>)]
    pub phone_visibility: Option<String>,
}

/// The schema of `avatar_visibility_exceptions`: a JSON-encoded list (string), a list of ids, or null.
fn exceptions_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    let id = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1));
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).description(Some("A JSON-encoded list, e.g. \"[3,17]\"")))
        .item(ArrayBuilder::new().items(id).max_items(Some(1000)))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "At most 1000 user ids: a JSON array, or a JSON-encoded string such as \"[3,17]\" (the query form); \
             [] or an empty string clears, null keeps.",
        ))
        .build()
        .into()
}

/// `PUT /users/me/avatar-frame` input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetAvatarFrameRequest {
    /// `none`, `fire`, `rainbow` or `purple`; anything else is `invalid_frame` (a 400, so decoded as text).
    #[serde(default)]
    #[schema(value_type = Option<AvatarFrameId>)]
    pub frame: Option<String>,
}

/// `PUT /users/me/avatar-frame` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvatarFrame {
    /// The stored frame id; `none` is stored and returned as null.
    pub avatar_frame: Option<AvatarFrameId>,
}

/// `PUT /users/me/preset-avatar` input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetPresetAvatarRequest {
    /// A preset id of §10.2 (`"1"` … `"12"`).
    #[serde(default)]
    #[schema(pattern = r"^([1-9]|1[0-2])$")]
    pub avatar_id: Option<String>,
}

/// An avatar URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvatarUrl {
    /// Presigned S3 URL of an upload, or the public URL of a preset.
    pub avatar_url: String,
}

endpoint! {
    /// The caller's own profile.
    GetMe: Get "/me" in "users" {
        op: "get_me", summary: "The caller's own profile (self view)", auth: true, status: 200,
        input: None, output: Json, request: Empty, response: User, errors: [],
    }
}

endpoint! {
    /// Set or change the username.
    SetUsername: Put "/users/me/username" in "users" {
        op: "set_username", summary: "Set or change the username", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: SetUsernameRequest, response: User,
        errors: [UsernameTaken, InvalidUsername],
    }
}

endpoint! {
    /// Whether a username is free.
    CheckAvailability: Get "/users/check_availability" in "users" {
        op: "check_availability", summary: "Whether a username is free", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: CheckAvailabilityRequest, response: Availability, errors: [],
    }
}

endpoint! {
    /// Update bio and birthdate.
    UpdateProfile: Put "/users/me/profile" in "users" {
        op: "update_profile", summary: "Update bio and birthdate", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: UpdateProfileRequest, response: User, errors: [],
    }
}

endpoint! {
    /// Set the bio.
    SetBio: Put "/users/me/bio" in "users" {
        op: "set_bio", summary: "Set the bio", auth: true, status: 200,
        input: Json, output: Json, request: SetBioRequest, response: User, errors: [],
    }
}

endpoint! {
    /// Set the birthdate.
    SetBirthdate: Put "/users/me/birthdate" in "users" {
        op: "set_birthdate", summary: "Set the birthdate", auth: true, status: 200,
        input: Json, output: Json, request: SetBirthdateRequest, response: User, errors: [],
    }
}

endpoint! {
    /// List users (public view), paged by id.
    ListUsers: Get "/users" in "users" {
        op: "list_users", summary: "List users (public view), paged by id", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: ListUsersRequest, response: Vec<User>, errors: [],
    }
}

endpoint! {
    /// Search users by username or name.
    SearchUsers: Get "/users/search" in "users" {
        op: "search_users", summary: "Search users by username or name", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: SearchUsersRequest, response: Vec<User>, errors: [],
    }
}

endpoint! {
    /// A user's public profile.
    GetProfile: Get "/users/{user_id}/profile" in "users" {
        op: "get_profile", summary: "A user's public profile", auth: true, status: 200,
        input: None, output: Json, request: GetProfileRequest, response: User, errors: [UserNotFound],
    }
}

endpoint! {
    /// The caller's privacy settings.
    GetPrivacy: Get "/users/me/privacy" in "users" {
        op: "get_privacy", summary: "The caller's privacy settings", auth: true, status: 200,
        input: None, output: Json, request: Empty, response: PrivacySettings, errors: [],
    }
}

endpoint! {
    /// Change privacy settings.
    UpdatePrivacy: Put "/users/me/privacy" in "users" {
        op: "update_privacy", summary: "Change privacy settings", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: UpdatePrivacyRequest, response: PrivacySettings,
        errors: [InvalidPrivacyValue, InvalidExceptions],
    }
}

endpoint! {
    /// Choose an avatar frame.
    SetAvatarFrame: Put "/users/me/avatar-frame" in "users" {
        op: "set_avatar_frame", summary: "Choose an avatar frame", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: SetAvatarFrameRequest, response: AvatarFrame,
        errors: [InvalidFrame],
    }
}

endpoint! {
    /// Choose a preset avatar.
    SetPresetAvatar: Put "/users/me/preset-avatar" in "users" {
        op: "set_preset_avatar", summary: "Choose a preset avatar", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: SetPresetAvatarRequest, response: AvatarUrl,
        errors: [InvalidAvatarId],
    }
}

endpoint! {
    /// Upload an avatar image.
    UploadAvatar: Post "/users/me/avatar" in "users" {
        op: "upload_avatar", summary: "Upload an avatar image (JPEG, PNG, GIF, WebP)", auth: true, status: 200,
        input: Multipart, output: Json, request: FileUpload, response: AvatarUrl,
        errors: [InvalidImage, PayloadTooLarge],
    }
}

/// `DELETE /users/me` body: a stolen token alone must not be enough to delete the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeleteAccountRequest {
    /// The account's current password (absent or wrong: 403 `invalid_password`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 72)]
    pub password: String,
}

endpoint! {
    /// Delete the account and everything of it.
    DeleteAccount: Delete "/users/me" in "users" {
        op: "delete_account", summary: "Delete the account and everything of it (needs the password)", auth: true,
        status: 204, input: Json, output: Empty, request: DeleteAccountRequest, response: Empty,
        errors: [InvalidPassword],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_are_documented_as_string_list_of_ids_or_null() {
        let schema = serde_json::to_value(<UpdatePrivacyRequest as utoipa::PartialSchema>::schema()).unwrap();
        let field = &schema["properties"]["avatar_visibility_exceptions"];
        let types: Vec<&str> = field["oneOf"].as_array().unwrap().iter().filter_map(|s| s["type"].as_str()).collect();
        assert_eq!(types, ["string", "array", "null"]);
        assert_eq!(field["oneOf"][1]["items"]["type"], "integer");
        let required = schema["required"].as_array().map(Vec::len).unwrap_or_default();
        assert_eq!(required, 0, "every privacy field is optional");
    }

    #[test]
    fn any_json_reaches_the_exceptions_check() {
        let r: UpdatePrivacyRequest = serde_json::from_str(r#"{"avatar_visibility_exceptions": {"a": 1}}"#).unwrap();
        assert!(r.avatar_visibility_exceptions.is_some_and(|v| v.is_object()));
    }
}
