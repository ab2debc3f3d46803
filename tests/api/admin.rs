//! The operator panel (`/admin`, API.md §11.2) through the local gateway: sign-in, the cookie session and
//! CSRF tokens, every action's effect on the API and on open sockets, the audit log, output escaping and
//! `ADMIN_ENABLED=false`. The browser tests (`tests/browser/`) drive the same pages in Chromium.

use std::net::{IpAddr, Ipv4Addr};

use messenger_tests::{TestApp, TestUser, secrets};
use reqwest::header::HeaderMap;
use serde_json::json;

/// A browser without JavaScript: keeps the `admin_session` cookie, does not follow redirects.
struct Panel {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

#[derive(Debug)]
struct Page {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The CSRF token of the page's forms (every form carries the same one).
    fn csrf(&self) -> String {
        let at = self.text.find("name=\"csrf_token\" value=\"").expect("a form with a CSRF token") + 25;
        self.text[at..].split('"').next().unwrap().to_owned()
    }

    #[track_caller]
    fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected status; page: {}", self.text);
        self
    }
}

impl Panel {
    fn new(app: &TestApp) -> Self {
        let mut b = [0u8; 3];
        getrandom::fill(&mut b).unwrap();
        let ip = IpAddr::V4(Ipv4Addr::new(127, b[0] | 1, b[1], b[2].max(2)));
        let http =
            reqwest::Client::builder().local_address(ip).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, base: app.base.clone(), cookie: None }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", format!("admin_session={c}")),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(set) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let value = set.split(';').next().unwrap().trim_start_matches("admin_session=").to_owned();
            secrets::record(&value);
            self.cookie = (!value.is_empty()).then_some(value);
        }
        Page { status, headers, text: resp.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    async fn login(&mut self, login: &str, password: &str) -> Page {
        secrets::record(password);
        self.post("/admin/login", &[("login", login), ("password", password)]).await
    }

    /// Signs in as `user` (an operator) and returns the dashboard's CSRF token.
    async fn signed_in(app: &TestApp, user: &TestUser) -> (Self, String) {
        let mut panel = Self::new(app);
        let page = panel.login(&user.phone, &user.password).await.expect(303);
        assert_eq!(page.location(), "/admin");
        let csrf = panel.get("/admin").await.expect(200).csrf();
        (panel, csrf)
    }
}

async fn operator(app: &TestApp) -> TestUser {
    let user = app.user_named("Olga", "Operator").await;
    let change = shared::accounts::set_operator(&app.stack.state.db, &user.phone, true).await.unwrap().unwrap();
    assert_eq!((change.user_id, change.changed), (user.id, true));
    user
}

#[tokio::test]
async fn only_operators_sign_in_and_get_a_strict_cookie() {
    let app = TestApp::spawn().await;
    let plain = app.user().await;
    let op = operator(&app).await;
    let mut panel = Panel::new(&app);

    let page = panel.get("/admin").await.expect(303);
    assert_eq!(page.location(), "/admin/login");
    assert_eq!(panel.get("/admin/users").await.expect(303).location(), "/admin/login");
    let form = panel.get("/admin/login").await.expect(200);
    assert!(form.text.contains("name=\"login\"") && form.text.contains("name=\"password\""));

    // Right password, but not an operator: the same answer as a wrong password, and no cookie.
    let page = panel.login(&plain.phone, &plain.password).await.expect(401);
    assert!(page.text.contains("Wrong phone, username or password."), "{}", page.text);
    assert!(panel.cookie.is_none() && page.headers.get("set-cookie").is_none());
    panel.login(&op.phone, "wrong password!").await.expect(401);
    assert!(panel.cookie.is_none());

    let page = panel.login(&op.phone, &op.password).await.expect(303);
    assert_eq!(page.location(), "/admin");
    let set = page.headers["set-cookie"].to_str().unwrap().to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(set.split("; ").any(|p| p == part), "{part} in {set}");
    }
    assert!(!set.contains("Secure"), "the local stack serves plain HTTP (ADMIN_COOKIE_SECURE=false)");
    let dash = panel.get("/admin").await.expect(200);
    assert!(dash.text.contains("Dashboard") && dash.text.contains("<svg"), "{}", dash.text);
    let csp = dash.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert_eq!(dash.headers["x-frame-options"], "DENY");
    assert!(dash.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    // Signed in, the sign-in form sends the operator on; the stylesheet is served under the CSP.
    assert_eq!(panel.get("/admin/login").await.expect(303).location(), "/admin");
    let css = panel.get("/admin/static/admin.css").await.expect(200);
    assert!(css.headers["content-type"].to_str().unwrap().starts_with("text/css"));

    // A username signs in as well as a phone.
    op.put("/users/me/username", Some(&json!({"new_username": "olga_op"}))).await.expect(200);
    let mut by_name = Panel::new(&app);
    by_name.login("Olga_Op", &op.password).await.expect(303);
    by_name.get("/admin").await.expect(200);
}

