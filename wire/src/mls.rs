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
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
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
    #[schema(pattern = r"^[A-Za-z0-9+/]*={0,2}$")]
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

/// A device of a user, as group events and commits name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberDevice {
    /// The owner.
    pub user_id: i64,
    /// The device.
    pub device_id: String,
}

/// A member device's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupRole {
    /// May add and remove others and rename the group.
    Admin,
    /// May send and commit updates of its own.
    Member,
}

/// One member device of a group (the server's routing table; membership crypto is the clients' job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupMember {
    /// The device's owner.
    pub user_id: i64,
    /// The device.
    pub device_id: String,
    /// Its role.
    pub role: GroupRole,
    /// The epoch the device joined in: its history starts there.
    pub joined_epoch: i64,
}

/// The group object (API.md §15.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    /// The server's id.
    pub id: i64,
    /// The MLS group id, 16–32 bytes, base64.
    pub group_id: String,
    /// The group's name, or null when the members keep it inside the group.
    pub name: Option<String>,
    /// The current epoch.
    pub epoch: i64,
    /// The creator.
    pub created_by: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Every member device.
    pub members: Vec<GroupMember>,
}

/// `POST /groups` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateGroupRequest {
    /// The MLS group id the creator's client chose, 16–32 bytes, base64; unique.
    pub group_id: String,
    /// Trimmed, 1–64 characters, display-safe; absent or null keeps the name out of the server.
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /groups` input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListGroupsRequest {
    /// Page size: 1–100, default 50.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Cursor: the `id` of the last group of the previous page.
    #[serde(default)]
    pub before: Option<i64>,
}

/// One row of `GET /groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupSummary {
    /// The server's id.
    pub id: i64,
    /// The MLS group id, base64.
    pub group_id: String,
    /// The name, or null.
    pub name: Option<String>,
    /// The current epoch.
    pub epoch: i64,
    /// Member devices.
    pub member_count: i64,
    /// RFC 3339 UTC of the last message or commit, or null when there has been none.
    pub last_message_at: Option<String>,
}

/// `GET /groups/{id}` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GetGroupRequest {
    /// Path: the group's server id.
    pub id: i64,
}

/// `PUT /groups/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RenameGroupRequest {
    /// Path: the group's server id.
    pub id: i64,
    /// Trimmed, 1–64 characters, display-safe; null removes the name.
    pub name: Option<String>,
}

/// `DELETE /groups/{id}/members/me` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeaveGroupRequest {
    /// Path: the group's server id.
    pub id: i64,
}

endpoint! {
    /// Create a group with the caller's device as its only member.
    CreateGroup: Post "/groups" in "chats" {
        op: "create_group", summary: "Create an MLS group with the caller's device as its admin", auth: true,
        status: 201, input: Json, output: Json, request: CreateGroupRequest, response: Group,
        errors: [GroupExists, TooManyGroups],
    }
}

endpoint! {
    /// The caller's groups, most recent activity first.
    ListGroups: Get "/groups" in "chats" {
        op: "list_groups", summary: "The caller's groups, most recent activity first", auth: true, status: 200,
        input: Query, output: Json, request: ListGroupsRequest, response: Vec<GroupSummary>, errors: [],
    }
}

endpoint! {
    /// One group of the caller's.
    GetGroup: Get "/groups/{id}" in "chats" {
        op: "get_group", summary: "One group with its members", auth: true, status: 200,
        input: None, output: Json, request: GetGroupRequest, response: Group, errors: [GroupNotFound],
    }
}

endpoint! {
    /// Rename a group (admins only).
    RenameGroup: Put "/groups/{id}" in "chats" {
        op: "rename_group", summary: "Rename a group (admins only)", auth: true, status: 200,
        input: Json, output: Json, request: RenameGroupRequest, response: Group, errors: [GroupNotFound, NotGroupAdmin],
    }
}

endpoint! {
    /// Leave a group: the caller's devices stop receiving at once.
    LeaveGroup: Delete "/groups/{id}/members/me" in "chats" {
        op: "leave_group", summary: "Leave a group with every device of the caller", auth: true, status: 204,
        input: None, output: Empty, request: LeaveGroupRequest, response: Empty, errors: [GroupNotFound],
    }
}

/// `POST /groups/{id}/commits` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitRequest {
    /// Path: the group's server id.
    pub id: i64,
    /// An `MLSMessage` (`PublicMessage` or `PrivateMessage`, content type commit) of this group at its current
    /// epoch, base64.
    pub commit: String,
    /// The `Welcome` for the added devices, base64; required when `added` is not empty.
    #[serde(default)]
    pub welcome: Option<String>,
    /// Devices the commit adds (admins only); each must exist and belong to its user.
    #[serde(default)]
    pub added: Option<Vec<MemberDevice>>,
    /// Devices the commit removes: every pending removal, plus members (admins only).
    #[serde(default)]
    pub removed: Option<Vec<MemberDevice>>,
    /// New roles by user id (admins only).
    #[serde(default)]
    #[schema(value_type = Option<std::collections::BTreeMap<String, GroupRole>>)]
    pub role: Option<std::collections::BTreeMap<String, GroupRole>>,
}

