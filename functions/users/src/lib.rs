//! The `users` function: own profile, usernames, privacy, avatars and finding other users (API.md §4).

use serde_json::Value;
use shared::api::Router;
use shared::auth::AuthUser;
use shared::db::users::PrivacyUpdate;
use shared::error::OnConstraint as _;
use shared::privacy::{public_view, public_views, self_view};
use shared::ratelimit::Scope;
use shared::storage::{ImageType, new_key};
use shared::users::{PRESET_AVATAR_IDS, UserRow, search_text, valid_username};
use shared::{ApiError, AppState, db};
use wire::endpoint::Empty;
use wire::users::{
    Availability, AvatarFrame, AvatarUrl, CheckAvailability, CheckAvailabilityRequest, DeleteAccount,
    DeleteAccountRequest, GetMe, GetPrivacy, GetProfile, GetProfileRequest, ListUsers, ListUsersRequest,
    PrivacySettings, SearchUsers, SearchUsersRequest, SetAvatarFrame, SetAvatarFrameRequest, SetBio, SetBioRequest,
    SetBirthdate, SetBirthdateRequest, SetPresetAvatar, SetPresetAvatarRequest, SetUsername, SetUsernameRequest,
    UnavailableReason, UpdatePrivacy, UpdatePrivacyRequest, UpdateProfile, UpdateProfileRequest, UploadAvatar,
};
use wire::{AvatarFrameId, AvatarVisibility, ErrorCode, FileUpload, PhoneVisibility, User};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "users";

/// Every route of this function.
pub fn router() -> Router {
    Router::new(FUNCTION)
        .route(GetMe, get_me)
        .route(SetUsername, set_username)
        .route(CheckAvailability, check_availability)
        .route(UpdateProfile, update_profile)
        .route(SetBio, set_bio)
        .route(SetBirthdate, set_birthdate)
        .route(ListUsers, list_users)
        .route(SearchUsers, search_users)
        .route(GetProfile, get_profile)
        .route(GetPrivacy, get_privacy)
        .route(UpdatePrivacy, update_privacy)
        .route(SetAvatarFrame, set_avatar_frame)
        .route(SetPresetAvatar, set_preset_avatar)
        .upload(UploadAvatar, upload_avatar)
        .route(DeleteAccount, delete_account)
}

shared::http_function!(router);

async fn load_self(state: &AppState, user: &AuthUser) -> Result<UserRow, ApiError> {
    let conn = state.db.conn().await?;
    db::users::find(&conn, user.id).await?.filter(|u| !u.is_deleted).ok_or(ApiError::InvalidToken)
}

async fn self_response(state: &AppState, user: &AuthUser) -> Result<User, ApiError> {
    let row = load_self(state, user).await?;
    self_view(state, &row).await
}

/// `GET /me` — the caller's self view.
async fn get_me(state: &AppState, user: AuthUser, _input: Empty) -> Result<User, ApiError> {
    self_response(state, &user).await
}

/// `PUT /users/me/username`
/// - rules of §4.1, unique case-insensitively; the caller's current name is a no-op; tokens are untouched
async fn set_username(state: &AppState, user: AuthUser, input: SetUsernameRequest) -> Result<User, ApiError> {
    let name = input.new_username.trim().to_owned();
    if !valid_username(&name) {
        return Err(ErrorCode::InvalidUsername.into());
    }
    let row = load_self(state, &user).await?;
    if row.username.as_deref() != Some(name.as_str()) {
        state.limiter.hit(&state.db, Scope::UsernameChange, &user.id.to_string()).await?;
        let conn = state.db.conn().await?;
        let text = search_text(Some(&name), row.first_name.as_deref(), row.last_name.as_deref());
        db::users::set_username(&conn, user.id, &name, &text).await.on_unique(ErrorCode::UsernameTaken.into())?;
    }
    self_response(state, &user).await
}