#[tokio::test]
async fn bearer_tokens_and_panel_cookies_never_cross() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let (panel, _) = Panel::signed_in(&app, &op).await;
    let cookie = panel.cookie.clone().unwrap();

    // The panel ignores the API's bearer token, even an operator's.
    let resp = panel.http.get(format!("{}/admin", app.base)).bearer_auth(&op.token).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/admin/login");
    // The API ignores the panel's cookie.
    let resp = panel
        .http
        .get(format!("{}/me", app.base))
        .header("cookie", format!("admin_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_authenticated");
    // A cookie whose signature is off opens nothing.
    let (id, tag) = cookie.split_once('.').unwrap();
    let forged = format!("{id}.{}", tag.chars().rev().collect::<String>());
    let mut other = Panel::new(&app);
    other.cookie = Some(forged);
    assert_eq!(other.get("/admin").await.expect(303).location(), "/admin/login");
}

#[tokio::test]
async fn posts_without_this_sessions_csrf_token_change_nothing() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let victim = app.user().await;
    let (mut panel, csrf) = Panel::signed_in(&app, &op).await;
    let (_, other_csrf) = Panel::signed_in(&app, &op).await;
    assert_ne!(csrf, other_csrf, "each session has its own token");
    let ban = format!("/admin/users/{}/ban", victim.id);

    panel.post(&ban, &[]).await.expect(403);
    panel.post(&ban, &[("csrf_token", "")]).await.expect(403);
    panel.post(&ban, &[("csrf_token", &other_csrf)]).await.expect(403);
    panel
        .post(&format!("/admin/users/{}/delete", victim.id), &[("csrf_token", &other_csrf), ("confirm", "yes")])
        .await
        .expect(403);
    panel.post("/admin/logout", &[("csrf_token", &other_csrf)]).await.expect(403);
    victim.get("/me").await.expect(200);
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_audit WHERE admin_id IS NOT NULL").await, 0);
    panel.get("/admin").await.expect(200); // still signed in

    // A cross-site POST is refused even with the token.
    let resp = panel
        .http
        .post(format!("{}{ban}", app.base))
        .header("cookie", format!("admin_session={}", panel.cookie.as_deref().unwrap()))
        .header("origin", "https://evil.example")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    victim.get("/me").await.expect(200);

    let page = panel.post(&ban, &[("csrf_token", &csrf)]).await.expect(303);
    assert_eq!(page.location(), format!("/admin/users/{}?done=banned", victim.id));
    victim.get("/me").await.expect_error(401, "invalid_token");
}

