//! The `contacts` function: private names a user gives other users (API.md §5.8).

use shared::api::Router;
use shared::auth::AuthUser;
use shared::validate::DisplayName;
use shared::{ApiError, AppState, db};
use wire::ErrorCode;
use wire::contacts::{DeleteLocalName, DeleteLocalNameRequest, LocalName, SetLocalName, SetLocalNameRequest};
use wire::objects::MessageText;

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "contacts";

/// Every route of this function.
pub fn router() -> Router {
    Router::new(FUNCTION).route(SetLocalName, set_local_name).route(DeleteLocalName, delete_local_name)
}

shared::http_function!(router);

/// `PUT /contacts/{contact_id}/local-name`
/// - trimmed, at most 64 characters, empty stores null; 404 for unknown or deleted users, then 400 for oneself
async fn set_local_name(state: &AppState, user: AuthUser, input: SetLocalNameRequest) -> Result<LocalName, ApiError> {
    let contact = input.contact_id;
    let name = DisplayName::parse_optional(input.local_name.as_deref())
        .map_err(|rule| ApiError::field("local_name", rule))?
        .map(DisplayName::into_string);
    shared::users::count_lookup(state, user.id).await?;
    let conn = state.db.conn().await?;
    if !db::users::is_live(&conn, contact).await? {
        return Err(ErrorCode::ContactNotFound.into());
    }
    if contact == user.id {
        return Err(ErrorCode::SelfContact.into());
    }
    db::contacts::set_local_name(&conn, user.id, contact, name.as_deref()).await?;
    Ok(LocalName { contact_id: contact, local_name: name })
}

/// `DELETE /contacts/{contact_id}/local-name` — 200 also when nothing existed.
async fn delete_local_name(
    state: &AppState,
    user: AuthUser,
    input: DeleteLocalNameRequest,
) -> Result<MessageText, ApiError> {
    let conn = state.db.conn().await?;
    db::contacts::delete(&conn, user.id, input.contact_id).await?;
    Ok(MessageText { message: "Local name deleted".into() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_router_serves_exactly_the_contacts_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }
}
