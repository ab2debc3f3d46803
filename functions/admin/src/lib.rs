//! The `admin` function: the operator panel at `/admin` (API.md §11.2), server-rendered HTML.
//!
//! Only operators (`is_admin`, granted on the command line) sign in; the session is the `admin_session`
//! cookie ([`session`]), never a bearer token, and the API never accepts the cookie. Every state change is
//! a POST carrying the session's CSRF token; pages show metadata only (no ciphertext, no password hash).
//! Actions go through the same code as the API's ([`shared::accounts`], [`shared::messages`]) and each
//! writes an audit row. `ADMIN_ENABLED=false` turns every `/admin` path into a 404.

pub mod pages;
pub mod session;

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use maud::Markup;
use serde::Deserialize;
use shared::db::admin::{AuditEntry, SessionOperator, UserSort};
use shared::error::ErrorCode;
use shared::time::now_ms;
use shared::{ApiError, AppState, db};

use crate::pages::{Frame, UsersQuery};
use crate::session::{Keys, SessionId};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "admin";

const USERS_PER_PAGE: i64 = 50;
const MESSAGES_PER_PAGE: i64 = 100;
const AUDIT_PER_PAGE: i64 = 100;
const GROUPS_PER_PAGE: i64 = 100;
const CONNECTIONS_LIMIT: i64 = 1000;
const CHART_DAYS: usize = 14;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// A session's last-use time is written at most this often (each write is a database round trip).
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// Checks at start that the panel can work: enabled needs `ADMIN_SESSION_SECRET`.
pub fn check_config(config: &shared::config::Config) -> Result<(), &'static str> {
    if config.admin.enabled && config.admin.session_secret.is_none() {
        return Err("ADMIN_SESSION_SECRET must be set (at least 32 bytes, not JWT_SECRET), or ADMIN_ENABLED=false");
    }
    Ok(())
}

/// Serves one panel request; every outcome is a response (HTML, a redirect, or the contract's 404).
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    let Some(secret) = state.config.admin.session_secret.as_ref().filter(|_| state.config.admin.enabled) else {
        return ApiError::RouteNotFound.into_response();
    };
    let keys = Keys::new(secret.expose().as_bytes());
    let mut resp = match route(state, &keys, &req).await {
        Ok(resp) => resp,
        Err(fail) => fail.into_response(),
    };
    let headers = resp.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it a browser sends `Origin: null` with form POSTs, which [`same_origin`] refuses.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// Why a panel request did not get its page.
#[derive(Debug)]
enum Fail {
    /// Not signed in: back to the sign-in form.
    SignIn,
    /// A client error, shown as a page with this status.
    Page(StatusCode, &'static str, String),
    /// A failure of the shared code (database, rate limit): its status, its text, and a log line for 5xx.
    Api(ApiError),
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<libsql::Error> for Fail {
    fn from(e: libsql::Error) -> Self {
        Self::Api(e.into())
    }
}

impl Fail {
    fn not_found() -> Self {
        Self::Page(StatusCode::NOT_FOUND, "Not found", "There is no such page or record.".into())
    }

    fn bad_request(detail: impl Into<String>) -> Self {
        Self::Page(StatusCode::BAD_REQUEST, "Bad request", detail.into())
    }

    fn into_response(self) -> Response<Body> {
        match self {
            Self::SignIn => redirect("/admin/login"),
            Self::Page(status, title, detail) => html(status, &pages::error(None, title, &detail)),
            Self::Api(e) => {
                let (status, detail) = (e.status(), e.detail());
                let retry = match &e {
                    ApiError::RateLimited { retry_after } => Some(*retry_after),
                    _ => None,
                };
                if status.is_server_error() {
                    tracing::error!(error = ?e, "panel request failed");
                }
                let mut resp = html(status, &pages::error(None, "Request failed", detail));
                if let Some(secs) = retry {
                    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                }
                resp
            }
        }
    }
}

fn html(status: StatusCode, page: &Markup) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Body::Text(page.clone().into_string()))
        .unwrap_or_default()
}

fn redirect(to: &str) -> Response<Body> {
    Response::builder().status(StatusCode::SEE_OTHER).header(header::LOCATION, to).body(Body::Empty).unwrap_or_default()
}

/// The signed-in operator of a request.
struct Operator {
    id: i64,
    name: String,
    session: SessionId,
    csrf: String,
}

impl Operator {
    fn frame(&self) -> Frame<'_> {
        Frame { operator: &self.name, csrf: &self.csrf }
    }
}