#[tokio::test]
async fn a_ban_closes_sockets_stops_tokens_and_login_and_is_audited() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let victim = app.user_named("Vic", "Tim").await;
    let peer = app.user().await;
    let mut victim_ws = app.ws(&victim.token).await;
    victim_ws.send(&json!({"action": "ping"})).await;
    victim_ws.expect("pong").await;
    let (mut panel, csrf) = Panel::signed_in(&app, &op).await;

    // Found by name, then banned from the detail page's form.
    let list = panel.get("/admin/users?q=tim").await.expect(200);
    assert!(list.text.contains(&format!("/admin/users/{}\"", victim.id)), "{}", list.text);
    assert!(!list.text.contains(&format!("/admin/users/{}\"", peer.id)), "search filters");
    let detail = panel.get(&format!("/admin/users/{}", victim.id)).await.expect(200);
    assert!(detail.text.contains(&format!("+{}", victim.phone.trim_start_matches('+'))), "the operator sees the phone");
    assert!(!detail.text.contains("$2"), "never a bcrypt hash");
    panel.post(&format!("/admin/users/{}/ban", victim.id), &[("csrf_token", &csrf)]).await.expect(303);

    victim_ws.closed().await;
    victim.get("/me").await.expect_error(401, "invalid_token");
    let login = json!({"phone": victim.phone, "password": victim.password});
    victim.client.call("POST", "/auth/login", None, Some(&login)).await.expect_error(403, "account_banned");
    let detail = panel.get(&format!("/admin/users/{}?done=banned", victim.id)).await.expect(200);
    assert!(detail.text.contains("banned") && detail.text.contains("Unban"));
    peer.get("/me").await.expect(200);

    let audit = panel.get("/admin/audit").await.expect(200);
    assert!(audit.text.contains(">ban<"), "{}", audit.text);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM admin_audit WHERE admin_id = {} AND action_name = 'ban' AND target_kind = 'user' AND target_id = {}",
            op.id, victim.id
        ))
        .await,
        1
    );

    // Unbanned, the account logs in again; the tokens from before the ban stay dead.
    panel.post(&format!("/admin/users/{}/unban", victim.id), &[("csrf_token", &csrf)]).await.expect(303);
    victim.client.call("POST", "/auth/login", None, Some(&login)).await.expect(200);
    victim.get("/me").await.expect_error(401, "invalid_token");
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_audit WHERE action_name = 'unban'").await, 1);
}

#[tokio::test]
async fn a_banned_users_socket_is_closed_at_once() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let victim = app.user().await;
    let mut ws = app.ws(&victim.token).await;
    ws.send(&json!({"action": "ping"})).await;
    ws.expect("pong").await;
    let (mut panel, csrf) = Panel::signed_in(&app, &op).await;
    let connections = panel.get("/admin/connections").await.expect(200);
    assert!(connections.text.contains(&format!("/admin/users/{}\"", victim.id)), "{}", connections.text);
    panel.post(&format!("/admin/users/{}/ban", victim.id), &[("csrf_token", &csrf)]).await.expect(303);
    ws.closed().await;
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM connection WHERE user_id = {}", victim.id)).await, 0);
    // A new connection with the old token is refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws_url(), victim.token)).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn revoking_sessions_ends_tokens_and_sockets_but_not_the_account() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let user = app.user().await;
    let mut ws = app.ws(&user.token).await;
    ws.send(&json!({"action": "ping"})).await;
    ws.expect("pong").await;
    let (mut panel, csrf) = Panel::signed_in(&app, &op).await;
    panel.post(&format!("/admin/users/{}/revoke-sessions", user.id), &[("csrf_token", &csrf)]).await.expect(303);
    ws.closed().await;
    user.get("/me").await.expect_error(401, "invalid_token");
    let login = json!({"phone": user.phone, "password": user.password});
    let fresh = user.client.call("POST", "/auth/login", None, Some(&login)).await.expect(200);
    user.client.get("/me", fresh["access_token"].as_str()).await.expect(200);
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_audit WHERE action_name = 'revoke_sessions'").await, 1);
}