/// `GET /users/check_availability` — `{available, reason}`; rate-limited per user.
async fn check_availability(
    state: &AppState,
    user: AuthUser,
    input: CheckAvailabilityRequest,
) -> Result<Availability, ApiError> {
    let name = input.username.trim().to_owned();
    state.limiter.hit(&state.db, Scope::Search, &user.id.to_string()).await?;
    if !valid_username(&name) {
        return Ok(Availability { available: false, reason: Some(UnavailableReason::Invalid) });
    }
    let conn = state.db.conn().await?;
    Ok(if db::users::username_taken(&conn, &name.to_lowercase(), user.id).await? {
        Availability { available: false, reason: Some(UnavailableReason::Taken) }
    } else {
        Availability { available: true, reason: None }
    })
}

/// A trimmed profile text; blank is none.
fn trimmed(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// A bio (already trimmed) of at most 500 characters.
fn check_bio(bio: Option<String>) -> Result<Option<String>, ApiError> {
    if bio.as_ref().is_some_and(|b| b.chars().count() > 500) {
        return Err(ApiError::field("bio", "must be at most 500 characters"));
    }
    Ok(bio)
}

/// A birthdate (already trimmed): a real `YYYY-MM-DD` date between 1900-01-01 and today.
fn check_birthdate(date: Option<String>) -> Result<Option<String>, ApiError> {
    if let Some(text) = &date {
        // Exactly YYYY-MM-DD: the date parser alone would also take a sign (`+2000-01-01`).
        let shape = text.len() == 10
            && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        if !shape {
            return Err(ApiError::field("birthdate", "must be a real date YYYY-MM-DD"));
        }
        let parsed = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| ApiError::field("birthdate", "must be a real date YYYY-MM-DD"))?;
        if parsed < time::macros::date!(1900 - 01 - 01) || parsed > shared::time::today() {
            return Err(ApiError::field("birthdate", "must be between 1900-01-01 and today"));
        }
    }
    Ok(date)
}

/// `PUT /users/me/profile` — query `bio`, `birthdate`; only given fields change, blank clears.
async fn update_profile(state: &AppState, user: AuthUser, input: UpdateProfileRequest) -> Result<User, ApiError> {
    let bio = input.bio.map(|b| check_bio(trimmed(b.as_deref()))).transpose()?;
    let birthdate = input.birthdate.map(|d| check_birthdate(trimmed(d.as_deref()))).transpose()?;
    let conn = state.db.conn().await?;
    if let Some(bio) = bio {
        db::users::set_bio(&conn, user.id, bio.as_deref()).await?;
    }
    if let Some(birthdate) = birthdate {
        db::users::set_birthdate(&conn, user.id, birthdate.as_deref()).await?;
    }
    drop(conn);
    self_response(state, &user).await
}

/// `PUT /users/me/bio` — JSON body; missing or blank clears.
async fn set_bio(state: &AppState, user: AuthUser, input: SetBioRequest) -> Result<User, ApiError> {
    let bio = check_bio(trimmed(input.bio.as_deref()))?;
    let conn = state.db.conn().await?;
    db::users::set_bio(&conn, user.id, bio.as_deref()).await?;
    drop(conn);
    self_response(state, &user).await
}

/// `PUT /users/me/birthdate` — JSON body; missing or blank clears.
async fn set_birthdate(state: &AppState, user: AuthUser, input: SetBirthdateRequest) -> Result<User, ApiError> {
    let birthdate = check_birthdate(trimmed(input.birthdate.as_deref()))?;
    let conn = state.db.conn().await?;
    db::users::set_birthdate(&conn, user.id, birthdate.as_deref()).await?;
    drop(conn);
    self_response(state, &user).await
}

/// `GET /users` — public views in ascending id, excluding the caller and deleted accounts; paged.
async fn list_users(state: &AppState, user: AuthUser, input: ListUsersRequest) -> Result<Vec<User>, ApiError> {
    let limit = match input.limit {
        None => 100,
        Some(l) if l < 1 => return Err(ApiError::field("limit", "must be at least 1")),
        Some(l) => l.min(500),
    };
    let after = input.after_id.unwrap_or(0);
    shared::users::count_lookup(state, user.id).await?;
    let conn = state.db.conn().await?;
    let rows = db::users::list_page(&conn, after, user.id, limit).await?;
    public_views(state, &conn, user.id, &rows).await
}

