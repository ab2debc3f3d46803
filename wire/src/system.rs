//! Service banners, reference lists and the API documentation (API.md §8, §10): the `system` function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoint;
use crate::endpoint::Empty;
use crate::objects::AvatarFrameId;

/// `GET /` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Banner {
    /// `"Messenger Backend API"`.
    pub message: String,
}

/// `GET /test` and `GET /health` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `"ok"` (`/test`) or `"healthy"` (`/health`).
    pub status: String,
    /// `"Backend is running"` (`/test` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A preset avatar (§10.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PresetAvatar {
    /// `"1"` … `"12"`.
    pub id: String,
    /// Public URL (from `PRESET_AVATAR_URL_TEMPLATE`).
    pub url: String,
}

/// `GET /avatars/list` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PresetAvatars {
    /// Every preset.
    pub avatars: Vec<PresetAvatar>,
}

/// An avatar frame (§10.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Frame {
    /// Its id.
    pub id: AvatarFrameId,
    /// The original (Russian) name.
    pub name: String,
    /// A colour hint such as `#FF4500`.
    pub color: String,
}

/// `GET /avatar-frames/list` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Frames {
    /// Every frame.
    pub frames: Vec<Frame>,
}

/// The OpenAPI 3.1 document (any JSON object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct OpenApiDocument(pub serde_json::Value);

/// An HTML page (its text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct HtmlPage(pub String);

endpoint! {
    /// Service banner.
    Root: Get "/" in "system" {
        op: "root", summary: "Service banner", auth: false, status: 200,
        input: None, output: Json, request: Empty, response: Banner, errors: [],
    }
}

endpoint! {
    /// Liveness check used by the client.
    Test: Get "/test" in "system" {
        op: "test", summary: "Liveness check used by the client", auth: false, status: 200,
        input: None, output: Json, request: Empty, response: Status, errors: [],
    }
}

endpoint! {
    /// Health check.
    Health: Get "/health" in "system" {
        op: "health", summary: "Health check", auth: false, status: 200,
        input: None, output: Json, request: Empty, response: Status, errors: [],
    }
}

endpoint! {
    /// Preset avatars.
    ListPresetAvatars: Get "/avatars/list" in "system" {
        op: "list_preset_avatars", summary: "Preset avatars", auth: false, status: 200,
        input: None, output: Json, request: Empty, response: PresetAvatars, errors: [],
    }
}

endpoint! {
    /// Avatar frames.
    ListAvatarFrames: Get "/avatar-frames/list" in "system" {
        op: "list_avatar_frames", summary: "Avatar frames", auth: false, status: 200,
        input: None, output: Json, request: Empty, response: Frames, errors: [],
    }
}

endpoint! {
    /// This OpenAPI document.
    OpenApi: Get "/openapi.json" in "system" {
        op: "openapi", summary: "This OpenAPI document", auth: false, status: 200,
        input: None, output: Json, request: Empty, response: OpenApiDocument, errors: [],
    }
}

endpoint! {
    /// The OpenAPI document rendered as an HTML page.
    Docs: Get "/docs" in "system" {
        op: "docs", summary: "HTML page rendering the OpenAPI document", auth: false, status: 200,
        input: None, output: Html, request: Empty, response: HtmlPage, errors: [],
    }
}