/// The operator behind the request's cookie: HMAC first (a forged cookie costs no query), then a live
/// session of a live, unbanned operator. Bearer tokens are not looked at.
async fn operator(state: &AppState, keys: &Keys, req: &Request) -> Result<Option<Operator>, Fail> {
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::cookie_of)
        .and_then(|value| keys.verify_cookie(value));
    let Some(id) = cookie else { return Ok(None) };
    let now = now_ms();
    let hash = id.hash();
    let conn = state.db.conn().await?;
    let Some(SessionOperator { user_id, username, last_seen_at }) =
        db::admin::session_operator(&conn, &hash, now - session::IDLE_MS).await?
    else {
        return Ok(None);
    };
    if now - last_seen_at > TOUCH_EVERY_MS {
        db::admin::touch_session(&conn, &hash, now).await?;
    }
    let name = username.unwrap_or_else(|| format!("#{user_id}"));
    Ok(Some(Operator { id: user_id, name, csrf: keys.csrf_token(&id), session: id }))
}

/// The decoded `application/x-www-form-urlencoded` body (API Gateway may hand it over base64-decoded as binary).
fn form<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, Fail> {
    serde_urlencoded::from_bytes(req.body().as_ref()).map_err(|_| Fail::bad_request("The form could not be read."))
}

fn query<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, Fail> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|_| Fail::bad_request("The query string could not be read."))
}

/// A positive integer from a path or query value.
fn id(text: &str, what: &str) -> Result<i64, Fail> {
    text.parse::<i64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| Fail::bad_request(format!("{what} must be a positive integer.")))
}

fn optional_id(text: Option<&str>, what: &str) -> Result<Option<i64>, Fail> {
    text.map(str::trim).filter(|t| !t.is_empty()).map(|t| id(t, what)).transpose()
}

/// A cross-site POST (its `Origin` names another host) is refused before anything else, sign-in included.
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: Option<String>,
    confirm: Option<String>,
}

async fn route(state: &AppState, keys: &Keys, req: &Request) -> Result<Response<Body>, Fail> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let post = req.method() == http::Method::POST;
    if !post && req.method() != http::Method::GET {
        return Err(Fail::Page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "Use the panel's links and forms.".into(),
        ));
    }
    if post && !same_origin(req) {
        return Err(Fail::Page(StatusCode::FORBIDDEN, "Forbidden", "Cross-site request refused.".into()));
    }
    match (post, segments.as_slice()) {
        (false, ["admin", "static", "admin.css"]) => {
            return Ok(Response::builder()
                .header(header::CONTENT_TYPE, "text/css; charset=utf-8")
                .body(Body::Text(pages::STYLESHEET.to_owned()))
                .unwrap_or_default());
        }
        (false, ["admin", "login"]) => {
            return Ok(match operator(state, keys, req).await? {
                Some(_) => redirect("/admin"),
                None => html(StatusCode::OK, &pages::login(None)),
            });
        }
        (true, ["admin", "login"]) => return login(state, keys, req).await,
        _ => {}
    }
    let Some(op) = operator(state, keys, req).await? else { return Err(Fail::SignIn) };
    if post {
        let form: CsrfForm = form(req)?;
        if !form.csrf_token.as_deref().is_some_and(|t| keys.csrf_ok(&op.session, t)) {
            tracing::warn!(admin_id = op.id, "panel POST refused: missing or wrong CSRF token");
            return Err(Fail::Page(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The form's security token is missing or belongs to another session. Reload the page and try again."
                    .into(),
            ));
        }
        return match segments.as_slice() {
            ["admin", "logout"] => logout(state, &op).await,
            ["admin", "users", user, action] => {
                let user = id(user, "The user id")?;
                user_action(state, &op, user, action, form.confirm.as_deref() == Some("yes")).await
            }
            ["admin", "messages", message, "delete"] => {
                delete_message(state, &op, id(message, "The message id")?).await
            }
            _ => Err(Fail::not_found()),
        };
    }
    let page = match segments.as_slice() {
        ["admin"] => dashboard(state, &op).await?,
        ["admin", "users"] => users(state, &op, req).await?,
        ["admin", "users", user] => user_page(state, &op, id(user, "The user id")?, req).await?,
        ["admin", "messages"] => messages(state, &op, req).await?,
        ["admin", "connections"] => {
            let conn = state.db.conn().await?;
            pages::connections(op.frame(), &db::admin::connections(&conn, CONNECTIONS_LIMIT).await?, CONNECTIONS_LIMIT)
        }
        ["admin", "groups"] => {
            let q: DoneQuery = query(req)?;
            let before = optional_id(q.before.as_deref(), "before")?;
            let conn = state.db.conn().await?;
            pages::groups(op.frame(), &db::admin::groups_page(&conn, before, GROUPS_PER_PAGE).await?, GROUPS_PER_PAGE)
        }
        ["admin", "audit"] => {
            #[derive(Deserialize)]
            struct Q {
                before: Option<String>,
            }
            let q: Q = query(req)?;
            let before = optional_id(q.before.as_deref(), "before")?;
            let conn = state.db.conn().await?;
            pages::audit(op.frame(), &db::admin::audit_page(&conn, before, AUDIT_PER_PAGE).await?, AUDIT_PER_PAGE)
        }
        _ => return Err(Fail::not_found()),
    };
    Ok(html(StatusCode::OK, &page))
}

