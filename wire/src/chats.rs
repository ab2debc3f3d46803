//! Active chats, history, clearing, deletion, read receipts and media (API.md §5.1–5.6): the `chats` function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoint;
use crate::objects::{Message, MessageText, User};

/// `GET /chats/active` input: a page of the list, newest first. No parameters gives the first page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListActiveChatsRequest {
    /// Page size: default 50, capped at 200, at least 1.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Cursor: the `last_message_time` of the last row of the previous page (RFC 3339); the page holds the
    /// conversations whose last message is older, or as old with a smaller peer id than `before_peer_id`.
    #[serde(default)]
    pub before: Option<String>,
    /// Cursor tie-breaker: the `id` of the last row of the previous page. Without it, `before` alone gives
    /// the conversations strictly older than `before`.
    #[serde(default)]
    pub before_peer_id: Option<i64>,
}

/// `GET /chats/{target_user_id}/messages` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListMessagesRequest {
    /// Path: the peer.
    pub target_user_id: i64,
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

/// `DELETE /chats/{target_user_id}/messages` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClearChatRequest {
    /// Path: the peer.
    pub target_user_id: i64,
    /// Delete for both users (default false: hide for the caller); in the query `true`/`false` or `1`/`0`.
    #[serde(default)]
    pub for_everyone: Option<bool>,
}

/// `DELETE /chats/{target_user_id}/messages` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChatCleared {
    /// Messages hidden or deleted.
    pub deleted_count: i64,
    /// `"Chat cleared successfully"`.
    pub message: String,
}

/// `DELETE /messages/{message_id}` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeleteMessageRequest {
    /// Path: the message.
    pub message_id: i64,
    /// Default true for the sender, false for the recipient; in the query `true`/`false` or `1`/`0`.
    #[serde(default)]
    pub for_everyone: Option<bool>,
}

/// `POST /chats/{target_user_id}/mark-read` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarkReadRequest {
    /// Path: the peer whose messages were read.
    pub target_user_id: i64,
    /// Only messages with an id up to this one.
    #[serde(default)]
    pub up_to_id: Option<i64>,
}

/// `POST /chats/{target_user_id}/mark-read` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarkedRead {
    /// Messages newly marked read.
    pub marked_count: i64,
    /// `"Messages marked as read"`.
    pub message: String,
}

/// `GET /chats/{target_user_id}/media` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListMediaRequest {
    /// Path: the peer.
    pub target_user_id: i64,
    /// Page size: default 100, capped at 200, at least 1.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Only messages with a smaller id.
    #[serde(default)]
    pub before_id: Option<i64>,
}

/// One image of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MediaItem {
    /// Message id.
    pub id: i64,
    /// Fresh presigned URL, or null.
    pub media_url: Option<String>,
    /// When it was sent.
    pub timestamp: String,
    /// Who sent it.
    pub sender_id: i64,
}

endpoint! {
    /// Peers with visible messages, newest first.
    ListActiveChats: Get "/chats/active" in "chats" {
        op: "list_active_chats", summary: "Peers with visible messages, newest first", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: ListActiveChatsRequest, response: Vec<User>, errors: [],
    }
}

endpoint! {
    /// A page of the conversation, ascending.
    ListMessages: Get "/chats/{target_user_id}/messages" in "chats" {
        op: "list_messages", summary: "A page of the conversation (ascending)", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: ListMessagesRequest, response: Vec<Message>, errors: [],
    }
}

endpoint! {
    /// Clear the chat for me or for everyone.
    ClearChat: Delete "/chats/{target_user_id}/messages" in "chats" {
        op: "clear_chat", summary: "Clear the chat for me or for everyone", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: ClearChatRequest, response: ChatCleared, errors: [],
    }
}

endpoint! {
    /// Delete a message.
    DeleteMessage: Delete "/messages/{message_id}" in "chats" {
        op: "delete_message", summary: "Delete a message", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: DeleteMessageRequest, response: MessageText,
        errors: [InvalidMessageId, MessageNotFound, NotMessageSender],
    }
}

endpoint! {
    /// Mark the peer's messages as read.
    MarkRead: Post "/chats/{target_user_id}/mark-read" in "chats" {
        op: "mark_read", summary: "Mark the peer's messages as read", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: MarkReadRequest, response: MarkedRead, errors: [],
    }
}

endpoint! {
    /// Images of the conversation, newest first.
    ListMedia: Get "/chats/{target_user_id}/media" in "chats" {
        op: "list_media", summary: "Images of the conversation, newest first", auth: true, status: 200,
        input: QueryOrJson, output: Json, request: ListMediaRequest, response: Vec<MediaItem>, errors: [],
    }
}
