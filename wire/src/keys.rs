//! The end-to-end encryption key directory (API.md §9): the `keys` function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoint;
use crate::endpoint::Empty;

/// A signed prekey (Curve25519), also the device's fallback key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignedPrekey {
    /// Key id (unsigned 32-bit).
    pub key_id: u32,
    /// 32 bytes, standard base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub public_key: String,
    /// Ed25519(signing_key, `"MSGR-SPK-V1"` ‖ key_id as 4 bytes big-endian ‖ public_key), 64 bytes, base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub signature: String,
}

/// A one-time key (Curve25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OneTimeKey {
    /// Key id (unsigned 32-bit), unique per device.
    pub key_id: u32,
    /// 32 bytes, standard base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub public_key: String,
}

/// `PUT /keys` body; every part optional (null is the same as absent), but the first upload needs the
/// identity part and a signed prekey. The identity part is all three of `identity_key`, `signing_key` and
/// `identity_signature`: sending any of them requires the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadKeysRequest {
    /// Device Curve25519 identity key, 32 bytes, base64.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub identity_key: Option<String>,
    /// Device Ed25519 key, 32 bytes, base64.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub signing_key: Option<String>,
    /// Ed25519(signing_key, `"MSGR-ID-V1"` ‖ identity_key), 64 bytes, base64; required with `identity_key`.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub identity_signature: Option<String>,
    /// Replaces the previous signed prekey.
    #[serde(default)]
    pub signed_prekey: Option<SignedPrekey>,
    /// At most 100 per request and 100 unclaimed per device; ids unique within the request.
    #[serde(default)]
    pub one_time_keys: Option<Vec<OneTimeKey>>,
    /// The account's password: required to replace the device's identity keys with different ones (absent or
    /// wrong: 403 `invalid_password`), ignored otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 72)]
    pub password: Option<String>,
}

/// The key state of the caller's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyCount {
    /// The token's device.
    pub device_id: String,
    /// Unclaimed one-time keys.
    pub one_time_key_count: i64,
    /// The current signed prekey's id, or null before the first upload.
    pub signed_prekey_id: Option<i64>,
}

/// `GET /users/{user_id}/devices` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListDevicesRequest {
    /// Path: the user.
    pub user_id: i64,
}

/// A device that uploaded identity keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    /// Device id.
    pub device_id: String,
    /// Its name; null unless the device is the caller's.
    pub device_name: Option<String>,
    /// Curve25519 identity key, base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub identity_key: String,
    /// Ed25519 key, base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub signing_key: String,
    /// Identity signature, base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub identity_signature: String,
    /// RFC 3339 UTC; null unless the device is the caller's (peers get only what E2EE needs).
    pub created_at: Option<String>,
}

/// `POST /keys/claim` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimKeysRequest {
    /// Whose devices.
    pub user_id: i64,
    /// Only these devices (at most 100); absent = every device with keys.
    #[serde(default)]
    pub device_ids: Option<Vec<String>>,
}

/// The keys claimed for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedDevice {
    /// Device id.
    pub device_id: String,
    /// Curve25519 identity key, base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub identity_key: String,
    /// Ed25519 key, base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub signing_key: String,
    /// Identity signature, base64.
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
    pub identity_signature: String,
    /// The signed prekey.
    pub signed_prekey: SignedPrekey,
    /// A one-time key handed out to this caller only, or null when none was left.
    pub one_time_key: Option<OneTimeKey>,
    /// True when no one-time key was left: use the signed prekey.
    pub fallback: bool,
}

/// `POST /keys/claim` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedKeys {
    /// Whose devices.
    pub user_id: i64,
    /// One entry per device.
    pub devices: Vec<ClaimedDevice>,
}

/// `DELETE /devices/{device_id}` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeleteDeviceRequest {
    /// Path: one of the caller's devices.
    pub device_id: String,
}

/// `POST /keys/exchange` input: query parameter or JSON body (the body wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExchangeKeyRequest {
    /// Whose legacy key.
    pub user_id: i64,
}

/// `POST /keys/exchange` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LegacyKey {
    /// The user.
    pub user_id: i64,
    /// The legacy key text from registration.
    pub public_key: String,
}

endpoint! {
    /// Upload this device's keys.
    UploadKeys: Put "/keys" in "keys" {
        op: "upload_keys", summary: "Upload this device's identity, signed prekey and one-time keys", auth: true,
        status: 200, input: Json, output: Json, request: UploadKeysRequest, response: KeyCount,
        errors: [InvalidSignature, TooManyOneTimeKeys, KeyIdConflict, InvalidPassword],
    }
}

endpoint! {
    /// Unclaimed one-time keys of this device.
    CountKeys: Get "/keys/count" in "keys" {
        op: "count_keys", summary: "Unclaimed one-time keys of this device", auth: true, status: 200,
        input: None, output: Json, request: Empty, response: KeyCount, errors: [],
    }
}

endpoint! {
    /// A user's devices with identity keys.
    ListDevices: Get "/users/{user_id}/devices" in "keys" {
        op: "list_devices", summary: "A user's devices with identity keys", auth: true, status: 200,
        input: None, output: Json, request: ListDevicesRequest, response: Vec<Device>, errors: [UserNotFound],
    }
}

endpoint! {
    /// Claim a one-time key (or the fallback) per device of a user.
    ClaimKeys: Post "/keys/claim" in "keys" {
        op: "claim_keys", summary: "Claim a one-time key (or the fallback) per device of a user", auth: true,
        status: 200, input: Json, output: Json, request: ClaimKeysRequest, response: ClaimedKeys,
        errors: [UserNotFound],
    }
}

endpoint! {
    /// Remove one of the caller's devices.
    DeleteDevice: Delete "/devices/{device_id}" in "keys" {
        op: "delete_device", summary: "Remove one of the caller's devices", auth: true, status: 204,
        input: None, output: Empty, request: DeleteDeviceRequest, response: Empty, errors: [DeviceNotFound],
    }
}

endpoint! {
    /// The legacy public key of a user.
    ExchangeKey: Post "/keys/exchange" in "keys" {
        op: "exchange_key", summary: "The legacy public key of a user", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: ExchangeKeyRequest, response: LegacyKey,
        errors: [UserNotFound, NoPublicKey],
    }
}