/// One text for an unknown account, a wrong password and an account that is not an operator.
const INVALID_LOGIN: &str = "Wrong phone, username or password.";

#[derive(Deserialize)]
struct LoginForm {
    login: Option<String>,
    password: Option<String>,
}

/// `POST /admin/login`: the API's login rules and counters ([`shared::auth::check_login`]), then operators
/// only; a new session and its cookie. Failures re-show the form with the reason and the contract's status.
async fn login(state: &AppState, keys: &Keys, req: &Request) -> Result<Response<Body>, Fail> {
    let input: LoginForm = form(req)?;
    let (login, password) = (input.login.unwrap_or_default(), input.password.unwrap_or_default());
    let again = |status: StatusCode, why: &str| Ok(html(status, &pages::login(Some(why))));
    if login.trim().is_empty() || password.is_empty() || login.len() > 64 || password.len() > 72 {
        return again(StatusCode::UNPROCESSABLE_ENTITY, "Enter a phone or username and a password.");
    }
    let source_ip = shared::http::source_ip(req);
    let name = shared::auth::LoginName::parse(&login);
    let account = match shared::auth::check_login(state, &source_ip, name, password).await {
        Ok(account) => account,
        Err(e @ ApiError::RateLimited { .. }) => return Err(e.into()),
        Err(e) if e.error_code() == ErrorCode::InvalidCredentials => return again(e.status(), INVALID_LOGIN),
        Err(e) if e.status().is_client_error() => return again(e.status(), e.detail()),
        Err(e) => return Err(e.into()),
    };
    let now = now_ms();
    let id = SessionId::generate().map_err(|e| ApiError::Internal(anyhow::anyhow!("random session id: {e}")))?;
    let conn = state.db.conn().await?;
    // Same answer as a wrong password: the form does not tell who is an operator.
    if !db::admin::is_operator(&conn, account.id).await? {
        tracing::warn!(user_id = account.id, "panel sign-in refused: not an operator");
        return again(StatusCode::UNAUTHORIZED, INVALID_LOGIN);
    }
    db::admin::delete_idle_sessions(&conn, now - session::IDLE_MS).await?;
    db::admin::insert_session(&conn, &id.hash(), account.id, now).await?;
    tracing::info!(admin_id = account.id, "panel sign-in");
    let mut resp = redirect("/admin");
    let cookie = session::set_cookie(&keys.cookie_value(&id), state.config.admin.cookie_secure);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(resp)
}

/// `POST /admin/logout`: the session row goes, the cookie is cleared.
async fn logout(state: &AppState, op: &Operator) -> Result<Response<Body>, Fail> {
    let conn = state.db.conn().await?;
    db::admin::delete_session(&conn, &op.session.hash()).await?;
    let mut resp = redirect("/admin/login");
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(state.config.admin.cookie_secure)) {
        resp.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(resp)
}

async fn audit(state: &AppState, op: &Operator, action: &str, target_kind: &str, target_id: i64) -> Result<(), Fail> {
    let conn = state.db.conn().await?;
    let entry = AuditEntry { admin_id: Some(op.id), action, target_kind, target_id };
    db::admin::audit(&conn, entry, now_ms()).await?;
    tracing::info!(admin_id = op.id, action, target_kind, target_id, "operator action");
    Ok(())
}

/// `POST /admin/users/{id}/{ban|unban|revoke-sessions|delete}`.
async fn user_action(
    state: &AppState,
    op: &Operator,
    user: i64,
    action: &str,
    confirmed: bool,
) -> Result<Response<Body>, Fail> {
    if user == op.id && matches!(action, "ban" | "delete") {
        return Err(Fail::Page(
            StatusCode::CONFLICT,
            "Not allowed",
            "You cannot ban or delete your own account.".into(),
        ));
    }
    let (found, audited, done) = match action {
        "ban" => (shared::accounts::set_banned(state, user, true).await?, "ban", "banned"),
        "unban" => (shared::accounts::set_banned(state, user, false).await?, "unban", "unbanned"),
        "revoke-sessions" => (shared::accounts::revoke_sessions(state, user).await?, "revoke_sessions", "revoked"),
        "delete" => {
            if !confirmed {
                return Err(Fail::bad_request("Tick the confirmation box to delete an account."));
            }
            (shared::accounts::delete(state, user).await?, "delete_user", "deleted")
        }
        _ => return Err(Fail::not_found()),
    };
    if !found {
        return Err(Fail::not_found());
    }
    audit(state, op, audited, "user", user).await?;
    Ok(redirect(&format!("/admin/users/{user}?done={done}")))
}