/// `GET /users/search` — up to 20 public views whose username or names contain the query.
async fn search_users(state: &AppState, user: AuthUser, input: SearchUsersRequest) -> Result<Vec<User>, ApiError> {
    let query = input.query.unwrap_or_default().trim().to_lowercase();
    if query.chars().count() > 64 {
        return Err(ApiError::field("query", "must be at most 64 characters"));
    }
    state.limiter.hit(&state.db, Scope::Search, &user.id.to_string()).await?;
    if query.chars().count() < 2 {
        return Ok(Vec::new());
    }
    let conn = state.db.conn().await?;
    let rows = db::users::search(&conn, user.id, &query).await?;
    public_views(state, &conn, user.id, &rows).await
}

/// `GET /users/{user_id}/profile`
/// - public view with the caller's local name; a deleted account is a stub for users who still have
///   messages with it and 404 for everyone else
async fn get_profile(state: &AppState, user: AuthUser, input: GetProfileRequest) -> Result<User, ApiError> {
    let id = input.user_id;
    if id != user.id {
        // Ids are sequential: without a limit this is a scrape of every profile.
        shared::users::count_lookup(state, user.id).await?;
    }
    let conn = state.db.conn().await?;
    let target = db::users::find(&conn, id).await?.ok_or(ErrorCode::UserNotFound)?;
    if target.id == user.id {
        let mut view = self_view(state, &target).await?;
        view.local_name = None;
        return Ok(view);
    }
    if target.is_deleted && !db::messages::conversation_visible_to(&conn, user.id, id).await? {
        return Err(ErrorCode::UserNotFound.into());
    }
    public_view(state, &conn, user.id, &target).await
}

fn privacy_settings(row: &UserRow) -> PrivacySettings {
    let p = &row.privacy;
    PrivacySettings {
        avatar_visibility: p.avatar_visibility,
        avatar_visibility_exceptions: (!p.avatar_visibility_exceptions.is_empty())
            .then(|| serde_json::to_string(&p.avatar_visibility_exceptions).unwrap_or_default()),
        show_read_receipts: p.show_read_receipts,
        show_last_seen: p.show_last_seen,
        show_online_status: p.show_online_status,
        phone_visibility: p.phone_visibility,
        avatar_visibility_exception_ids: p.avatar_visibility_exceptions.clone(),
    }
}

/// `GET /users/me/privacy`
async fn get_privacy(state: &AppState, user: AuthUser, _input: Empty) -> Result<PrivacySettings, ApiError> {
    Ok(privacy_settings(&load_self(state, &user).await?))
}

