//! Private names a user gives other users (API.md §5.8): the `contacts` function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoint;
use crate::objects::MessageText;

/// `PUT /contacts/{contact_id}/local-name` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetLocalNameRequest {
    /// Path: the user being named.
    pub contact_id: i64,
    /// Trimmed, at most 64 characters; empty or absent stores null.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub local_name: Option<String>,
}

/// A stored local name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LocalName {
    /// The named user.
    pub contact_id: i64,
    /// The stored name, or null.
    pub local_name: Option<String>,
}

/// `DELETE /contacts/{contact_id}/local-name` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeleteLocalNameRequest {
    /// Path: the named user.
    pub contact_id: i64,
}

endpoint! {
    /// Set a private name for a user.
    SetLocalName: Put "/contacts/{contact_id}/local-name" in "contacts" {
        op: "set_local_name", summary: "Set a private name for a user", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: SetLocalNameRequest, response: LocalName,
        errors: [ContactNotFound, SelfContact],
    }
}

endpoint! {
    /// Remove the private name (200 also when there was none).
    DeleteLocalName: Delete "/contacts/{contact_id}/local-name" in "contacts" {
        op: "delete_local_name", summary: "Remove the private name", auth: true, status: 200,
        input: None, output: Json, request: DeleteLocalNameRequest, response: MessageText, errors: [],
    }
}
