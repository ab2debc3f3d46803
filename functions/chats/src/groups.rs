//! MLS groups (API.md §15.2): create, list, show, rename and leave. The server is the Delivery Service's
//! routing table: it never holds a group secret, and only members see a group (404 to anyone else).

use std::collections::{BTreeMap, BTreeSet};

use shared::api::Router;
use shared::auth::AuthUser;
use shared::keys::{decode, encode};
use shared::mls::notify;
use shared::validate::DisplayName;
use shared::{ApiError, AppState, db, mls};
use wire::mls::{
    AckWelcome, AckWelcomeRequest, CommitAccepted, CommitGroup, CommitRequest, CreateGroup, CreateGroupRequest,
    GetGroup, GetGroupRequest, Group, GroupMember, GroupMessage, GroupRole, GroupSummary, LeaveGroup,
    LeaveGroupRequest, ListCommits, ListCommitsRequest, ListGroupMessages, ListGroupMessagesRequest, ListGroups,
    ListGroupsRequest, ListWelcomes, MemberDevice, PendingWelcome, RenameGroup, RenameGroupRequest, StoredCommit,
};
use wire::ws::{GroupCommitEvent, GroupUpdated, GroupWelcomeEvent, ServerEvent};
use wire::{Empty, ErrorCode};

/// Most groups a user can be in.
pub const MAX_GROUPS: i64 = 100;

/// Most member devices of a group.
pub const MAX_MEMBERS: usize = 1000;

/// Most bytes of a commit plus its welcome.
const MAX_HANDSHAKE_BYTES: usize = 1024 * 1024;

/// Largest commit or welcome carried inside an event; larger ones are fetched over REST.
const MAX_EVENT_BLOB_BYTES: usize = 64 * 1024;

/// Most commits per page of `GET /groups/{id}/commits`.
const COMMITS_PER_PAGE: i64 = 100;

/// Adds the §15.2 routes to the `chats` function's router.
pub fn routes(router: Router) -> Router {
    router
        .route(CreateGroup, create_group)
        .route(ListGroups, list_groups)
        .route(GetGroup, get_group)
        .route(RenameGroup, rename_group)
        .route(LeaveGroup, leave_group)
        .route(CommitGroup, commit_group)
        .route(ListCommits, list_commits)
        .route(ListWelcomes, list_welcomes)
        .route(AckWelcome, ack_welcome)
        .route(ListGroupMessages, list_group_messages)
}

/// A group name: trimmed, 1–64 characters, display-safe (the rules of names in API.md §4).
fn group_name(name: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    let name = DisplayName::parse(name).map_err(|rule| ApiError::field("name", rule))?;
    Ok(Some(name.into_string()))
}

/// An MLS group id: 16–32 bytes of canonical base64.
fn mls_group_id(text: &str) -> Result<String, ApiError> {
    decode(text)
        .filter(|b| (16..=32).contains(&b.len()))
        .map(|b| encode(&b))
        .ok_or_else(|| ApiError::field("group_id", "must be 16-32 bytes in standard base64"))
}

fn role(text: &str) -> GroupRole {
    if text == db::mls_groups::ADMIN { GroupRole::Admin } else { GroupRole::Member }
}

/// The group object of `row` with its members.
async fn group_object(conn: &db::Conn, row: db::mls_groups::GroupRow) -> Result<Group, ApiError> {
    let members = db::mls_groups::members(conn, row.id).await?;
    Ok(Group {
        id: row.id,
        group_id: row.group_id,
        name: row.name,
        epoch: row.epoch,
        created_by: row.created_by,
        created_at: shared::time::format_ms(row.created_at),
        members: members
            .into_iter()
            .map(|m| GroupMember {
                role: role(&m.role),
                user_id: m.user_id,
                device_id: m.device_id,
                joined_epoch: m.joined_epoch,
            })
            .collect(),
    })
}

