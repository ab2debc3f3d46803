//! The `themes` function: a user's chat themes (API.md §3.3, §5.7).

use lambda_http::{Body, Request, Response};
use libsql::Row;
use serde::Serialize;
use serde_json::Value;
use shared::auth::{AuthUser, authenticate_request};
use shared::error::FieldError;
use shared::http::{Matched, Params, json_response, match_route, no_content, ok};
use shared::{ApiError, AppState};

/// Name of this function in `template.yaml` and in the routing table.
pub const FUNCTION: &str = "themes";

/// Most themes one user may keep.
pub const MAX_THEMES: i64 = 50;

const COLORS: [&str; 6] = [
    "primary_color",
    "background_color",
    "bubble_color_me",
    "bubble_color_other",
    "text_color",
    "secondary_text_color",
];

const COLUMNS: &str = "id, name, primary_color, background_color, bubble_color_me, bubble_color_other, text_color, \
    secondary_text_color, brightness, wallpaper_key, wallpaper_blur, created_at";

/// Serves one request; every error becomes its contract response.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    dispatch(state, req).await.unwrap_or_else(ApiError::into_response)
}

async fn dispatch(state: &AppState, req: Request) -> Result<Response<Body>, ApiError> {
    let m = match_route(FUNCTION, req.method(), req.uri().path())?;
    let user = authenticate_request(state, &req).await?;
    match m.route.op {
        "create_theme" => create_theme(state, &user, &Params::body(&req)?).await,
        "list_themes" => list_themes(state, &user).await,
        "update_theme" => update_theme(state, &user, &m, &Params::body(&req)?).await,
        "delete_theme" => delete_theme(state, &user, &m).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

/// The theme object of API.md §3.3.
#[derive(Debug, Serialize)]
struct ThemeView {
    id: i64,
    name: String,
    primary_color: String,
    background_color: String,
    bubble_color_me: String,
    bubble_color_other: String,
    text_color: String,
    secondary_text_color: String,
    brightness: String,
    wallpaper_url: Option<String>,
    wallpaper_blur: String,
    created_at: String,
}

async fn view(state: &AppState, row: &Row) -> Result<ThemeView, ApiError> {
    let wallpaper: Option<String> = row.get(9)?;
    let wallpaper_url = match wallpaper {
        Some(key) => shared::files::url(state, &key).await?,
        None => None,
    };
    Ok(ThemeView {
        id: row.get(0)?,
        name: row.get(1)?,
        primary_color: row.get(2)?,
        background_color: row.get(3)?,
        bubble_color_me: row.get(4)?,
        bubble_color_other: row.get(5)?,
        text_color: row.get(6)?,
        secondary_text_color: row.get(7)?,
        brightness: row.get(8)?,
        wallpaper_url,
        wallpaper_blur: row.get(10)?,
        created_at: shared::time::format_ms(row.get(11)?),
    })
}

/// A validated theme body.
struct ThemeInput {
    name: String,
    colors: [String; 6],
    brightness: String,
    wallpaper_key: Option<String>,
    wallpaper_blur: String,
}

/// Parses an ARGB colour written as decimal (`"4286336511"`) or `0x` hex; stored as decimal text.
fn parse_color(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse::<u64>().ok(),
    }?;
    (parsed <= 0xFFFF_FFFF).then(|| parsed.to_string())
}

/// Parses the blur: a decimal number 0–20, shown with at least one decimal (`"5.0"`).
fn parse_blur(value: Option<&Value>) -> Option<String> {
    let n = match value {
        None | Some(Value::Null) => return Some("0.0".into()),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok()?,
        Some(Value::Number(n)) => n.as_f64()?,
        Some(_) => return None,
    };
    if !(0.0..=20.0).contains(&n) {
        return None;
    }
    Some(if n.fract() == 0.0 { format!("{n:.1}") } else { n.to_string() })
}

async fn parse_input(state: &AppState, user: &AuthUser, params: &Params) -> Result<ThemeInput, ApiError> {
    let mut errors = Vec::new();
    let mut fail =
        |field: &str, message: &str| errors.push(FieldError { field: field.into(), message: message.into() });
    let name = params.str("name").ok().flatten().map(|n| n.trim().to_owned()).unwrap_or_default();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        fail("name", "must be 1-64 characters");
    }
    let mut colors: [String; 6] = Default::default();
    for (slot, field) in colors.iter_mut().zip(COLORS) {
        match params.value(field).and_then(parse_color) {
            Some(c) => *slot = c,
            None => fail(field, "must be a 32-bit ARGB colour as a decimal integer or 0x hex"),
        }
    }
    let brightness = params.str("brightness").ok().flatten().unwrap_or_default();
    if brightness != "light" && brightness != "dark" {
        fail("brightness", "must be light or dark");
    }
    let wallpaper_blur = parse_blur(params.value("wallpaper_blur")).unwrap_or_else(|| {
        fail("wallpaper_blur", "must be a number between 0 and 20");
        String::new()
    });
    let wallpaper_key = match params.str("wallpaper_url") {
        Ok(None) => None,
        Ok(Some(w)) if w.trim().is_empty() => None,
        Ok(Some(w)) => {
            let key = shared::files::owned_key(state, user.id, &w).await?;
            if key.is_none() {
                fail("wallpaper_url", "must be a file uploaded by you through this service");
            }
            key
        }
        Err(_) => {
            fail("wallpaper_url", "must be a string");
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(ThemeInput { name, colors, brightness, wallpaper_key, wallpaper_blur })
}

impl ThemeInput {
    /// The stored fields in column order: name, the six colours, brightness, wallpaper key, blur.
    fn into_values(self) -> Vec<libsql::Value> {
        let mut values = vec![libsql::Value::from(self.name)];
        values.extend(self.colors.into_iter().map(libsql::Value::from));
        values.extend([self.brightness.into(), self.wallpaper_key.into(), self.wallpaper_blur.into()]);
        values
    }
}

/// Inside the write transaction that references it: the wallpaper is still a live upload of the user
/// (a concurrent clean-up may have marked it deleted since it was validated).
async fn ensure_wallpaper(tx: &libsql::Connection, user: &AuthUser, key: Option<&str>) -> Result<(), ApiError> {
    match key {
        Some(key) if !shared::files::still_owned(tx, user.id, key).await? => {
            Err(ApiError::field("wallpaper_url", "must be a file uploaded by you through this service"))
        }
        _ => Ok(()),
    }
}

fn theme_not_found() -> ApiError {
    ApiError::client(404, "theme_not_found", "Theme not found")
}

/// `POST /users/me/themes` — 201 with the theme; at most 50 per user (409 `theme_limit`).
async fn create_theme(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let input = parse_input(state, user, params).await?;
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let mut rows = tx.query("SELECT COUNT(*) FROM theme WHERE user_id = ?1", [user.id]).await?;
    let count: i64 = rows.next().await?.map(|r| r.get(0)).transpose()?.unwrap_or(0);
    drop(rows);
    if count >= MAX_THEMES {
        return Err(ApiError::client(409, "theme_limit", "Theme limit reached"));
    }
    ensure_wallpaper(&tx, user, input.wallpaper_key.as_deref()).await?;
    let mut values = vec![libsql::Value::from(user.id)];
    values.extend(input.into_values());
    values.push(shared::time::now_ms().into());
    let mut rows = tx
        .query(
            &format!(
                "INSERT INTO theme (user_id, name, primary_color, background_color, bubble_color_me, bubble_color_other, \
                 text_color, secondary_text_color, brightness, wallpaper_key, wallpaper_blur, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING {COLUMNS}"
            ),
            libsql::params_from_iter(values),
        )
        .await?;
    let row = rows.next().await?.ok_or_else(|| anyhow::anyhow!("insert returned no row"))?;
    let theme = view(state, &row).await?;
    // A live row keeps its statement in progress, and a transaction cannot commit while one is.
    drop((row, rows));
    tx.commit().await?;
    Ok(json_response(http::StatusCode::CREATED, &theme))
}

/// `GET /users/me/themes` — newest first.
async fn list_themes(state: &AppState, user: &AuthUser) -> Result<Response<Body>, ApiError> {
    let conn = state.db.conn().await?;
    let mut rows = conn
        .query(&format!("SELECT {COLUMNS} FROM theme WHERE user_id = ?1 ORDER BY created_at DESC, id DESC"), [user.id])
        .await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(view(state, &row).await?);
    }
    Ok(ok(&out))
}

async fn wallpaper_of(conn: &libsql::Connection, user: &AuthUser, id: i64) -> Result<Option<String>, ApiError> {
    let mut rows = conn.query("SELECT wallpaper_key FROM theme WHERE id = ?1 AND user_id = ?2", (id, user.id)).await?;
    let row = rows.next().await?.ok_or_else(theme_not_found)?;
    Ok(row.get(0)?)
}

/// `PUT /users/me/themes/{theme_id}` — replaces every field; a replaced wallpaper object is deleted.
async fn update_theme(
    state: &AppState,
    user: &AuthUser,
    m: &Matched,
    params: &Params,
) -> Result<Response<Body>, ApiError> {
    let id = m.int("theme_id")?;
    let old = wallpaper_of(&*state.db.conn().await?, user, id).await?;
    let input = parse_input(state, user, params).await?;
    let new_wallpaper = input.wallpaper_key.clone();
    let mut values = vec![libsql::Value::from(id), user.id.into()];
    values.extend(input.into_values());
    let theme = {
        let conn = state.db.conn().await?;
        let tx = conn.write_tx().await?;
        ensure_wallpaper(&tx, user, new_wallpaper.as_deref()).await?;
        let mut rows = tx
            .query(
                &format!(
                    "UPDATE theme SET name = ?3, primary_color = ?4, background_color = ?5, bubble_color_me = ?6, \
                     bubble_color_other = ?7, text_color = ?8, secondary_text_color = ?9, brightness = ?10, \
                     wallpaper_key = ?11, wallpaper_blur = ?12 WHERE id = ?1 AND user_id = ?2 RETURNING {COLUMNS}"
                ),
                libsql::params_from_iter(values),
            )
            .await?;
        let row = rows.next().await?.ok_or_else(theme_not_found)?;
        let theme = view(state, &row).await?;
        // A live row keeps its statement in progress, and a transaction cannot commit while one is.
        drop((row, rows));
        tx.commit().await?;
        theme
    };
    if let Some(old) = old.filter(|o| Some(o) != new_wallpaper.as_ref()) {
        shared::files::delete_if_orphaned(state, &[old]).await;
    }
    Ok(ok(&theme))
}

/// `DELETE /users/me/themes/{theme_id}` — 204; its wallpaper object is deleted unless still used.
async fn delete_theme(state: &AppState, user: &AuthUser, m: &Matched) -> Result<Response<Body>, ApiError> {
    let id = m.int("theme_id")?;
    let old = {
        let conn = state.db.conn().await?;
        let old = wallpaper_of(&conn, user, id).await?;
        conn.execute("DELETE FROM theme WHERE id = ?1 AND user_id = ?2", (id, user.id)).await?;
        old
    };
    if let Some(old) = old {
        shared::files::delete_if_orphaned(state, &[old]).await;
    }
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn colours_accept_decimal_and_hex_up_to_32_bits() {
        assert_eq!(parse_color(&json!("4286336511")).as_deref(), Some("4286336511"));
        assert_eq!(parse_color(&json!("0xFF7C4DFF")).as_deref(), Some("4286336511"));
        assert_eq!(parse_color(&json!(255)).as_deref(), Some("255"));
        assert_eq!(parse_color(&json!("4294967296")), None);
        assert_eq!(parse_color(&json!("-1")), None);
        assert_eq!(parse_color(&json!("red")), None);
        assert_eq!(parse_color(&json!(null)), None);
    }

    #[test]
    fn blur_is_a_number_between_0_and_20() {
        assert_eq!(parse_blur(None).as_deref(), Some("0.0"));
        assert_eq!(parse_blur(Some(&json!("5"))).as_deref(), Some("5.0"));
        assert_eq!(parse_blur(Some(&json!(12.5))).as_deref(), Some("12.5"));
        assert_eq!(parse_blur(Some(&json!("20.1"))), None);
        assert_eq!(parse_blur(Some(&json!("NaN"))), None);
        assert_eq!(parse_blur(Some(&json!(true))), None);
    }
}