#[tokio::test]
async fn deleting_a_user_is_account_deletion_and_needs_confirming() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let user = app.user().await;
    let (mut panel, csrf) = Panel::signed_in(&app, &op).await;
    let delete = format!("/admin/users/{}/delete", user.id);
    panel.post(&delete, &[("csrf_token", &csrf)]).await.expect(400);
    user.get("/me").await.expect(200);
    panel.post(&delete, &[("csrf_token", &csrf), ("confirm", "yes")]).await.expect(303);
    user.get("/me").await.expect_error(401, "invalid_token");
    let login = json!({"phone": user.phone, "password": user.password});
    user.client.call("POST", "/auth/login", None, Some(&login)).await.expect_error(401, "invalid_credentials");
    // The same stub as DELETE /users/me leaves: no phone, no name.
    let stub = format!(
        "SELECT COUNT(*) FROM user WHERE id = {} AND is_deleted = 1 AND phone IS NULL AND first_name IS NULL",
        user.id
    );
    assert_eq!(app.count(&stub).await, 1);
    let detail = panel.get(&format!("/admin/users/{}", user.id)).await.expect(200);
    assert!(detail.text.contains("deleted") && !detail.text.contains("/ban\""));
    panel.post(&delete, &[("csrf_token", &csrf), ("confirm", "yes")]).await.expect(404);
    // Nobody bans or deletes themselves.
    panel.post(&format!("/admin/users/{}/ban", op.id), &[("csrf_token", &csrf)]).await.expect(409);
    panel.get("/admin").await.expect(200);
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_audit WHERE action_name = 'delete_user'").await, 1);
}

#[tokio::test]
async fn messages_show_metadata_only_and_delete_for_everyone() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let (alice, mut a_ws, bob, mut b_ws) = app.two_online().await;
    let secret = "ciphertext-that-the-panel-never-shows";
    let id = alice.send_delivered(&mut a_ws, &bob, &mut b_ws, secret).await;
    let (mut panel, csrf) = Panel::signed_in(&app, &op).await;

    let page = panel.get(&format!("/admin/messages?user_id={}", bob.id)).await.expect(200);
    assert!(page.text.contains(&format!("<td>{id}</td>")), "{}", page.text);
    assert!(page.text.contains(&format!("{} B", secret.len())), "the size is shown");
    for p in [&page, &panel.get("/admin/messages").await.expect(200)] {
        assert!(!p.text.contains(secret), "ciphertext never reaches a page");
    }

    panel.post(&format!("/admin/messages/{id}/delete"), &[("csrf_token", &csrf)]).await.expect(303);
    for ws in [&mut a_ws, &mut b_ws] {
        let ev = ws.expect("message_deleted").await;
        assert_eq!((ev["message_id"].as_i64(), ev["for_everyone"].as_bool()), (Some(id), Some(true)));
    }
    let history = alice.get(&format!("/chats/{}/messages", bob.id)).await.expect(200);
    assert!(history.as_array().unwrap().iter().all(|m| m["id"] != id), "{history}");
    panel.post(&format!("/admin/messages/{id}/delete"), &[("csrf_token", &csrf)]).await.expect(404);
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_audit WHERE action_name = 'delete_message'").await, 1);
}