/// `POST /groups`
/// - the caller's device is the only member, admin, at epoch 0; the MLS group id is the client's, unique
/// - a name is optional (clients that keep it private leave it null); at most 100 groups per user
async fn create_group(state: &AppState, user: AuthUser, input: CreateGroupRequest) -> Result<Group, ApiError> {
    let group_id = mls_group_id(&input.group_id)?;
    let name = group_name(input.name.as_deref())?;
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    if db::mls_groups::count_of_user(&tx, user.id).await? >= MAX_GROUPS {
        return Err(ErrorCode::TooManyGroups.into());
    }
    let now = shared::time::now_ms();
    let id = db::mls_groups::create(&tx, &group_id, name.as_deref(), user.id, &user.device_id, now)
        .await?
        .ok_or(ApiError::code(ErrorCode::GroupExists))?;
    let row = db::mls_groups::get_for(&tx, id, user.id).await?.ok_or(ApiError::code(ErrorCode::GroupNotFound))?;
    let group = group_object(&tx, row).await?;
    tx.commit().await?;
    Ok(group)
}

/// `GET /groups` — groups where any device of the caller is a member, most recent activity first; paged
/// with `limit` (1–100, default 50) and `before` (the last group's id).
async fn list_groups(
    state: &AppState,
    user: AuthUser,
    input: ListGroupsRequest,
) -> Result<Vec<GroupSummary>, ApiError> {
    let limit = input.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 100"));
    }
    let conn = state.db.conn().await?;
    let rows = db::mls_groups::list(&conn, user.id, input.before, limit).await?;
    Ok(rows
        .into_iter()
        .map(|r| GroupSummary {
            id: r.id,
            group_id: r.group_id,
            name: r.name,
            epoch: r.epoch,
            member_count: r.member_count,
            last_message_at: r.last_activity_at.map(shared::time::format_ms),
        })
        .collect())
}

/// `GET /groups/{id}` — members only.
async fn get_group(state: &AppState, user: AuthUser, input: GetGroupRequest) -> Result<Group, ApiError> {
    let conn = state.db.conn().await?;
    let row =
        db::mls_groups::get_for(&conn, input.id, user.id).await?.ok_or(ApiError::code(ErrorCode::GroupNotFound))?;
    group_object(&conn, row).await
}

/// `PUT /groups/{id}` — admins only; null removes the name; `group_updated` to every member device.
async fn rename_group(state: &AppState, user: AuthUser, input: RenameGroupRequest) -> Result<Group, ApiError> {
    let name = group_name(input.name.as_deref())?;
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    db::mls_groups::get_for(&tx, input.id, user.id).await?.ok_or(ApiError::code(ErrorCode::GroupNotFound))?;
    if !db::mls_groups::is_admin(&tx, input.id, user.id).await? {
        return Err(ErrorCode::NotGroupAdmin.into());
    }
    db::mls_groups::rename(&tx, input.id, name.as_deref()).await?;
    let row = db::mls_groups::get_for(&tx, input.id, user.id).await?.ok_or(ApiError::code(ErrorCode::GroupNotFound))?;
    let group = group_object(&tx, row).await?;
    tx.commit().await?;
    drop(conn);
    let to: Vec<(i64, String)> = group.members.iter().map(|m| (m.user_id, m.device_id.clone())).collect();
    let event =
        ServerEvent::GroupUpdated(GroupUpdated { group_id: group.id, name: Some(group.name.clone()), left: None });
    notify(state, &to, &event).await;
    Ok(group)
}

/// `DELETE /groups/{id}/members/me`
/// - every device of the caller leaves the routing table at once and becomes a pending removal that the
///   group's next commit must include; `group_updated` with `left` to the remaining member devices
/// - a group left without members is deleted
async fn leave_group(state: &AppState, user: AuthUser, input: LeaveGroupRequest) -> Result<Empty, ApiError> {
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    db::mls_groups::get_for(&tx, input.id, user.id).await?.ok_or(ApiError::code(ErrorCode::GroupNotFound))?;
    let left = db::mls_groups::leave(&tx, input.id, user.id).await?;
    let remaining = db::mls_groups::members(&tx, input.id).await?;
    tx.commit().await?;
    drop(conn);
    let to: Vec<(i64, String)> = remaining.into_iter().map(|m| (m.user_id, m.device_id)).collect();
    let left = left.into_iter().map(|device_id| MemberDevice { user_id: user.id, device_id }).collect();
    let event = ServerEvent::GroupUpdated(GroupUpdated { group_id: input.id, name: None, left: Some(left) });
    notify(state, &to, &event).await;
    Ok(Empty {})
}

