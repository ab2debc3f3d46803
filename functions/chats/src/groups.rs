//! MLS groups (API.md §15.2): create, list, show, rename and leave. The server is the Delivery Service's
//! routing table: it never holds a group secret, and only members see a group (404 to anyone else).

use std::collections::BTreeSet;

use shared::api::Router;
use shared::auth::AuthUser;
use shared::keys::{decode, encode};
use shared::{ApiError, AppState, db, realtime};
use wire::mls::{
    CreateGroup, CreateGroupRequest, GetGroup, GetGroupRequest, Group, GroupMember, GroupRole, GroupSummary,
    LeaveGroup, LeaveGroupRequest, ListGroups, ListGroupsRequest, MemberDevice, RenameGroup, RenameGroupRequest,
};
use wire::ws::{GroupUpdated, ServerEvent};
use wire::{Empty, ErrorCode};

/// Most groups a user can be in.
pub const MAX_GROUPS: i64 = 100;

/// Adds the §15.2 routes to the `chats` function's router.
pub fn routes(router: Router) -> Router {
    router
        .route(CreateGroup, create_group)
        .route(ListGroups, list_groups)
        .route(GetGroup, get_group)
        .route(RenameGroup, rename_group)
        .route(LeaveGroup, leave_group)
}

/// A group name: trimmed, 1–64 characters, display-safe (the rules of names in API.md §4).
fn group_name(name: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || !shared::users::is_display_safe(name) {
        return Err(ApiError::field(
            "name",
            "must be 1-64 characters without control, bidirectional or invisible characters",
        ));
    }
    Ok(Some(name.to_owned()))
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

/// Sends `event` to every live connection of the member devices `to`.
async fn notify(state: &AppState, to: &[(i64, String)], event: &ServerEvent) {
    let users: Vec<i64> = to.iter().map(|(u, _)| *u).collect::<BTreeSet<_>>().into_iter().collect();
    let Ok(conn) = state.db.conn().await else { return };
    let connections = db::connections::of_users(&conn, &users).await.unwrap_or_default();
    drop(conn);
    let frame = event.to_frame();
    let targets = connections
        .into_iter()
        .filter(|c| c.live && to.iter().any(|(u, d)| *u == c.user_id && *d == c.device_id))
        .map(|c| (c.id, frame.clone()))
        .collect();
    realtime::fanout::push(state, targets).await;
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
