//! The `themes` function: a user's chat themes (API.md §3.3, §5.7).

use shared::api::Router;
use shared::auth::AuthUser;
use shared::db::themes::ThemeValues;
use shared::error::FieldError;
use shared::validate::DisplayName;
use shared::{ApiError, AppState, db};
use wire::themes::{
    CreateTheme, CreateThemeRequest, DeleteTheme, DeleteThemeRequest, ListThemes, Theme, ThemeFields, UpdateTheme,
    UpdateThemeRequest,
};
use wire::{Empty, ErrorCode};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "themes";

/// Most themes one user may keep.
pub const MAX_THEMES: i64 = 50;

const FOREIGN_WALLPAPER: &str = "must be a file uploaded by you through this service";

/// Every route of this function.
pub fn router() -> Router {
    Router::new(FUNCTION)
        .route(CreateTheme, create_theme)
        .route(ListThemes, list_themes)
        .route(UpdateTheme, update_theme)
        .route(DeleteTheme, delete_theme)
}

shared::http_function!(router);

/// The theme object of API.md §3.3, with a fresh URL for its wallpaper.
async fn view(state: &AppState, row: db::themes::Theme) -> Result<Theme, ApiError> {
    let values = row.values;
    let wallpaper_url = match &values.wallpaper_key {
        Some(key) => shared::files::url(state, key).await?,
        None => None,
    };
    Ok(Theme {
        id: row.id,
        name: values.name,
        primary_color: values.primary_color,
        background_color: values.background_color,
        bubble_color_me: values.bubble_color_me,
        bubble_color_other: values.bubble_color_other,
        text_color: values.text_color,
        secondary_text_color: values.secondary_text_color,
        brightness: values.brightness,
        wallpaper_url,
        wallpaper_blur: Some(values.wallpaper_blur),
        created_at: shared::time::format_ms(row.created_at),
    })
}

/// Parses an ARGB colour written as decimal (`"4286336511"`) or `0x` hex; stored as decimal text.
fn parse_color(text: &str) -> Option<String> {
    let text = text.trim();
    // Digits only: `u64` parsing alone would also take a sign (`+255`, `0x+FF`).
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => u64::from_str_radix(hex, 16).ok(),
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse::<u64>().ok(),
        _ => None,
    }?;
    (parsed <= 0xFFFF_FFFF).then(|| parsed.to_string())
}

/// Parses the blur: a decimal number 0–20, shown with at least one decimal (`"5.0"`); absent is `"0.0"`.
fn parse_blur(text: Option<&str>) -> Option<String> {
    let Some(text) = text else { return Some("0.0".into()) };
    // Plain decimal text only (a slider's value, up to 17 decimals): no sign, exponent, `inf` or `NaN`,
    // so the stored text stays short and never reads `-0.0`.
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |t: &str, max: usize| (1..=max).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int, 2) || !digits(frac, 17) {
        return None;
    }
    let n = text.parse::<f64>().ok()?;
    if !(0.0..=20.0).contains(&n) {
        return None;
    }
    Some(if n.fract() == 0.0 { format!("{n:.1}") } else { n.to_string() })
}