/// The exceptions as sorted, deduplicated positive ids: a JSON array, or a JSON-encoded one in a string
/// (blank clears); at most 1000 entries; anything else is 400 `invalid_exceptions`.
fn parse_exceptions(value: &Value) -> Result<Vec<i64>, ApiError> {
    let invalid = || ApiError::code(ErrorCode::InvalidExceptions);
    let decoded;
    let list = match value {
        Value::String(s) if s.trim().is_empty() => return Ok(Vec::new()),
        Value::String(s) => {
            decoded = serde_json::from_str::<Value>(s).map_err(|_| invalid())?;
            &decoded
        }
        other => other,
    };
    let Value::Array(items) = list else { return Err(invalid()) };
    if items.len() > 1000 {
        return Err(invalid());
    }
    let mut ids: Vec<i64> =
        items.iter().map(|v| v.as_i64().filter(|id| *id > 0).ok_or_else(invalid)).collect::<Result<_, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// `PUT /users/me/privacy`
/// - query (original client) or body; only given fields change, in one transaction; `[]` clears the
///   exceptions
async fn update_privacy(
    state: &AppState,
    user: AuthUser,
    input: UpdatePrivacyRequest,
) -> Result<PrivacySettings, ApiError> {
    let mut update = PrivacyUpdate::default();
    if let Some(v) = input.avatar_visibility {
        update.avatar_visibility = Some(
            AvatarVisibility::parse(v.trim())
                .ok_or(ApiError::with_detail(ErrorCode::InvalidPrivacyValue, "Invalid avatar_visibility value"))?,
        );
    }
    if let Some(v) = input.phone_visibility {
        update.phone_visibility = Some(
            PhoneVisibility::parse(v.trim())
                .ok_or(ApiError::with_detail(ErrorCode::InvalidPrivacyValue, "Invalid phone_visibility value"))?,
        );
    }
    if let Some(v) = input.avatar_visibility_exceptions.filter(|v| !v.is_null()) {
        update.avatar_visibility_exceptions = Some(parse_exceptions(&v)?);
    }
    update.show_read_receipts = input.show_read_receipts;
    update.show_last_seen = input.show_last_seen;
    update.show_online_status = input.show_online_status;
    if !update.is_empty() {
        let conn = state.db.conn().await?;
        let tx = conn.write_tx().await?;
        db::users::update_privacy(&tx, user.id, &update).await?;
        tx.commit().await?;
    }
    get_privacy(state, user, Empty {}).await
}

/// `PUT /users/me/avatar-frame` — `none` stores and returns null.
async fn set_avatar_frame(
    state: &AppState,
    user: AuthUser,
    input: SetAvatarFrameRequest,
) -> Result<AvatarFrame, ApiError> {
    let frame = input.frame.as_deref().and_then(AvatarFrameId::parse).ok_or(ErrorCode::InvalidFrame)?;
    let stored = (frame != AvatarFrameId::None).then_some(frame);
    let conn = state.db.conn().await?;
    db::users::set_avatar_frame(&conn, user.id, stored).await?;
    Ok(AvatarFrame { avatar_frame: stored })
}

/// Replaces the avatar columns and deletes the previous uploaded object (row and S3 object).
async fn replace_avatar(
    state: &AppState,
    user: &AuthUser,
    key: Option<&str>,
    preset: Option<&str>,
) -> Result<(), ApiError> {
    let previous = {
        let conn = state.db.conn().await?;
        let tx = conn.write_tx().await?;
        let previous = db::users::avatar_key(&tx, user.id).await?;
        db::users::set_avatar(&tx, user.id, key, preset).await?;
        tx.commit().await?;
        previous
    };
    if let Some(old) = previous.filter(|old| Some(old.as_str()) != key) {
        shared::files::delete_if_orphaned(state, &[old]).await;
    }
    Ok(())
}

/// `PUT /users/me/preset-avatar` — stores the preset id; any uploaded avatar object is deleted.
async fn set_preset_avatar(
    state: &AppState,
    user: AuthUser,
    input: SetPresetAvatarRequest,
) -> Result<AvatarUrl, ApiError> {
    let id = input.avatar_id.unwrap_or_default();
    let id = id.trim();
    if !PRESET_AVATAR_IDS.contains(&id) {
        return Err(ErrorCode::InvalidAvatarId.into());
    }
    replace_avatar(state, &user, None, Some(id)).await?;
    Ok(AvatarUrl { avatar_url: state.preset_avatar_url(id) })
}

/// `POST /users/me/avatar`
/// - multipart `file`, at most `MAX_AVATAR_BYTES`, JPEG/PNG/GIF/WebP by magic bytes only
/// - stored as a private S3 object; the previous one is deleted; answers a presigned URL
async fn upload_avatar(state: &AppState, user: AuthUser, input: FileUpload) -> Result<AvatarUrl, ApiError> {
    let data = input.file;
    if data.len() > state.config.max_avatar_bytes {
        return Err(ApiError::with_detail(ErrorCode::PayloadTooLarge, "Avatar too large"));
    }
    let kind = ImageType::detect(&data).ok_or(ErrorCode::InvalidImage)?;
    state.limiter.hit(&state.db, Scope::Upload, &user.id.to_string()).await?;
    let key = new_key();
    let size = i64::try_from(data.len()).unwrap_or(i64::MAX);
    state.storage.put(&key, data, kind.mime()).await?;
    let recorded = async {
        let conn = state.db.conn().await?;
        let object = db::objects::NewObject {
            key: &key,
            owner_id: user.id,
            kind: shared::files::kind::AVATAR,
            content_type: kind.mime(),
            size,
            created_at: shared::time::now_ms(),
        };
        db::objects::insert(&conn, object).await?;
        drop(conn);
        replace_avatar(state, &user, Some(&key), None).await
    }
    .await;
    if let Err(e) = recorded {
        // Do not leave an unreferenced object behind.
        shared::files::delete_if_orphaned(state, std::slice::from_ref(&key)).await;
        return Err(e);
    }
    Ok(AvatarUrl { avatar_url: state.storage.presign_get(&key).await? })
}

/// `DELETE /users/me` — with the account's password, deletes the caller's account
/// ([`shared::accounts::delete`], the path the operator panel uses too); the id is never reused.
async fn delete_account(state: &AppState, user: AuthUser, input: DeleteAccountRequest) -> Result<Empty, ApiError> {
    shared::auth::reauthenticate(state, user.id, &input.password).await?;
    if shared::accounts::delete(state, user.id).await? { Ok(Empty {}) } else { Err(ApiError::InvalidToken) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_users_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }

    fn code(result: Result<Vec<i64>, ApiError>) -> ErrorCode {
        result.unwrap_err().error_code()
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn exceptions_are_a_list_of_ids_or_its_json_text() {
        assert_eq!(parse_exceptions(&json("[17, 3, 3]")).unwrap(), vec![3, 17]);
        assert_eq!(parse_exceptions(&Value::String("[3,17]".into())).unwrap(), vec![3, 17]);
        assert!(parse_exceptions(&Value::String("  ".into())).unwrap().is_empty(), "blank clears");
        assert!(parse_exceptions(&json("[]")).unwrap().is_empty());
        for bad in [
            json("{}"),
            json(r#"["1"]"#),
            json("[1.5]"),
            json("[0]"),
            json("5"),
            Value::String("nonsense".into()),
            Value::String("{}".into()),
            Value::Array((1..=1001).map(Value::from).collect()),
        ] {
            assert_eq!(code(parse_exceptions(&bad)), ErrorCode::InvalidExceptions, "{bad}");
        }
    }

    #[test]
    fn profile_texts_are_trimmed_and_checked() {
        assert_eq!(trimmed(Some("  hi ")), Some("hi".into()));
        assert_eq!(trimmed(Some("   ")), None);
        assert!(check_bio(Some("b".repeat(500))).is_ok());
        assert!(check_bio(Some("b".repeat(501))).is_err());
        assert_eq!(check_birthdate(Some("2000-02-29".into())).unwrap().as_deref(), Some("2000-02-29"));
        for bad in ["2001-02-29", "1899-12-31", "2999-01-01", "10.12.1990", "+2000-01-01", "2000-1-01"] {
            match check_birthdate(Some(bad.into())) {
                Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "birthdate"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn accepted_birthdates_are_exactly_yyyy_mm_dd(text in "[+\\- ]?[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,3}|\\PC{0,12}") {
            if let Ok(Some(out)) = check_birthdate(Some(text.clone())) {
                prop_assert_eq!(&out, &text);
                prop_assert!(out.len() == 10 && time::Date::parse(&out, time::macros::format_description!("[year]-[month]-[day]")).is_ok());
            }
        }

        #[test]
        fn every_real_date_since_1900_is_accepted(days in 0i64..40_000) {
            let date = time::macros::date!(1900 - 01 - 01) + time::Duration::days(days);
            let text = format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day());
            let expected = if date <= shared::time::today() { Some(text.clone()) } else { None };
            prop_assert_eq!(check_birthdate(Some(text)).ok().flatten(), expected);
        }

        #[test]
        fn exceptions_are_positive_sorted_unique_and_read_back(ids in proptest::collection::vec(-5i64..50, 0..40), as_text in any::<bool>()) {
            let list = serde_json::json!(ids);
            let value = if as_text { Value::String(list.to_string()) } else { list };
            match parse_exceptions(&value) {
                Ok(out) => {
                    prop_assert!(ids.iter().all(|id| *id > 0));
                    prop_assert!(out.windows(2).all(|w| w[0] < w[1]));
                    let mut expected = ids.clone();
                    expected.sort_unstable();
                    expected.dedup();
                    prop_assert_eq!(&out, &expected);
                    prop_assert_eq!(parse_exceptions(&serde_json::json!(out)).ok(), Some(out.clone()));
                }
                Err(_) => prop_assert!(ids.iter().any(|id| *id <= 0)),
            }
        }
    }
}
