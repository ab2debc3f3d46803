//! Privacy settings and the one place that turns a user into what a viewer may see (API.md §4.2–4.3).

use std::collections::{HashMap, HashSet};

use crate::db::Conn;
use wire::User;

use crate::db::users::UserRow;
pub use crate::db::users::{AvatarVisibility, PhoneVisibility, Privacy};
use crate::db::{connections, contacts, messages};
use crate::error::ApiError;
use crate::state::AppState;

async fn avatar_url(state: &AppState, user: &UserRow) -> Result<Option<String>, ApiError> {
    if let Some(key) = &user.avatar_key {
        return Ok(Some(state.storage.presign_get(key).await?));
    }
    Ok(user.avatar_preset.as_deref().map(|id| state.preset_avatar_url(id)))
}

/// The profile fields everyone may see.
fn profile(user: &UserRow) -> User {
    User {
        id: user.id,
        username: user.username.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        public_key: user.public_key.clone(),
        avatar_frame: user.avatar_frame,
        bio: user.bio.clone(),
        birthdate: user.birthdate.clone(),
        ..User::default()
    }
}

/// The self view (`GET /me`, edit responses): every own field, unfiltered.
pub async fn self_view(state: &AppState, user: &UserRow) -> Result<User, ApiError> {
    Ok(User { phone: user.phone.clone(), avatar_url: avatar_url(state, user).await?, ..profile(user) })
}

/// What the viewer knows about a set of owners, loaded in a few batched queries.
#[derive(Debug, Default)]
struct Relations {
    /// Owners whose contact the viewer is (owner messaged or named the viewer).
    contact_of: HashSet<i64>,
    /// Owners with at least one open connection.
    online: HashSet<i64>,
    /// The viewer's local names for owners.
    local_names: HashMap<i64, String>,
}

async fn relations(conn: &Conn, viewer: i64, owners: &[i64]) -> Result<Relations, libsql::Error> {
    let mut contact_of = messages::senders_among(conn, viewer, owners).await?;
    contact_of.extend(contacts::naming_owners(conn, viewer, owners).await?);
    let online = connections::online_among(conn, viewer, owners).await?;
    let local_names = contacts::local_names(conn, viewer, owners).await?;
    Ok(Relations { contact_of, online, local_names })
}

fn avatar_allowed(owner: &UserRow, viewer: i64, is_contact: bool) -> bool {
    match owner.privacy.avatar_visibility {
        AvatarVisibility::All => true,
        AvatarVisibility::Contacts => is_contact,
        AvatarVisibility::Nobody => false,
        AvatarVisibility::Except => !owner.privacy.avatar_visibility_exceptions.contains(&viewer),
    }
}

fn phone_allowed(owner: &UserRow, is_contact: bool) -> bool {
    match owner.privacy.phone_visibility {
        PhoneVisibility::All => true,
        PhoneVisibility::Contacts => is_contact,
        PhoneVisibility::Nobody => false,
    }
}

/// Public views of `owners` for `viewer`, privacy applied, with the viewer's local names; order is kept.
pub async fn public_views(
    state: &AppState,
    conn: &Conn,
    viewer: i64,
    owners: &[UserRow],
) -> Result<Vec<User>, ApiError> {
    let ids: Vec<i64> = owners.iter().map(|u| u.id).collect();
    let rel = relations(conn, viewer, &ids).await?;
    let mut views = Vec::with_capacity(owners.len());
    for owner in owners {
        if owner.is_deleted {
            views.push(User::deleted(owner.id));
            continue;
        }
        let is_contact = rel.contact_of.contains(&owner.id);
        let mut view = profile(owner);
        if avatar_allowed(owner, viewer, is_contact) {
            view.avatar_url = avatar_url(state, owner).await?;
        }
        if phone_allowed(owner, is_contact) {
            view.phone.clone_from(&owner.phone);
        }
        if owner.privacy.show_last_seen {
            view.last_seen = owner.last_seen.map(crate::time::format_ms);
        }
        if owner.privacy.show_online_status {
            view.is_online = Some(rel.online.contains(&owner.id));
        }
        view.local_name = rel.local_names.get(&owner.id).cloned();
        views.push(view);
    }
    Ok(views)
}

/// The public view of one owner for `viewer`.
pub async fn public_view(state: &AppState, conn: &Conn, viewer: i64, owner: &UserRow) -> Result<User, ApiError> {
    Ok(public_views(state, conn, viewer, std::slice::from_ref(owner)).await?.pop().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(avatar: AvatarVisibility, exceptions: Vec<i64>, phone: PhoneVisibility) -> UserRow {
        UserRow {
            id: 1,
            phone: Some("79990000000".into()),
            username: None,
            first_name: Some("A".into()),
            last_name: Some("B".into()),
            public_key: None,
            avatar_key: None,
            avatar_preset: Some("3".into()),
            avatar_frame: None,
            bio: None,
            birthdate: None,
            last_seen: None,
            privacy: Privacy {
                avatar_visibility: avatar,
                avatar_visibility_exceptions: exceptions,
                show_read_receipts: true,
                show_last_seen: true,
                show_online_status: true,
                phone_visibility: phone,
            },
            is_deleted: false,
        }
    }

    #[test]
    fn avatar_modes() {
        let u = owner(AvatarVisibility::Except, vec![7], PhoneVisibility::Nobody);
        assert!(!avatar_allowed(&u, 7, true), "listed ids never see it");
        assert!(avatar_allowed(&u, 8, false));
        let u = owner(AvatarVisibility::Contacts, vec![], PhoneVisibility::Nobody);
        assert!(avatar_allowed(&u, 8, true));
        assert!(!avatar_allowed(&u, 8, false));
        assert!(!avatar_allowed(&owner(AvatarVisibility::Nobody, vec![], PhoneVisibility::Nobody), 8, true));
    }

    #[test]
    fn phone_is_hidden_by_default() {
        assert!(!phone_allowed(&owner(AvatarVisibility::All, vec![], PhoneVisibility::Nobody), true));
        assert!(phone_allowed(&owner(AvatarVisibility::All, vec![], PhoneVisibility::Contacts), true));
        assert!(!phone_allowed(&owner(AvatarVisibility::All, vec![], PhoneVisibility::Contacts), false));
    }
}