/// `POST /admin/messages/{id}/delete`: the sender's delete for everyone, on the operator's word.
async fn delete_message(state: &AppState, op: &Operator, id: i64) -> Result<Response<Body>, Fail> {
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let Some(msg) = db::messages::find_live(&tx, id).await? else { return Err(Fail::not_found()) };
    let keys = shared::messages::wipe_for_everyone(&tx, id).await?;
    tx.commit().await?;
    drop(conn);
    shared::messages::deleted_for_everyone(state, &msg, &keys).await;
    audit(state, op, "delete_message", "message", id).await?;
    Ok(redirect(&format!("/admin/messages?user_id={}&done=deleted", msg.sender_id)))
}

async fn dashboard(state: &AppState, op: &Operator) -> Result<Markup, Fail> {
    let now = now_ms();
    let today = now - now.rem_euclid(DAY_MS);
    let first_day = today - DAY_MS * (CHART_DAYS as i64 - 1);
    let conn = state.db.conn().await?;
    let counts = db::admin::counts(&conn, today).await?;
    let per_day = db::admin::messages_per_day(&conn, first_day, CHART_DAYS).await?;
    Ok(pages::dashboard(op.frame(), counts, first_day, &per_day))
}

async fn users(state: &AppState, op: &Operator, req: &Request) -> Result<Markup, Fail> {
    #[derive(Deserialize)]
    struct Q {
        q: Option<String>,
        page: Option<String>,
        sort: Option<String>,
        dir: Option<String>,
    }
    let q: Q = query(req)?;
    let text = q.q.unwrap_or_default().trim().to_owned();
    if text.chars().count() > 64 {
        return Err(Fail::bad_request("The search text is at most 64 characters."));
    }
    let page = optional_id(q.page.as_deref(), "page")?.unwrap_or(1);
    let sort = match q.sort.as_deref().filter(|s| !s.is_empty()) {
        None => UserSort::Id,
        Some(s) => UserSort::parse(s).ok_or_else(|| Fail::bad_request("sort is one of id, username, last_seen."))?,
    };
    let desc = match q.dir.as_deref().unwrap_or("") {
        "" | "asc" => false,
        "desc" => true,
        _ => return Err(Fail::bad_request("dir is asc or desc.")),
    };
    let needle = (!text.is_empty()).then(|| text.to_lowercase());
    let offset = (page - 1).checked_mul(USERS_PER_PAGE).ok_or_else(|| Fail::bad_request("page is too large."))?;
    let conn = state.db.conn().await?;
    let rows = db::admin::users_page(&conn, needle.as_deref(), sort, desc, offset, USERS_PER_PAGE).await?;
    let total = db::admin::users_count(&conn, needle.as_deref()).await?;
    let query = UsersQuery { q: text, page, sort, desc };
    Ok(pages::users(op.frame(), &query, &rows, total, USERS_PER_PAGE))
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "banned" => Some("The account is banned: its tokens and connections stopped working."),
        "unbanned" => Some("The account is no longer banned."),
        "revoked" => Some("Every session of the account was revoked."),
        "deleted" => Some("Deleted."),
        _ => None,
    }
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
    user_id: Option<String>,
    before: Option<String>,
}

async fn user_page(state: &AppState, op: &Operator, user: i64, req: &Request) -> Result<Markup, Fail> {
    let q: DoneQuery = query(req)?;
    let conn = state.db.conn().await?;
    let detail = db::admin::user_detail(&conn, user).await?.ok_or_else(Fail::not_found)?;
    Ok(pages::user(op.frame(), &detail, notice(q.done.as_deref()), user == op.id))
}

async fn messages(state: &AppState, op: &Operator, req: &Request) -> Result<Markup, Fail> {
    let q: DoneQuery = query(req)?;
    let user = optional_id(q.user_id.as_deref(), "user_id")?;
    let before = optional_id(q.before.as_deref(), "before")?;
    let conn = state.db.conn().await?;
    let rows = db::admin::messages_page(&conn, user, before, MESSAGES_PER_PAGE).await?;
    Ok(pages::messages(op.frame(), user, &rows, notice(q.done.as_deref()), MESSAGES_PER_PAGE))
}
