//! A user's chat themes (API.md §3.3, §5.7): the `themes` function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoint;
use crate::endpoint::Empty;

/// A theme's brightness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Brightness {
    /// Dark text on light colours.
    #[default]
    Light,
    /// Light text on dark colours.
    Dark,
}

crate::names!(Brightness { Light => "light", Dark => "dark" });

/// Declares a struct holding its own fields and then every theme field a client sends, so the theme fields
/// and their constraints are written once for both inputs that carry them. (Listed in each struct rather than
/// flattened, so a failed field is named in the 422. Attributes pass through as token trees: utoipa misreads
/// some attribute fragments that come from a macro.)
macro_rules! with_theme_fields {
    ($(#[$($attr:tt)*])* pub struct $name:ident { $($(#[$($field_attr:tt)*])* pub $field:ident: $ty:tt,)* }) => {
        $(#[$($attr)*])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            $($(#[$($field_attr)*])* pub $field: $ty,)*
            /// Trimmed, 1–64 characters.
            #[schema(min_length = 1, max_length = 64)]
            pub name: String,
            /// A 32-bit ARGB colour as the original client writes it: decimal text (`"4286336511"`) or `0x` hex text.
            #[schema(pattern = r"^(0[xX][0-9A-Fa-f]{1,8}|[0-9]{1,10})$")]
            pub primary_color: String,
            /// Colour, as `primary_color`.
            #[schema(pattern = r"^(0[xX][0-9A-Fa-f]{1,8}|[0-9]{1,10})$")]
            pub background_color: String,
            /// Colour, as `primary_color`.
            #[schema(pattern = r"^(0[xX][0-9A-Fa-f]{1,8}|[0-9]{1,10})$")]
            pub bubble_color_me: String,
            /// Colour, as `primary_color`.
            #[schema(pattern = r"^(0[xX][0-9A-Fa-f]{1,8}|[0-9]{1,10})$")]
            pub bubble_color_other: String,
            /// Colour, as `primary_color`.
            #[schema(pattern = r"^(0[xX][0-9A-Fa-f]{1,8}|[0-9]{1,10})$")]
            pub text_color: String,
            /// Colour, as `primary_color`.
            #[schema(pattern = r"^(0[xX][0-9A-Fa-f]{1,8}|[0-9]{1,10})$")]
            pub secondary_text_color: String,
            /// `light` or `dark`.
            pub brightness: Brightness,
            /// A URL or key from our upload endpoints, owned by the caller; null or blank for none.
            #[serde(default)]
            pub wallpaper_url: Option<String>,
            /// Decimal number as text, 0–20; null or absent is `"0.0"`.
            #[serde(default)]
            #[schema(pattern = r"^[0-9]{1,2}(\.[0-9]+)?$")]
            pub wallpaper_blur: Option<String>,
        }
    };
}

with_theme_fields! {
    /// Every theme field a client sends: the `POST /users/me/themes` body. Colours and the blur are strings, as
    /// the original client writes them (JSON numbers are refused).
    pub struct ThemeFields {}
}

/// `POST /users/me/themes` body.
pub type CreateThemeRequest = ThemeFields;

with_theme_fields! {
    /// `PUT /users/me/themes/{theme_id}` input: the path's theme and every field of [`ThemeFields`], replacing
    /// the stored ones.
    pub struct UpdateThemeRequest {
        /// Path: the theme.
        pub theme_id: i64,
    }
}

impl UpdateThemeRequest {
    /// The theme and its fields, apart.
    pub fn into_parts(self) -> (i64, ThemeFields) {
        let fields = ThemeFields {
            name: self.name,
            primary_color: self.primary_color,
            background_color: self.background_color,
            bubble_color_me: self.bubble_color_me,
            bubble_color_other: self.bubble_color_other,
            text_color: self.text_color,
            secondary_text_color: self.secondary_text_color,
            brightness: self.brightness,
            wallpaper_url: self.wallpaper_url,
            wallpaper_blur: self.wallpaper_blur,
        };
        (self.theme_id, fields)
    }
}

/// `DELETE /users/me/themes/{theme_id}` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeleteThemeRequest {
    /// Path: the theme.
    pub theme_id: i64,
}

/// The theme object (`UserThemeResponse`, API.md §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Theme {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Decimal ARGB text.
    #[schema(pattern = r"^[0-9]{1,10}$")]
    pub primary_color: String,
    /// Decimal ARGB text.
    #[schema(pattern = r"^[0-9]{1,10}$")]
    pub background_color: String,
    /// Decimal ARGB text.
    #[schema(pattern = r"^[0-9]{1,10}$")]
    pub bubble_color_me: String,
    /// Decimal ARGB text.
    #[schema(pattern = r"^[0-9]{1,10}$")]
    pub bubble_color_other: String,
    /// Decimal ARGB text.
    #[schema(pattern = r"^[0-9]{1,10}$")]
    pub text_color: String,
    /// Decimal ARGB text.
    #[schema(pattern = r"^[0-9]{1,10}$")]
    pub secondary_text_color: String,
    /// `light` or `dark`.
    pub brightness: Brightness,
    /// Fresh presigned URL of the wallpaper, or null.
    pub wallpaper_url: Option<String>,
    /// Decimal text such as `"0.0"` (always present in this server's answers).
    pub wallpaper_blur: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
}

endpoint! {
    /// Create a theme.
    CreateTheme: Post "/users/me/themes" in "themes" {
        op: "create_theme", summary: "Create a theme", auth: true, status: 201,
        input: Json, output: Json, request: CreateThemeRequest, response: Theme, errors: [ThemeLimit, InvalidMedia],
    }
}

endpoint! {
    /// The caller's themes, newest first.
    ListThemes: Get "/users/me/themes" in "themes" {
        op: "list_themes", summary: "The caller's themes, newest first", auth: true, status: 200,
        input: None, output: Json, request: Empty, response: Vec<Theme>, errors: [],
    }
}

endpoint! {
    /// Replace a theme.
    UpdateTheme: Put "/users/me/themes/{theme_id}" in "themes" {
        op: "update_theme", summary: "Replace a theme", auth: true, status: 200,
        input: Json, output: Json, request: UpdateThemeRequest, response: Theme, errors: [ThemeNotFound, InvalidMedia],
    }
}

endpoint! {
    /// Delete a theme.
    DeleteTheme: Delete "/users/me/themes/{theme_id}" in "themes" {
        op: "delete_theme", summary: "Delete a theme", auth: true, status: 204,
        input: None, output: Empty, request: DeleteThemeRequest, response: Empty, errors: [ThemeNotFound],
    }
}
