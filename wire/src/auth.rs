//! Accounts and tokens (API.md §2): the `auth` function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoint;
use crate::objects::TokenResponse;

/// `POST /auth/register` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Trimmed, 1–64 characters, no control characters.
    #[schema(min_length = 1, max_length = 64)]
    pub first_name: String,
    /// Trimmed, 1–64 characters, no control characters.
    #[schema(min_length = 1, max_length = 64)]
    pub last_name: String,
    /// Any formatting; every non-digit is removed and 7–15 digits must remain (the pattern is the canonical
    /// form). A JSON string, never a number.
    #[schema(pattern = r"^\+?[0-9]{7,15}$")]
    pub phone: String,
    /// 8–72 bytes of UTF-8 (longer is rejected, never truncated).
    #[schema(min_length = 8, max_length = 72)]
    pub password: String,
    /// Legacy key text (§9.1), at most 4096 characters; empty or null stores none.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub public_key: Option<String>,
    /// Name of the device created with the account: trimmed, at most 64 characters, no control characters;
    /// blank or null leaves it unnamed.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub device_name: Option<String>,
}

/// `POST /auth/login` body: `password` plus exactly one of `phone` or `username`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Matched (as digits) only against phones. A JSON string, never a number.
    #[serde(default)]
    #[schema(pattern = r"^\+?[0-9]{7,15}$")]
    pub phone: Option<String>,
    /// Matched case-insensitively only against usernames.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 32)]
    pub username: Option<String>,
    /// 1–72 bytes of UTF-8.
    #[schema(min_length = 1, max_length = 72)]
    pub password: String,
    /// Name for a new device (or a new name for the reused one): trimmed, at most 64 characters, no control
    /// characters; blank or null leaves a new device unnamed and keeps a reused one's name.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub device_name: Option<String>,
    /// Re-use one of the caller's devices and keep its keys (trimmed, at most 64 characters); an unknown id
    /// creates a new device, blank or null too.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub device_id: Option<String>,
}

/// `PUT /users/me/password` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The current password, 1–72 bytes.
    #[schema(min_length = 1, max_length = 72)]
    pub current_password: String,
    /// 8–72 bytes, different from the current one.
    #[schema(min_length = 8, max_length = 72)]
    pub new_password: String,
}

endpoint! {
    /// Create an account and its first device.
    Register: Post "/auth/register" in "auth" {
        op: "register", summary: "Create an account and a device; returns a token", auth: false, status: 201,
        input: Json, output: Json, request: RegisterRequest, response: TokenResponse, errors: [PhoneTaken],
    }
}

endpoint! {
    /// Log in with phone or username.
    Login: Post "/auth/login" in "auth" {
        op: "login", summary: "Log in with phone or username and password", auth: false, status: 200,
        input: Json, output: Json, request: LoginRequest, response: TokenResponse,
        errors: [InvalidCredentials, AccountBanned, TooManyDevices],
    }
}

endpoint! {
    /// Change the password; every other token dies.
    ChangePassword: Put "/users/me/password" in "auth" {
        op: "change_password", summary: "Change the password; revokes every other token", auth: true, status: 200,
        input: Json, output: Json, request: ChangePasswordRequest, response: TokenResponse, errors: [WrongPassword],
    }
}
