//! Group chats with MLS (API.md §15): the key-package directory of §15.1, served by the `keys` function.
//!
//! Every MLS object is the base64 of a TLS-serialised `MLSMessage` (RFC 9420 §6); the server checks what it
//! stores and never holds a group secret.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoint;
use crate::endpoint::Empty;

/// `PUT /mls/key-packages` body: key packages of the token's device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadKeyPackagesRequest {
    /// `MLSMessage`s of type `mls_key_package`, base64: at most 100 per request and 100 unclaimed per device.
    /// Each is handed out at most once; one already stored is not stored twice.
    #[serde(default)]
    pub key_packages: Option<Vec<String>>,
    /// A last-resort package, handed out when no other is left and never consumed; replaces the previous one.
    #[serde(default)]
    pub last_resort: Option<String>,
}

/// The key-package state of the caller's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyPackageCount {
    /// The token's device.
    pub device_id: String,
    /// Unclaimed ordinary key packages that have not expired.
    pub key_package_count: i64,
    /// Whether the device has a last-resort package that has not expired.
    pub has_last_resort: bool,
}

/// `POST /mls/key-packages/claim` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimKeyPackagesRequest {
    /// Whose devices: 1–50 users.
    pub user_ids: Vec<i64>,
}

/// One device's claimed key package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedKeyPackage {
    /// The device's owner.
    pub user_id: i64,
    /// The device.
    pub device_id: String,
    /// The `MLSMessage`, base64, exactly as the device uploaded it.
    pub key_package: String,
    /// True when the device had no ordinary package left and this is its last-resort package.
    pub last_resort: bool,
}

/// `POST /mls/key-packages/claim` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedKeyPackages {
    /// One per device that has a package; devices with none are absent.
    pub key_packages: Vec<ClaimedKeyPackage>,
}

endpoint! {
    /// Upload this device's MLS key packages.
    UploadKeyPackages: Put "/mls/key-packages" in "keys" {
        op: "upload_key_packages", summary: "Upload this device's MLS key packages", auth: true, status: 200,
        input: Json, output: Json, request: UploadKeyPackagesRequest, response: KeyPackageCount,
        errors: [InvalidKeyPackage, TooManyKeyPackages, NoDeviceKeys],
    }
}

endpoint! {
    /// Unclaimed MLS key packages of this device.
    CountKeyPackages: Get "/mls/key-packages/count" in "keys" {
        op: "count_key_packages", summary: "Unclaimed MLS key packages of this device", auth: true, status: 200,
        input: None, output: Json, request: Empty, response: KeyPackageCount, errors: [],
    }
}

endpoint! {
    /// Claim one MLS key package per device of some users.
    ClaimKeyPackages: Post "/mls/key-packages/claim" in "keys" {
        op: "claim_key_packages", summary: "Claim one MLS key package per device of some users", auth: true,
        status: 200, input: Json, output: Json, request: ClaimKeyPackagesRequest, response: ClaimedKeyPackages,
        errors: [UserNotFound],
    }
}