#[tokio::test]
async fn names_are_shown_as_text_and_lists_page_and_sort() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let evil = app.user_named("<img src=x onerror=alert(1)>", "\"><script>alert(2)</script>").await;
    for i in 0..3 {
        app.user_named("Paged", &format!("Person{i}")).await;
    }
    let (mut panel, _) = Panel::signed_in(&app, &op).await;
    let list = panel.get("/admin/users").await.expect(200);
    assert!(!list.text.contains("<img src=x"), "{}", list.text);
    assert!(!list.text.contains("<script>alert"));
    assert!(list.text.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let detail = panel.get(&format!("/admin/users/{}", evil.id)).await.expect(200);
    assert!(!detail.text.contains("<img src=x") && detail.text.contains("&lt;img"));

    let found = panel.get("/admin/users?q=paged&sort=id&dir=desc").await.expect(200);
    assert!(found.text.contains("3 accounts"), "{}", found.text);
    let (first, last) = (found.text.find("Person2").unwrap(), found.text.find("Person0").unwrap());
    assert!(first < last, "descending by id");
    let empty_page = panel.get("/admin/users?q=paged&page=2").await.expect(200);
    assert!(!empty_page.text.contains("Person"), "50 per page: page 2 is empty");

    for bad in [
        "/admin/users?page=abc",
        "/admin/users?page=0",
        "/admin/users?sort=phone",
        "/admin/users/abc",
        "/admin/messages?user_id=-1",
    ] {
        panel.get(bad).await.expect(400);
    }
    panel.get("/admin/users/987654").await.expect(404);
    panel.get("/admin/nothing-here").await.expect(404);
    let resp = panel.http.put(format!("{}/admin", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn logout_idle_expiry_and_revoked_rights_end_sessions() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let (mut panel, csrf) = Panel::signed_in(&app, &op).await;
    let old_cookie = panel.cookie.clone();
    let page = panel.post("/admin/logout", &[("csrf_token", &csrf)]).await.expect(303);
    assert_eq!(page.location(), "/admin/login");
    assert!(page.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    panel.cookie = old_cookie;
    assert_eq!(panel.get("/admin").await.expect(303).location(), "/admin/login", "the old cookie is dead");

    let (mut idle, _) = Panel::signed_in(&app, &op).await;
    let nine_hours_ago = shared::time::now_ms() - 9 * 3600 * 1000;
    app.db().await.execute("UPDATE admin_session SET last_seen_at = ?1", [nine_hours_ago]).await.unwrap();
    assert_eq!(idle.get("/admin").await.expect(303).location(), "/admin/login");

    let (mut revoked, _) = Panel::signed_in(&app, &op).await;
    let change = shared::accounts::set_operator(&app.stack.state.db, &op.phone, false).await.unwrap().unwrap();
    assert!(change.changed);
    assert_eq!(revoked.get("/admin").await.expect(303).location(), "/admin/login");
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_session").await, 0);
    Panel::new(&app).login(&op.phone, &op.password).await.expect(401);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_audit WHERE admin_id IS NULL AND action_name = 'revoke_admin'").await,
        1
    );
}

#[tokio::test]
async fn panel_logins_are_rate_limited_with_the_api_logins() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN_ACCOUNT_IP", "3/900")]).await;
    let op = operator(&app).await;
    let mut panel = Panel::new(&app);
    for _ in 0..3 {
        panel.login(&op.phone, "wrong password!").await.expect(401);
    }
    let page = panel.login(&op.phone, &op.password).await.expect(429);
    assert!(page.headers.contains_key("retry-after"));
    assert!(panel.cookie.is_none());
}

#[tokio::test]
async fn the_dashboard_counts_and_charts_todays_messages() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let peer = app.user().await;
    app.insert_messages(op.id, peer.id, 7).await;
    let (mut panel, _) = Panel::signed_in(&app, &op).await;
    let dash = panel.get("/admin").await.expect(200);
    let today = &shared::time::format_ms(shared::time::now_ms())[..10];
    assert!(dash.text.contains(&format!("{today}: 7 messages")), "{}", dash.text);
    assert_eq!(dash.text.matches("<rect").count(), 14);
    assert!(dash.text.contains("id=\"users-count\">2<"), "{}", dash.text);
}

