//! The panel's HTML, rendered on the server with maud: every interpolated value is HTML-escaped by the
//! template engine, no page needs JavaScript, and nothing is inline (no `style` attribute, no script), so the
//! strict `Content-Security-Policy` holds. Message contents and password hashes are never passed here.

use maud::{DOCTYPE, Markup, html};
use shared::db::admin::{AuditRow, ConnectionRow, Counts, GroupRow, MessageMeta, UserDetail, UserListRow, UserSort};
use shared::time::format_ms;

/// What every page of a signed-in operator carries: their name and the session's CSRF token.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Operator's display name.
    pub operator: &'a str,
    /// This session's CSRF token (a hidden input in every form).
    pub csrf: &'a str,
}

/// The panel's stylesheet (served at `/admin/static/admin.css`: the CSP allows no inline style).
pub const STYLESHEET: &str = include_str!("admin.css");

fn csrf_input(frame: Frame<'_>) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(frame.csrf); }
}

/// The page around `body`.
pub fn layout(title: &str, frame: Option<Frame<'_>>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Messenger admin" }
                link rel="stylesheet" href="/admin/static/admin.css";
            }
            body {
                @if let Some(frame) = frame {
                    header {
                        nav {
                            a href="/admin" { "Dashboard" }
                            a href="/admin/users" { "Users" }
                            a href="/admin/messages" { "Messages" }
                            a href="/admin/connections" { "Connections" }
                            a href="/admin/groups" { "Groups" }
                            a href="/admin/audit" { "Audit log" }
                        }
                        form.logout method="post" action="/admin/logout" {
                            (csrf_input(frame))
                            span { "Signed in as " strong { (frame.operator) } }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The sign-in form, with an error from the last attempt.
pub fn login(error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.login method="post" action="/admin/login" {
            label { "Phone or username" input type="text" name="login" autocomplete="username" required; }
            label { "Password" input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
        p.hint { "Operators only. Rights are granted on the command line, never here." }
    };
    layout("Sign in", None, &body)
}

/// An error page.
pub fn error(frame: Option<Frame<'_>>, title: &str, detail: &str) -> Markup {
    layout(title, frame, &html! { p.error { (detail) } p { a href="/admin" { "Back to the dashboard" } } })
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn time(ms: i64) -> String {
    format_ms(ms).replace('T', " ")
}

fn opt_time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".to_owned(), time)
}

fn user_link(id: i64, name: Option<&str>) -> Markup {
    html! { a href={ "/admin/users/" (id) } { "#" (id) @if let Some(n) = name { " " (n) } } }
}

/// The dashboard: counts and the messages of the last days as a bar chart (SVG, drawn here).
pub fn dashboard(frame: Frame<'_>, counts: Counts, first_day_ms: i64, per_day: &[i64]) -> Markup {
    let body = html! {
        section.counts {
            div.count { span.label { "Users" } span.value #users-count { (counts.users) } }
            div.count { span.label { "Messages today (UTC)" } span.value { (counts.messages_today) } }
            div.count { span.label { "Open connections" } span.value { (counts.connections) } }
            div.count { span.label { "Storage used" } span.value { (bytes(counts.storage_bytes)) } }
        }
        h2 { "Messages per day, last " (per_day.len()) " days" }
        (chart(first_day_ms, per_day))
    };
    layout("Dashboard", Some(frame), &body)
}

fn chart(first_day_ms: i64, per_day: &[i64]) -> Markup {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    const WIDTH: i64 = 720;
    const TOP: i64 = 20;
    const BASE: i64 = 180;
    const STEP: i64 = 50;
    const BAR: i64 = 40;
    let max = per_day.iter().copied().max().unwrap_or(0).max(1);
    html! {
        svg.chart #messages-chart xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height="210"
            viewBox={ "0 0 " (WIDTH) " 210" } role="img" aria-label="Messages per day" {
            // SVG elements inside HTML need their end tags (`{}`), not maud's void `;`, or the parser nests
            // everything after them inside.
            line x1="0" y1=(BASE) x2=(WIDTH) y2=(BASE) stroke="#999" {}
            @for (i, &n) in per_day.iter().enumerate() {
                @let x = 10 + STEP * i as i64;
                @let height = n * (BASE - TOP) / max;
                @let day = format_ms(first_day_ms + DAY_MS * i as i64);
                g.day {
                    title { (day[..10]) ": " (n) @if n == 1 { " message" } @else { " messages" } }
                    rect.bar x=(x) y=(BASE - height) width=(BAR) height=(height) fill="#3b82f6" {}
                    text x=(x + BAR / 2) y=(BASE - height - 4) text-anchor="middle" font-size="11" { (n) }
                    text x=(x + BAR / 2) y=(BASE + 18) text-anchor="middle" font-size="11" { (day[5..10]) }
                }
            }
        }
    }
}

/// The users list's query, echoed into its forms and links.
#[derive(Debug, Clone, Default)]
pub struct UsersQuery {
    /// Search text.
    pub q: String,
    /// Page, from 1.
    pub page: i64,
    /// Order.
    pub sort: UserSort,
    /// Descending.
    pub desc: bool,
}

impl UsersQuery {
    fn link(&self, page: i64) -> String {
        let dir = if self.desc { "desc" } else { "asc" };
        let page = page.to_string();
        let query = serde_urlencoded::to_string([
            ("q", self.q.as_str()),
            ("sort", self.sort.name()),
            ("dir", dir),
            ("page", page.as_str()),
        ])
        .unwrap_or_default();
        format!("/admin/users?{query}")
    }
}

/// The users list: search, order, pages.
pub fn users(frame: Frame<'_>, query: &UsersQuery, rows: &[UserListRow], total: i64, per_page: i64) -> Markup {
    let pages = ((total + per_page - 1) / per_page).max(1);
    let body = html! {
        form.search method="get" action="/admin/users" {
            label { "Username or name" input type="search" name="q" value=(query.q) maxlength="64"; }
            label { "Sort by"
                select name="sort" {
                    @for sort in [UserSort::Id, UserSort::Username, UserSort::LastSeen] {
                        option value=(sort.name()) selected[sort == query.sort] { (sort.name()) }
                    }
                }
            }
            label { "Order"
                select name="dir" {
                    option value="asc" selected[!query.desc] { "ascending" }
                    option value="desc" selected[query.desc] { "descending" }
                }
            }
            button type="submit" { "Search" }
        }
        p { (total) " accounts" @if !query.q.is_empty() { " matching “" (query.q) "”" } }
        table #users {
            thead { tr { th { "Id" } th { "Username" } th { "Name" } th { "Registered" } th { "Last seen" } th { "Role" } th { "State" } } }
            tbody {
                @for u in rows {
                    tr {
                        td { a href={ "/admin/users/" (u.id) } { (u.id) } }
                        td { a href={ "/admin/users/" (u.id) } { (u.username.as_deref().unwrap_or("—")) } }
                        td.name { (u.first_name.as_deref().unwrap_or("")) " " (u.last_name.as_deref().unwrap_or("")) }
                        td { (time(u.created_at)) }
                        td { (opt_time(u.last_seen)) }
                        td { @if u.is_admin { "operator" } }
                        td { @if u.is_banned { span.banned { "banned" } } @else { "active" } }
                    }
                }
            }
        }
        nav.pages {
            @if query.page > 1 { a rel="prev" href=(query.link(query.page - 1)) { "← Previous" } }
            span { "Page " (query.page) " of " (pages) }
            @if query.page < pages { a rel="next" href=(query.link(query.page + 1)) { "Next →" } }
        }
    };
    layout("Users", Some(frame), &body)
}

fn action_form(frame: Frame<'_>, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.action method="post" action=(action) {
            (csrf_input(frame))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// One account: what an operator needs, never the password hash or message contents; actions as forms.
pub fn user(frame: Frame<'_>, u: &UserDetail, notice: Option<&str>, is_self: bool) -> Markup {
    let a = &u.account;
    let base = format!("/admin/users/{}", a.id);
    let body = html! {
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        table.detail #user-detail {
            tr { th { "Id" } td { (a.id) } }
            tr { th { "Username" } td { (a.username.as_deref().unwrap_or("—")) } }
            tr { th { "Name" } td.name { (a.first_name.as_deref().unwrap_or("")) " " (a.last_name.as_deref().unwrap_or("")) } }
            tr { th { "Phone" } td { (u.phone.as_deref().map_or("—".to_owned(), |p| format!("+{p}"))) } }
            tr { th { "Bio" } td { (u.bio.as_deref().unwrap_or("—")) } }
            tr { th { "Birthdate" } td { (u.birthdate.as_deref().unwrap_or("—")) } }
            tr { th { "Registered" } td { (time(a.created_at)) } }
            tr { th { "Last seen" } td { (opt_time(a.last_seen)) } }
            tr { th { "Role" } td { @if a.is_admin { "operator" } @else { "user" } } }
            tr { th { "State" } td #user-state { @if u.is_deleted { "deleted" } @else if a.is_banned { "banned" } @else { "active" } } }
            tr { th { "Devices" } td { (u.devices) } }
            tr { th { "Open connections" } td { (u.connections) } }
            tr { th { "Messages" } td { (u.sent) " sent, " (u.received) " received · " a href={ "/admin/messages?user_id=" (a.id) } { "metadata" } } }
            tr { th { "Storage" } td { (bytes(u.storage_bytes)) } }
        }
        @if !u.is_deleted {
            h2 { "Actions" }
            div.actions {
                @if is_self {
                    p.hint { "You cannot ban or delete your own account." }
                } @else if a.is_banned {
                    (action_form(frame, &format!("{base}/unban"), "Unban", "unban"))
                } @else {
                    (action_form(frame, &format!("{base}/ban"), "Ban", "ban danger"))
                }
                (action_form(frame, &format!("{base}/revoke-sessions"), "Revoke all sessions", "revoke"))
                @if !is_self {
                    form.action method="post" action={ (base) "/delete" } {
                        (csrf_input(frame))
                        label.confirm { input type="checkbox" name="confirm" value="yes" required; " I understand this deletes the account for good" }
                        button type="submit" class="delete danger" { "Delete account" }
                    }
                }
            }
        }
    };
    layout(&format!("User #{}", a.id), Some(frame), &body)
}

/// Message metadata, newest first: never the ciphertext.
pub fn messages(
    frame: Frame<'_>,
    user_id: Option<i64>,
    rows: &[MessageMeta],
    notice: Option<&str>,
    per_page: i64,
) -> Markup {
    let older = rows.last().filter(|_| rows.len() as i64 == per_page).map(|m| match user_id {
        Some(u) => format!("/admin/messages?user_id={u}&before={}", m.id),
        None => format!("/admin/messages?before={}", m.id),
    });
    let body = html! {
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        form.search method="get" action="/admin/messages" {
            label { "User id" input type="number" name="user_id" min="1" value=[user_id]; }
            button type="submit" { "Filter" }
        }
        table #messages {
            thead { tr { th { "Id" } th { "Time" } th { "From" } th { "To" } th { "Type" } th { "Size" } th { "Media" } th { "Read" } th { "State" } th {} } }
            tbody {
                @for m in rows {
                    tr {
                        td { (m.id) }
                        td { (time(m.created_at)) }
                        td { (user_link(m.sender_id, None)) }
                        td { (user_link(m.receiver_id, None)) }
                        td { (m.message_type) }
                        td { (bytes(m.size)) }
                        td { @if m.has_media { "yes" } @else { "no" } }
                        td { @if m.is_read { "read" } @else { "unread" } }
                        td { @if m.deleted_for_everyone { "deleted" } @else { "stored" } }
                        td {
                            @if !m.deleted_for_everyone {
                                (action_form(frame, &format!("/admin/messages/{}/delete", m.id), "Delete for everyone", "delete danger"))
                            }
                        }
                    }
                }
            }
        }
        @if let Some(older) = older { nav.pages { a rel="next" href=(older) { "Older →" } } }
    };
    layout("Messages", Some(frame), &body)
}

/// Open WebSocket connections, per user.
pub fn connections(frame: Frame<'_>, rows: &[ConnectionRow], limit: i64) -> Markup {
    let body = html! {
        p { (rows.len()) " open connections" @if rows.len() as i64 == limit { " (the first " (limit) ")" } }
        table #connections {
            thead { tr { th { "User" } th { "Device" } th { "Connected" } th { "Connection id" } } }
            tbody {
                @for c in rows {
                    tr {
                        td { (user_link(c.user_id, c.username.as_deref())) }
                        td { code { (c.device_id) } }
                        td { (time(c.connected_at)) }
                        td { code { (c.id) } }
                    }
                }
            }
        }
    };
    layout("Connections", Some(frame), &body)
}

/// MLS groups, newest first: ids, names, member counts, epochs and message counts. The server has no group
/// secret, and the panel shows no ciphertext either.
pub fn groups(frame: Frame<'_>, rows: &[GroupRow], per_page: i64) -> Markup {
    let older = rows.last().filter(|_| rows.len() as i64 == per_page).map(|g| format!("/admin/groups?before={}", g.id));
    let body = html! {
        table #groups {
            thead { tr {
                th { "Group" } th { "Name" } th { "Member devices" } th { "Epoch" } th { "Messages" }
                th { "Created by" } th { "Created" } th { "Last activity" }
            } }
            tbody {
                @for g in rows {
                    tr {
                        td { "#" (g.id) }
                        td { @match &g.name { Some(n) => (n), None => "— (kept by its members)" } }
                        td { (g.member_count) }
                        td { (g.epoch) }
                        td { (g.message_count) }
                        td { (user_link(g.created_by, None)) }
                        td { (time(g.created_at)) }
                        td { (opt_time(g.last_activity_at)) }
                    }
                }
            }
        }
        @if let Some(older) = older { nav.pages { a rel="next" href=(older) { "Older →" } } }
    };
    layout("Groups", Some(frame), &body)
}

/// The audit log, newest first.
pub fn audit(frame: Frame<'_>, rows: &[AuditRow], per_page: i64) -> Markup {
    let older = rows.last().filter(|_| rows.len() as i64 == per_page).map(|a| format!("/admin/audit?before={}", a.id));
    let body = html! {
        table #audit {
            thead { tr { th { "Time" } th { "Operator" } th { "Action" } th { "Target" } } }
            tbody {
                @for a in rows {
                    tr {
                        td { (time(a.created_at)) }
                        td { @match a.admin_id { Some(id) => (user_link(id, a.admin_username.as_deref())), None => "command line" } }
                        td.action { (a.action_name) }
                        td {
                            @if a.target_kind == "user" { (user_link(a.target_id, None)) }
                            @else { (a.target_kind) " #" (a.target_id) }
                        }
                    }
                }
            }
        }
        @if let Some(older) = older { nav.pages { a rel="next" href=(older) { "Older →" } } }
    };
    layout("Audit log", Some(frame), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame<'static> {
        Frame { operator: "op", csrf: "tok\"en" }
    }

    #[test]
    fn values_are_escaped_everywhere() {
        let row = UserListRow {
            id: 1,
            username: Some("<b>u</b>".into()),
            first_name: Some("<img src=x onerror=alert(1)>".into()),
            last_name: Some("\"'&".into()),
            created_at: 0,
            last_seen: None,
            is_admin: false,
            is_banned: false,
        };
        let query = UsersQuery { q: "\"><script>".into(), page: 1, ..UsersQuery::default() };
        let html = users(frame(), &query, &[row], 1, 50).into_string();
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>u"));
        assert!(!html.contains("\"><script>"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("&quot;'&amp;"));
        assert!(html.contains("value=\"tok&quot;en\""), "the CSRF token is an escaped attribute");
    }

    #[test]
    fn every_form_of_a_page_carries_the_csrf_token() {
        let detail = UserDetail {
            account: UserListRow {
                id: 5,
                username: None,
                first_name: None,
                last_name: None,
                created_at: 0,
                last_seen: None,
                is_admin: false,
                is_banned: false,
            },
            phone: Some("15550001111".into()),
            bio: None,
            birthdate: None,
            is_deleted: false,
            devices: 1,
            connections: 0,
            sent: 0,
            received: 0,
            storage_bytes: 0,
        };
        let html = user(frame(), &detail, None, false).into_string();
        let posts = html.matches("method=\"post\"").count();
        assert_eq!(posts, 4, "logout, ban, revoke, delete: {html}");
        assert_eq!(html.matches("name=\"csrf_token\"").count(), posts);
        assert!(html.contains("+15550001111"), "the operator sees the phone");
        let own = user(frame(), &detail, None, true).into_string();
        assert!(!own.contains("/ban\"") && !own.contains("/delete\""), "no ban or delete of oneself");
    }

    #[test]
    fn the_chart_has_a_bar_per_day_scaled_to_the_busiest() {
        let html = chart(0, &[0, 5, 10]).into_string();
        assert_eq!(html.matches("<rect").count(), 3);
        assert_eq!(html.matches("</rect>").count(), 3, "SVG elements are closed: {html}");
        assert_eq!(html.matches("<text").count(), 6, "a count and a day under each bar");
        assert!(html.contains("height=\"160\""), "the busiest day is full height: {html}");
        assert!(html.contains("height=\"80\""));
        assert!(html.contains("1970-01-02: 5 messages"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }
}