fn blob(text: &str) -> Result<Vec<u8>, ApiError> {
    decode(text).filter(|b| !b.is_empty()).ok_or(ApiError::code(ErrorCode::InvalidMlsMessage))
}

/// Changes of membership a commit declares, checked against the routing table.
struct Changes {
    added: Vec<MemberDevice>,
    removed: Vec<MemberDevice>,
    roles: Vec<(i64, GroupRole)>,
}

fn changes(input: &CommitRequest) -> Result<Changes, ApiError> {
    let unique = |list: &Option<Vec<MemberDevice>>| {
        let mut seen = BTreeSet::new();
        let list = list.clone().unwrap_or_default();
        list.iter().all(|m| seen.insert(m.device_id.clone())).then_some(list)
    };
    let added = unique(&input.added).ok_or_else(|| ApiError::code(ErrorCode::InvalidMember))?;
    let removed = unique(&input.removed).ok_or_else(|| ApiError::code(ErrorCode::InvalidMember))?;
    let mut roles = Vec::new();
    for (user, role) in input.role.clone().unwrap_or_default() {
        let user = user.parse::<i64>().map_err(|_| ApiError::field("role", "keys must be user ids"))?;
        roles.push((user, role));
    }
    Ok(Changes { added, removed, roles })
}

/// `POST /groups/{id}/commits`
/// - the caller's device must be a member; the commit's plaintext header must name this group, content type
///   commit, and the group's current epoch (409 `stale_epoch` otherwise): exactly one commit wins each epoch
/// - adding or removing members and changing roles is for admins; every pending removal must be removed; added
///   devices must exist and be their user's, and need the welcome; at most 1 000 member devices
/// - atomically: epoch + 1, membership and roles, the commit (and welcome) stored; then `group_commit` to every
///   member device of the old epoch but the committer's, and `group_welcome` to each added device
async fn commit_group(state: &AppState, user: AuthUser, input: CommitRequest) -> Result<CommitAccepted, ApiError> {
    let id = input.id;
    let not_found = || ApiError::code(ErrorCode::GroupNotFound);
    {
        // To anyone but a member device the group does not exist, whatever the body holds.
        let conn = state.db.conn().await?;
        db::mls_groups::member(&conn, id, &user.device_id).await?.ok_or_else(not_found)?;
    }
    let commit = blob(&input.commit)?;
    let welcome = input.welcome.as_deref().map(blob).transpose()?;
    if commit.len() + welcome.as_ref().map_or(0, Vec::len) > MAX_HANDSHAKE_BYTES {
        return Err(ErrorCode::PayloadTooLarge.into());
    }
    let header = mls::protocol_header(&commit)?;
    if header.kind != mls::Kind::Commit || welcome.as_ref().is_some_and(|w| !mls::is_welcome(w)) {
        return Err(ErrorCode::InvalidMlsMessage.into());
    }
    let changes = changes(&input)?;
    if changes.added.is_empty() != welcome.is_none() {
        // Added devices cannot join without the welcome, and a welcome without them reaches nobody.
        return Err(ErrorCode::InvalidMlsMessage.into());
    }
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let group = db::mls_groups::get_for(&tx, id, user.id).await?.ok_or_else(not_found)?;
    db::mls_groups::member(&tx, id, &user.device_id).await?.ok_or_else(not_found)?;
    if decode(&group.group_id).unwrap_or_default() != header.group_id {
        return Err(ErrorCode::InvalidMlsMessage.into());
    }
    if i64::try_from(header.epoch).ok() != Some(group.epoch) {
        return Err(ErrorCode::StaleEpoch.into());
    }
    let members = db::mls_groups::members(&tx, id).await?;
    let pending = db::mls_groups::pending_removals(&tx, id).await?;
    let is_member = |device: &str| members.iter().any(|m| m.device_id == device);
    let is_pending = |device: &str| pending.iter().any(|(_, d)| d == device);
    if pending.iter().any(|(_, d)| !changes.removed.iter().any(|r| &r.device_id == d)) {
        return Err(ErrorCode::PendingRemovals.into());
    }
    let removes_members = changes.removed.iter().any(|r| is_member(&r.device_id));
    let admin = members.iter().any(|m| m.user_id == user.id && m.role == db::mls_groups::ADMIN);
    if (!changes.added.is_empty() || removes_members || !changes.roles.is_empty()) && !admin {
        return Err(ErrorCode::NotGroupAdmin.into());
    }
    for r in &changes.removed {
        let listed = members.iter().any(|m| m.device_id == r.device_id && m.user_id == r.user_id)
            || pending.iter().any(|(u, d)| *d == r.device_id && *u == r.user_id);
        if !listed {
            return Err(ErrorCode::InvalidMember.into());
        }
    }
    for a in &changes.added {
        let fresh = !is_member(&a.device_id) && !is_pending(&a.device_id);
        if !fresh || !db::devices::belongs_to(&tx, &a.device_id, a.user_id).await? {
            return Err(ErrorCode::InvalidMember.into());
        }
    }
    let staying = members.iter().filter(|m| !changes.removed.iter().any(|r| r.device_id == m.device_id)).count();
    if staying + changes.added.len() > MAX_MEMBERS {
        return Err(ErrorCode::GroupFull.into());
    }
    for (role_user, _) in &changes.roles {
        if !members.iter().any(|m| m.user_id == *role_user) && !changes.added.iter().any(|a| a.user_id == *role_user) {
            return Err(ErrorCode::InvalidMember.into());
        }
    }

    let now = shared::time::now_ms();
    if !db::mls_groups::advance_epoch(&tx, id, group.epoch, now).await? {
        return Err(ErrorCode::StaleEpoch.into());
    }
    let epoch = group.epoch + 1;
    for r in &changes.removed {
        db::mls_groups::remove_member(&tx, id, &r.device_id).await?;
    }
    for a in &changes.added {
        db::mls_groups::add_member(&tx, id, a.user_id, &a.device_id, epoch).await?;
    }
    for (role_user, role) in &changes.roles {
        let role = match role {
            GroupRole::Admin => db::mls_groups::ADMIN,
            GroupRole::Member => "member",
        };
        db::mls_groups::set_role(&tx, id, *role_user, role).await?;
    }
    let commit_text = encode(&commit);
    db::mls_groups::insert_commit(&tx, id, epoch, (user.id, &user.device_id), &commit_text, now).await?;
    let welcome = match &welcome {
        Some(bytes) => {
            let text = encode(bytes);
            let welcome_id = db::mls_groups::insert_welcome(&tx, id, epoch, &text, now).await?;
            for a in &changes.added {
                db::mls_groups::add_welcome_device(&tx, welcome_id, a.user_id, &a.device_id).await?;
            }
            Some((welcome_id, text, bytes.len()))
        }
        None => None,
    };
    let row = db::mls_groups::get_for(&tx, id, user.id).await?;
    let group_now = match row {
        Some(row) => Some(group_object(&tx, row).await?),
        None => None,
    };
    tx.commit().await?;
    drop(conn);

    let to: Vec<(i64, String)> =
        members.iter().filter(|m| m.device_id != user.device_id).map(|m| (m.user_id, m.device_id.clone())).collect();
    let event = ServerEvent::GroupCommit(GroupCommitEvent {
        group_id: id,
        epoch,
        commit: (commit.len() <= MAX_EVENT_BLOB_BYTES).then_some(commit_text),
        sender_id: user.id,
        sender_device_id: user.device_id.clone(),
    });
    notify(state, &to, &event).await;
    if let (Some((welcome_id, text, len)), Some(group)) = (welcome, group_now) {
        let added: Vec<(i64, String)> = changes.added.iter().map(|a| (a.user_id, a.device_id.clone())).collect();
        let small = len <= MAX_EVENT_BLOB_BYTES;
        let event =
            ServerEvent::GroupWelcome(GroupWelcomeEvent { welcome_id, group, epoch, welcome: small.then_some(text) });
        notify(state, &added, &event).await;
    }
    Ok(CommitAccepted { epoch })
}