/// Validates every field, collecting one 422 entry per failed field (in field order).
async fn validate(state: &AppState, user: &AuthUser, input: ThemeFields) -> Result<ThemeValues, ApiError> {
    let mut errors = Vec::new();
    let mut fail =
        |field: &str, message: &str| errors.push(FieldError { field: field.into(), message: message.into() });
    let name = DisplayName::parse(&input.name).map(DisplayName::into_string).unwrap_or_else(|rule| {
        fail("name", rule);
        String::new()
    });
    let mut color = |field: &str, value: &str| {
        parse_color(value).unwrap_or_else(|| {
            fail(field, "must be a 32-bit ARGB colour as a decimal integer or 0x hex");
            String::new()
        })
    };
    let primary_color = color("primary_color", &input.primary_color);
    let background_color = color("background_color", &input.background_color);
    let bubble_color_me = color("bubble_color_me", &input.bubble_color_me);
    let bubble_color_other = color("bubble_color_other", &input.bubble_color_other);
    let text_color = color("text_color", &input.text_color);
    let secondary_text_color = color("secondary_text_color", &input.secondary_text_color);
    let wallpaper_blur = parse_blur(input.wallpaper_blur.as_deref()).unwrap_or_else(|| {
        fail("wallpaper_blur", "must be a number between 0 and 20");
        String::new()
    });
    let wallpaper_key = match input.wallpaper_url.as_deref() {
        None => None,
        Some(w) if w.trim().is_empty() => None,
        Some(w) => {
            let key = shared::files::owned_key(state, user.id, w).await?;
            if key.is_none() {
                fail("wallpaper_url", FOREIGN_WALLPAPER);
            }
            key
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(ThemeValues {
        name,
        primary_color,
        background_color,
        bubble_color_me,
        bubble_color_other,
        text_color,
        secondary_text_color,
        brightness: input.brightness,
        wallpaper_key,
        wallpaper_blur,
    })
}

/// Inside the write transaction that references it: the wallpaper is still a live upload of the user
/// (a concurrent clean-up may have marked it deleted since it was validated).
async fn ensure_wallpaper(tx: &shared::db::Conn, user: &AuthUser, key: Option<&str>) -> Result<(), ApiError> {
    match key {
        Some(key) if !db::objects::is_live_upload_of(tx, user.id, key).await? => {
            Err(ApiError::field("wallpaper_url", FOREIGN_WALLPAPER))
        }
        _ => Ok(()),
    }
}

/// `POST /users/me/themes` — 201 with the theme; at most 50 per user (409 `theme_limit`).
async fn create_theme(state: &AppState, user: AuthUser, input: CreateThemeRequest) -> Result<Theme, ApiError> {
    let values = validate(state, &user, input).await?;
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    if db::themes::count(&tx, user.id).await? >= MAX_THEMES {
        return Err(ErrorCode::ThemeLimit.into());
    }
    ensure_wallpaper(&tx, &user, values.wallpaper_key.as_deref()).await?;
    let row = db::themes::insert(&tx, user.id, &values, shared::time::now_ms()).await?;
    let theme = view(state, row).await?;
    tx.commit().await?;
    Ok(theme)
}

/// `GET /users/me/themes` — newest first.
async fn list_themes(state: &AppState, user: AuthUser, _input: Empty) -> Result<Vec<Theme>, ApiError> {
    let rows = {
        let conn = state.db.conn().await?;
        db::themes::list(&conn, user.id).await?
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(view(state, row).await?);
    }
    Ok(out)
}

/// The wallpaper key of one of the caller's themes; 404 `theme_not_found` for any other id.
async fn wallpaper_of(conn: &shared::db::Conn, user: &AuthUser, id: i64) -> Result<Option<String>, ApiError> {
    db::themes::wallpaper(conn, id, user.id).await?.ok_or(ApiError::code(ErrorCode::ThemeNotFound))
}

/// `PUT /users/me/themes/{theme_id}` — replaces every field; a replaced wallpaper object is deleted.
async fn update_theme(state: &AppState, user: AuthUser, input: UpdateThemeRequest) -> Result<Theme, ApiError> {
    let (id, fields) = input.into_parts();
    let old = wallpaper_of(&*state.db.conn().await?, &user, id).await?;
    let values = validate(state, &user, fields).await?;
    let theme = {
        let conn = state.db.conn().await?;
        let tx = conn.write_tx().await?;
        ensure_wallpaper(&tx, &user, values.wallpaper_key.as_deref()).await?;
        let row =
            db::themes::update(&tx, id, user.id, &values).await?.ok_or(ApiError::code(ErrorCode::ThemeNotFound))?;
        let theme = view(state, row).await?;
        tx.commit().await?;
        theme
    };
    if let Some(old) = old.filter(|o| Some(o) != values.wallpaper_key.as_ref()) {
        shared::files::delete_if_orphaned(state, &[old]).await;
    }
    Ok(theme)
}

/// `DELETE /users/me/themes/{theme_id}` — 204; its wallpaper object is deleted unless still used.
async fn delete_theme(state: &AppState, user: AuthUser, input: DeleteThemeRequest) -> Result<Empty, ApiError> {
    let id = input.theme_id;
    let old = {
        let conn = state.db.conn().await?;
        let old = wallpaper_of(&conn, &user, id).await?;
        db::themes::delete(&conn, id, user.id).await?;
        old
    };
    if let Some(old) = old {
        shared::files::delete_if_orphaned(state, &[old]).await;
    }
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_themes_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }

    #[test]
    fn colours_accept_decimal_and_hex_up_to_32_bits() {
        assert_eq!(parse_color("4286336511").as_deref(), Some("4286336511"));
        assert_eq!(parse_color("0xFF7C4DFF").as_deref(), Some("4286336511"));
        assert_eq!(parse_color(" 255 ").as_deref(), Some("255"));
        assert_eq!(parse_color("4294967296"), None);
        assert_eq!(parse_color("-1"), None);
        assert_eq!(parse_color("red"), None);
        assert_eq!(parse_color(""), None);
    }

    #[test]
    fn blur_is_a_number_between_0_and_20() {
        assert_eq!(parse_blur(None).as_deref(), Some("0.0"));
        assert_eq!(parse_blur(Some("5")).as_deref(), Some("5.0"));
        assert_eq!(parse_blur(Some("12.5")).as_deref(), Some("12.5"));
        assert_eq!(parse_blur(Some("20.1")), None);
        assert_eq!(parse_blur(Some("-1")), None);
        assert_eq!(parse_blur(Some("NaN")), None);
        assert_eq!(parse_blur(Some("true")), None);
        for odd in ["-0", "+5", "1e-300", "5e-324", "inf", ".5", "5.", "1_0"] {
            assert_eq!(parse_blur(Some(odd)), None, "{odd}");
        }
        assert_eq!(parse_blur(Some("7.123456789012345")).as_deref(), Some("7.123456789012345"));
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_32_bit_colour_reads_the_same_in_each_spelling(n in any::<u32>(), pad in 0usize..4) {
            let expected = Some(n.to_string());
            prop_assert_eq!(parse_color(&n.to_string()), expected.clone());
            prop_assert_eq!(parse_color(&format!("0x{n:X}")), expected.clone());
            prop_assert_eq!(parse_color(&format!("0X{:0width$x}", n, width = 8 + pad)), expected.clone());
            prop_assert_eq!(parse_color(&format!(" {n} ")), expected);
        }

        #[test]
        fn accepted_colours_are_digits_and_fixed_points(text in "[ +\\-0-9a-fA-FxX]{0,12}|\\PC{0,12}") {
            if let Some(out) = parse_color(&text) {
                let t = text.trim();
                let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"));
                prop_assert!(match hex {
                    Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
                    None => t.bytes().all(|b| b.is_ascii_digit()),
                }, "{:?}", text);
                prop_assert_eq!(parse_color(&out), Some(out.clone()));
            }
        }

        #[test]
        fn accepted_blurs_are_short_non_negative_fixed_points(text in "[0-9]{0,3}(\\.[0-9]{0,18})?|[-+eE.0-9a-z]{0,8}|\\PC{0,10}") {
            if let Some(out) = parse_blur(Some(&text)) {
                let n: f64 = out.parse().unwrap();
                prop_assert!((0.0..=20.0).contains(&n) && !out.starts_with('-') && out.len() <= 20, "{:?} -> {:?}", text, out);
                prop_assert_eq!(parse_blur(Some(&out)), Some(out.clone()), "a fixed point");
            }
        }
    }

    #[test]
    fn numbers_are_not_colours_or_blurs() {
        let body = |primary: &str, blur: &str| {
            format!(
                r#"{{"name": "T", "primary_color": {primary}, "background_color": "1", "bubble_color_me": "1",
                "bubble_color_other": "1", "text_color": "1", "secondary_text_color": "1", "brightness": "dark",
                "wallpaper_blur": {blur}}}"#
            )
        };
        let decode = |text: String| serde_json::from_str::<CreateThemeRequest>(&text);
        assert_eq!(decode(body(r#""255""#, r#""5""#)).unwrap().primary_color, "255");
        assert!(decode(body("255", r#""5""#)).is_err(), "a number colour");
        assert!(decode(body(r#""255""#, "5")).is_err(), "a number blur");
        assert_eq!(decode(body(r#""255""#, "null")).unwrap().wallpaper_blur, None);
    }
}