/// `POST /groups/{id}/commits` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitAccepted {
    /// The group's new epoch.
    pub epoch: i64,
}

/// `GET /groups/{id}/commits` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListCommitsRequest {
    /// Path: the group's server id.
    pub id: i64,
    /// Commits that created epochs after this one (default 0: every commit kept).
    #[serde(default)]
    pub after_epoch: Option<i64>,
}

/// A stored commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoredCommit {
    /// The epoch the commit created.
    pub epoch: i64,
    /// The `MLSMessage`, base64, as the committer sent it.
    pub commit: String,
    /// The committer.
    pub sender_id: i64,
    /// The committer's device.
    pub sender_device_id: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

/// A welcome waiting for the caller's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingWelcome {
    /// Acknowledge it with `DELETE /mls/welcomes/{id}`.
    pub id: i64,
    /// The group as it is now.
    pub group: Group,
    /// The epoch the welcome is for.
    pub epoch: i64,
    /// The `Welcome` `MLSMessage`, base64.
    pub welcome: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

/// `DELETE /mls/welcomes/{id}` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AckWelcomeRequest {
    /// Path: the welcome's id.
    pub id: i64,
}

endpoint! {
    /// Commit to a group at its current epoch.
    CommitGroup: Post "/groups/{id}/commits" in "chats" {
        op: "commit_group", summary: "Commit to a group at its current epoch (exactly one commit wins each epoch)",
        auth: true, status: 200, input: Json, output: Json, request: CommitRequest, response: CommitAccepted,
        errors: [GroupNotFound, NotGroupAdmin, StaleEpoch, InvalidMlsMessage, PendingRemovals, InvalidMember, GroupFull,
            PayloadTooLarge],
    }
}

endpoint! {
    /// Commits of a group after an epoch, oldest first.
    ListCommits: Get "/groups/{id}/commits" in "chats" {
        op: "list_commits", summary: "Commits of a group after an epoch, oldest first (at most 100)", auth: true,
        status: 200, input: Query, output: Json, request: ListCommitsRequest, response: Vec<StoredCommit>,
        errors: [GroupNotFound],
    }
}

endpoint! {
    /// Welcomes waiting for this device.
    ListWelcomes: Get "/mls/welcomes" in "chats" {
        op: "list_welcomes", summary: "Welcomes waiting for this device", auth: true, status: 200,
        input: None, output: Json, request: Empty, response: Vec<PendingWelcome>, errors: [],
    }
}

endpoint! {
    /// Acknowledge a welcome.
    AckWelcome: Delete "/mls/welcomes/{id}" in "chats" {
        op: "ack_welcome", summary: "Acknowledge a welcome of this device", auth: true, status: 204,
        input: None, output: Empty, request: AckWelcomeRequest, response: Empty, errors: [WelcomeNotFound],
    }
}

/// A group message (API.md §15.4): ciphertext only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupMessage {
    /// Server id, increasing.
    pub id: i64,
    /// The group's server id.
    pub group_id: i64,
    /// The sender.
    pub sender_id: i64,
    /// The sender's device.
    pub sender_device_id: String,
    /// The epoch it was encrypted in.
    pub epoch: i64,
    /// The `PrivateMessage`, base64.
    pub ciphertext: String,
    /// The sender's id for it, if it gave one.
    pub client_msg_id: Option<String>,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

/// `GET /groups/{id}/messages` input: a page, as `GET /chats/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListGroupMessagesRequest {
    /// Path: the group's server id.
    pub id: i64,
    /// Page size: default 50, capped at 200, at least 1.
    #[serde(default)]
    pub limit: Option<i64>,
    /// The newest `limit` messages with a smaller id.
    #[serde(default)]
    pub before_id: Option<i64>,
    /// The oldest `limit` messages with a greater id (optionally below `before_id`).
    #[serde(default)]
    pub after_id: Option<i64>,
}

endpoint! {
    /// Group messages from the caller's device's joined epoch on.
    ListGroupMessages: Get "/groups/{id}/messages" in "chats" {
        op: "list_group_messages", summary: "Group messages from this device's joined epoch on", auth: true,
        status: 200, input: Query, output: Json, request: ListGroupMessagesRequest, response: Vec<GroupMessage>,
        errors: [GroupNotFound],
    }
}