/// `GET /groups/{id}/commits` — members only; the commits that created epochs after `after_epoch`, oldest
/// first, at most 100 per page.
async fn list_commits(
    state: &AppState,
    user: AuthUser,
    input: ListCommitsRequest,
) -> Result<Vec<StoredCommit>, ApiError> {
    let after = input.after_epoch.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::field("after_epoch", "must be 0 or more"));
    }
    let conn = state.db.conn().await?;
    db::mls_groups::get_for(&conn, input.id, user.id).await?.ok_or(ApiError::code(ErrorCode::GroupNotFound))?;
    let rows = db::mls_groups::commits_after(&conn, input.id, after, COMMITS_PER_PAGE).await?;
    Ok(rows
        .into_iter()
        .map(|c| StoredCommit {
            epoch: c.epoch,
            commit: c.message,
            sender_id: c.sender_id,
            sender_device_id: c.sender_device_id,
            timestamp: shared::time::format_ms(c.created_at),
        })
        .collect())
}

/// `GET /mls/welcomes` — the token's device's welcomes, oldest first, each with its group as it is now
/// (a welcome to a group the device has left since is skipped).
async fn list_welcomes(state: &AppState, user: AuthUser, _input: Empty) -> Result<Vec<PendingWelcome>, ApiError> {
    let conn = state.db.conn().await?;
    let mut groups: BTreeMap<i64, Option<Group>> = BTreeMap::new();
    let mut out = Vec::new();
    for w in db::mls_groups::welcomes_of_device(&conn, &user.device_id).await? {
        if let std::collections::btree_map::Entry::Vacant(slot) = groups.entry(w.group_id) {
            let group = match db::mls_groups::get_for(&conn, w.group_id, user.id).await? {
                Some(row) => Some(group_object(&conn, row).await?),
                None => None,
            };
            slot.insert(group);
        }
        if let Some(Some(group)) = groups.get(&w.group_id) {
            out.push(PendingWelcome {
                id: w.id,
                group: group.clone(),
                epoch: w.epoch,
                welcome: w.message,
                timestamp: shared::time::format_ms(w.created_at),
            });
        }
    }
    Ok(out)
}