#[tokio::test]
async fn admin_enabled_false_removes_every_admin_path() {
    let app = TestApp::spawn_with(&[("ADMIN_ENABLED", "false")]).await;
    let c = app.client();
    for path in ["/admin", "/admin/login", "/admin/users", "/admin/static/admin.css"] {
        c.get(path, None).await.expect_error(404, "not_found");
    }
    c.call("POST", "/admin/login", None, None).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn the_command_line_grants_and_revokes_while_the_stack_runs() {
    const STACK: &str = env!("CARGO_BIN_EXE_messenger-local-under-test");
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_in(dir.path()).await;
    let user = app.user().await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(STACK)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    Panel::new(&app).login(&user.phone, &user.password).await.expect(401);
    let (code, out, err) = cli(&["admin", "grant", &user.phone]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("user {} is now an operator", user.id)), "{out}");
    assert!(!out.contains(user.phone.trim_start_matches('+')), "the phone is not echoed");
    let (mut panel, _) = Panel::signed_in(&app, &user).await;
    let (code, out, _) = cli(&["admin", "grant", &user.phone]);
    assert_eq!(code, Some(0));
    assert!(out.contains("already"), "{out}");

    let (code, out, err) = cli(&["admin", "revoke", &user.phone]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(panel.get("/admin").await.expect(303).location(), "/admin/login");
    let (code, _, err) = cli(&["admin", "grant", "nobody_here"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no live account"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(STACK)
        .args(["admin", "grant", "someone", "--data-dir"])
        .arg(empty.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
}

#[tokio::test]
async fn the_migrate_function_is_the_operator_step_on_aws() {
    const MIGRATE: &str = env!("CARGO_BIN_EXE_migrate-under-test");
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_in(dir.path()).await;
    let user = app.user().await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(MIGRATE)
            .args(args)
            .env("DATABASE_URL", format!("file:{}", dir.path().join("messenger.db").display()))
            .env("JWT_SECRET", "a deployment's secret of at least 32 bytes")
            .env("S3_BUCKET", "bucket")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("DATABASE_AUTH_TOKEN")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, out) = run(&["admin", "grant", &user.phone]);
    assert!(ok, "{out}");
    // Log lines first (stdout, as on Lambda), the report last.
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["admin"], json!({"user_id": user.id, "is_admin": true, "changed": true}), "{out}");
    let (mut panel, _) = Panel::signed_in(&app, &user).await;
    let (ok, out) = run(&["admin", "revoke", &user.phone]);
    assert!(ok, "{out}");
    assert_eq!(panel.get("/admin").await.expect(303).location(), "/admin/login");
    assert!(!run(&["admin", "promote", &user.phone]).0, "only grant or revoke");
    assert!(!run(&["admin", "grant", "nobody_at_all"]).0);
}

#[tokio::test]
async fn the_panel_lists_groups_with_counts_and_never_their_ciphertext() {
    let app = TestApp::spawn().await;
    let op = operator(&app).await;
    let member = app.user().await;
    let group_id = messenger_client::crypto::b64(&[9; 16]);
    let group = member.post("/groups", Some(&json!({"group_id": group_id, "name": "Book club"}))).await.expect(201);
    let id = group["id"].as_i64().unwrap();
    member.post("/groups", Some(&json!({"group_id": messenger_client::crypto::b64(&[8; 16])}))).await.expect(201);
    // A stored group message (its ciphertext must not reach the page).
    app.db()
        .await
        .execute(
            "INSERT INTO mls_message (group_id, sender_id, sender_device_id, epoch, ciphertext, created_at) \
             VALUES (?1, ?2, ?3, 0, 'Q0lQSEVSVEVYVC1TRUNSRVQ=', ?4)",
            (id, member.id, member.device_id.as_str(), shared::time::now_ms()),
        )
        .await
        .unwrap();
    let (mut panel, _) = Panel::signed_in(&app, &op).await;
    let page = panel.get("/admin/groups").await.expect(200).text;
    let row = page.split("<tr>").find(|r| r.contains("Book club")).unwrap_or_else(|| panic!("{page}"));
    let cells: Vec<&str> = row.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap()).collect();
    assert_eq!(&cells[..5], &[format!("#{id}").as_str(), "Book club", "1", "0", "1"], "{row}");
    assert!(row.contains(&format!("/admin/users/{}", member.id)));
    assert!(page.contains("kept by its members"), "the unnamed group");
    assert!(!page.contains("Q0lQSEVSVEVYVC1TRUNSRVQ") && !page.contains(&group_id), "no ciphertext or MLS id");
    assert_eq!(panel.get("/admin/groups?before=x").await.status, 400);
}
