// The operator panel in a real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// sign in, find a user, ban them (their open WebSocket closes, their login gets 403), read the audit log,
// and see a hostile display name as text. Run by tests/scripts/browser-admin.sh against a fresh local stack;
// it needs node --experimental-websocket (Node 20) for the victim's socket.
//
// Environment: BASE_URL (the stack), MESSENGER_LOCAL (its binary, for the `admin grant` step), DATA_DIR
// (the stack's data directory), ARTIFACTS (where screenshots go), CHROMIUM (default /usr/bin/chromium).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const ARTIFACTS = process.env.ARTIFACTS ?? "artifacts";
const XSS_NAME = "<img src=x onerror=alert(1)>";
assert.ok(BASE, "BASE_URL names the running stack");
mkdirSync(ARTIFACTS, { recursive: true });

let browser;
let page;
const dialogs = [];
const suffix = String(Date.now() % 1e7).padStart(7, "0");
const users = {};

async function api(method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const resp = await fetch(`${BASE}${path}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

async function register(key, first, last, n) {
  const phone = `1555${suffix}${n}`;
  const password = `browser password ${n}`;
  const { status, body } = await api("POST", "/auth/register", { first_name: first, last_name: last, phone, password });
  assert.equal(status, 201, JSON.stringify(body));
  users[key] = { id: body.user_id, token: body.access_token, phone, password };
}

before(async () => {
  await register("operator", "Olga", "Operator", 1);
  await register("victim", "Victor", `Banned${suffix}`, 2);
  await register("hostile", XSS_NAME, `Hostile${suffix}`, 3);
  // One message today, so the dashboard's chart has a bar.
  const sock = new WebSocket(`${BASE.replace("http", "ws")}/ws?token=${users.victim.token}`);
  await new Promise((resolve, reject) => { sock.onopen = resolve; sock.onerror = reject; });
  const sent = new Promise((resolve) => { sock.onmessage = (m) => { if (JSON.parse(m.data).event === "message_sent") resolve(); }; });
  sock.send(JSON.stringify({ action: "send_message", receiver_id: users.operator.id, encrypted_content: "opaque ciphertext" }));
  await sent;
  sock.close();
  // The only way to make an operator: the command line, on the running stack's data directory.
  const out = execFileSync(process.env.MESSENGER_LOCAL, ["admin", "grant", users.operator.phone, "--data-dir", process.env.DATA_DIR]);
  assert.match(out.toString(), /is now an operator/);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10000);
  // Any dialog means script ran: the panel has none, so a hostile name must never open one.
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
});

after(async () => {
  await browser?.close();
});

test("an unauthenticated visit lands on the sign-in form, and an operator signs in", async () => {
  await page.goto(`${BASE}/admin`);
  assert.equal(new URL(page.url()).pathname, "/admin/login");
  await page.fill("input[name=login]", users.operator.phone);
  await page.fill("input[name=password]", "not the password");
  await page.click("button[type=submit]");
  assert.equal(await page.textContent("p.error"), "Wrong phone, username or password.");
  await page.fill("input[name=login]", users.operator.phone);
  await page.fill("input[name=password]", users.operator.password);
  await page.click("button[type=submit]");
  assert.equal(new URL(page.url()).pathname, "/admin");
  assert.equal(await page.textContent("h1"), "Dashboard");
  assert.equal(await page.locator("#messages-chart rect").count(), 14);
  // Today's bar carries the message sent in the setup, and the chart's labels are rendered.
  const today = new Date().toISOString().slice(0, 10);
  assert.equal(await page.locator("#messages-chart g.day title").last().textContent(), `${today}: 1 message`);
  const label = await page.locator("#messages-chart text").last().boundingBox();
  assert.ok(label && label.height > 0, "the day labels are drawn");
  assert.equal(await page.textContent("#users-count"), "3");
  // The stylesheet loaded under the CSP (the header nav is laid out as a flex row).
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("header")).display), "flex");
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "admin_session");
  assert.ok(session?.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
  assert.equal(await page.evaluate(() => document.cookie), "", "no script can read the session cookie");
  await page.screenshot({ path: `${ARTIFACTS}/dashboard.png`, fullPage: true });
});

test("searching a user and banning them closes their socket and refuses their login", async () => {
  const victim = users.victim;
  const socket = new WebSocket(`${BASE.replace("http", "ws")}/ws?token=${victim.token}`);
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  const closed = new Promise((resolve) => { socket.onclose = (e) => resolve(e.code); });

  await page.click("text=Users");
  await page.fill("input[name=q]", `banned${suffix}`);
  await page.click("form.search button[type=submit]");
  const rows = page.locator("#users tbody tr");
  assert.equal(await rows.count(), 1);
  await rows.first().locator("a").first().click();
  assert.equal(new URL(page.url()).pathname, `/admin/users/${victim.id}`);
  assert.equal(await page.textContent("#user-state"), "active");
  await page.click("button.ban");
  assert.equal(await page.textContent("#user-state"), "banned");
  assert.match(await page.textContent("p.notice"), /banned/);
  await page.screenshot({ path: `${ARTIFACTS}/user-banned.png`, fullPage: true });

  const code = await Promise.race([closed, new Promise((r) => setTimeout(() => r("still open"), 5000))]);
  assert.notEqual(code, "still open", "the banned user's WebSocket closes at once");
  const login = await api("POST", "/auth/login", { phone: victim.phone, password: victim.password });
  assert.equal(login.status, 403);
  assert.equal(login.body.code, "account_banned");
  assert.equal((await api("GET", "/me", null, victim.token)).status, 401);
});

test("the audit log shows the ban, by whom and on whom", async () => {
  await page.click("text=Audit log");
  const first = page.locator("#audit tbody tr").first();
  assert.equal(await first.locator("td.action").textContent(), "ban");
  const text = await first.textContent();
  assert.ok(text.includes(`#${users.operator.id}`) && text.includes(`#${users.victim.id}`), text);
  await page.screenshot({ path: `${ARTIFACTS}/audit.png`, fullPage: true });
});

test("a hostile display name is shown as text: no dialog, no element", async () => {
  await page.goto(`${BASE}/admin/users?q=hostile${suffix}`);
  const name = page.locator("#users tbody td.name").first();
  assert.equal((await name.textContent()).trim(), `${XSS_NAME} Hostile${suffix}`);
  assert.equal(await page.locator("main img").count(), 0, "no <img> was created");
  await page.goto(`${BASE}/admin/users/${users.hostile.id}`);
  assert.equal(await page.locator("main img").count(), 0);
  assert.ok((await page.textContent("#user-detail")).includes(XSS_NAME));
  await page.waitForTimeout(300);
  assert.deepEqual(dialogs, [], "no script ran");
  await page.screenshot({ path: `${ARTIFACTS}/hostile-name.png`, fullPage: true });
});

test("a forged form without the session's CSRF token changes nothing", async () => {
  const hostile = users.hostile;
  const status = await page.evaluate(async (id) => {
    const resp = await fetch(`/admin/users/${id}/ban`, { method: "POST", body: new URLSearchParams({ csrf_token: "forged" }) });
    return resp.status;
  }, hostile.id);
  assert.equal(status, 403);
  assert.equal((await api("GET", "/me", null, hostile.token)).status, 200, "not banned");
});

test("logging out ends the session", async () => {
  await page.goto(`${BASE}/admin`);
  await page.click("form.logout button");
  assert.equal(new URL(page.url()).pathname, "/admin/login");
  await page.goto(`${BASE}/admin/users`);
  assert.equal(new URL(page.url()).pathname, "/admin/login");
});