/// `DELETE /mls/welcomes/{id}` — acknowledges one of the token's device's welcomes.
async fn ack_welcome(state: &AppState, user: AuthUser, input: AckWelcomeRequest) -> Result<Empty, ApiError> {
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    if !db::mls_groups::ack_welcome(&tx, input.id, &user.device_id).await? {
        return Err(ErrorCode::WelcomeNotFound.into());
    }
    tx.commit().await?;
    Ok(Empty {})
}

/// `GET /groups/{id}/messages`
/// - member devices only, and only messages from the epoch the device joined in: earlier ones were not
///   encrypted for it
/// - paged as `GET /chats/{id}/messages`: ascending ids; no cursor = newest `limit` (default 50, at most 200);
///   `before_id` = newest below it; `after_id` = oldest above it
async fn list_group_messages(
    state: &AppState,
    user: AuthUser,
    input: ListGroupMessagesRequest,
) -> Result<Vec<GroupMessage>, ApiError> {
    let limit = crate::page_limit(input.limit, 50, 200)?;
    let conn = state.db.conn().await?;
    let member = db::mls_groups::member(&conn, input.id, &user.device_id)
        .await?
        .ok_or(ApiError::code(ErrorCode::GroupNotFound))?;
    let before = input.before_id.unwrap_or(i64::MAX);
    let mut page =
        db::mls_groups::messages_page(&conn, input.id, member.joined_epoch, (input.after_id, before), limit).await?;
    if input.after_id.is_none() {
        page.reverse();
    }
    Ok(page.into_iter().map(mls::group_message).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_are_16_to_32_bytes_of_canonical_base64() {
        assert_eq!(mls_group_id(&encode(&[1; 16])).unwrap(), encode(&[1; 16]));
        assert!(mls_group_id(&encode(&[1; 32])).is_ok());
        for bad in [encode(&[1; 15]), encode(&[1; 33]), String::new(), "not base64!".into()] {
            assert!(mls_group_id(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_display_safe_and_at_most_64_characters() {
        assert_eq!(group_name(Some("  Team  ")).unwrap(), Some("Team".into()));
        assert_eq!(group_name(None).unwrap(), None);
        assert_eq!(group_name(Some(&"é".repeat(64))).unwrap(), Some("é".repeat(64)));
        for bad in ["", "   ", "a\u{202e}b", "a\u{0007}"] {
            assert!(group_name(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(group_name(Some(&"x".repeat(65))).is_err());
    }
}
