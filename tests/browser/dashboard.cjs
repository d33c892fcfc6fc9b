// dashboard.cjs BASE ADMIN_TOKEN READ_TOKEN ARTIFACT_DIR: the dashboard in a real browser.
//
// Run by tests/integration/test_dashboard_browser.c against a live strata serve (with Redis, under
// load), with playwright-core (from npm, installed into the build tree) driving Debian's headless
// /usr/bin/chromium over the DevTools protocol. It checks, as a person would see it:
//   - an admin token in the fragment: the page loads, charts hold the last minutes at once, and
//     the figures shown are the server's (the tiles between two reads of /cache/stats taken
//     around them; the charts' points equal /cache/stats/history's points of the same second);
//   - the key browser: a pattern lists the keys, one is inspected (TTL, size, type, tags, tier),
//     one deleted in the page is gone from the server, a clear confirms the count the server gave
//     and removes those keys, a tag invalidated hides its keys;
//   - a read token, typed into the form the page shows without one: charts, and no admin button;
//   - a wrong token: the form again, with why;
//   - no request the page made carries a token in its URL, and each call of the API carries it in
//     Authorization; no script error and no Content-Security-Policy violation.
// Screenshots go to ARTIFACT_DIR. Prints "all ok" and exits 0, or says what failed and exits 1.
"use strict";

const { chromium } = require("playwright-core");
const fs = require("fs");
const path = require("path");

const [base, adminToken, readToken, artifacts] = process.argv.slice(2);
const TIMEOUT = 20000;

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

async function api(p, token, opts) {
  const r = await fetch(base + p, Object.assign({ headers: { Authorization: "Bearer " + token } },
                                                opts || {}));
  const json = (r.headers.get("content-type") || "").startsWith("application/json");
  return { status: r.status, body: json ? await r.json() : await r.text() };
}

// Every request a page makes, and every error it shows.
function watch(page, log) {
  page.on("request", (req) => log.requests.push({ url: req.url(), headers: req.headers() }));
  page.on("pageerror", (e) => log.errors.push("pageerror: " + e.message));
  page.on("console", (m) => {
    if (m.type() === "error") log.errors.push("console: " + m.text());
  });
}

function checkRequests(log, token) {
  check(log.requests.length > 0, "the page made requests");
  let apiCalls = 0;
  for (const r of log.requests) {
    for (const t of [adminToken, readToken, "wrong-token-for-the-test"])
      check(!r.url.includes(t) && !decodeURIComponent(r.url).includes(t),
            "no token in a requested URL: " + r.url);
    const u = new URL(r.url);
    check(u.origin === new URL(base).origin, "every request goes to strata itself: " + r.url);
    if (u.pathname.startsWith("/cache/") || u.pathname.startsWith("/v1/")) {
      apiCalls++;
      // Without a token yet, the page asks who it is (401) and then for the token.
      if (token && !(u.pathname === "/cache/whoami" && !r.headers.authorization))
        check(r.headers.authorization === "Bearer " + token,
              "the token in Authorization on " + u.pathname);
    } else {
      check(!r.headers.authorization, "no token sent for the page's own files: " + u.pathname);
    }
  }
  check(apiCalls > 0, "the page called the API");
}

async function waitPolls(page, key, n) {
  const start = await page.evaluate((k) => Number(document.body.dataset[k] || 0), key);
  await page.waitForFunction(([k, want]) => Number(document.body.dataset[k] || 0) >= want,
                             [key, start + n], { timeout: TIMEOUT });
}

// Waits for the key browser's message to match re; a timeout says what the message was, so a
// failure tells a slow answer from a wrong one.
async function waitMessage(page, re) {
  const started = Date.now();
  try {
    await page.waitForFunction((src) => new RegExp(src).test(document.getElementById("k-message").textContent),
                               re.source, { timeout: TIMEOUT });
  } catch (e) {
    const now = await page.textContent("#k-message").catch(() => "(unreadable)");
    throw new Error(`no message matching ${re} after ${Date.now() - started} ms; it says: "${now}"`);
  }
}

async function tileValue(page, id) {
  return page.$eval("#" + id, (el) => el.dataset.value);
}

async function adminPage(browser) {
  const log = { requests: [], errors: [] };
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  watch(page, log);
  await page.goto(base + "/dashboard#token=" + encodeURIComponent(adminToken));
  await page.waitForSelector("#main:not([hidden])", { timeout: TIMEOUT });
  await waitPolls(page, "polls", 3);
  check(!page.url().includes("token"), "the fragment is gone from the address bar");
  check(await page.$eval("body", (b) => b.dataset.role) === "admin", "role admin");
  check(/role admin/.test(await page.textContent("#who")), "the page says the role");

  // The charts: Chart.js drew each, with the minutes before the page opened.
  const charts = await page.$$eval("canvas", (cs) => cs.map((c) => {
    const ch = Chart.getChart(c);
    return { id: c.id, n: ch ? ch.data.datasets.reduce((m, d) => Math.max(m, d.data.length), 0) : -1 };
  }));
  check(charts.length === 11, "11 charts, got " + charts.length);
  for (const c of charts) check(c.n >= 5, "chart " + c.id + " has the history: " + c.n + " points");

  // Figures: between two reads of /cache/stats (the load only adds keys and memory).
  const a = (await api("/cache/stats", adminToken)).body;
  await waitPolls(page, "statsPolls", 2);
  const keys = Number(await tileValue(page, "t-keys"));
  const mem = Number(await tileValue(page, "t-mem"));
  const max = Number(await page.$eval("#t-mem-sub", (el) => el.dataset.value));
  const redisUp = await tileValue(page, "t-redis");
  const breaker = await page.$eval("#t-redis-sub", (el) => el.dataset.breaker);
  const b = (await api("/cache/stats", adminToken)).body;
  check(a.l1.keys <= keys && keys <= b.l1.keys, `L1 keys ${a.l1.keys} <= ${keys} <= ${b.l1.keys}`);
  check(a.l1.memory_bytes <= mem && mem <= b.l1.memory_bytes,
        `L1 memory ${a.l1.memory_bytes} <= ${mem} <= ${b.l1.memory_bytes}`);
  check(max === b.l1.max_memory_bytes, `L1 bound ${max} = ${b.l1.max_memory_bytes}`);
  check(b.l2.available && redisUp === "up", "Redis shown up");
  check(breaker === b.l2.breaker, `breaker ${breaker} = ${b.l2.breaker}`);
  check(keys > 100, "the load's keys are counted: " + keys);

  // The charts' points are the server's: each second's figures never change once written.
  const shown = await page.evaluate(() => {
    const req = Chart.getChart(document.getElementById("c-requests")).data.datasets[0].data;
    const l1 = Chart.getChart(document.getElementById("c-reads")).data.datasets[0].data;
    const n = req.length;
    return [req[n - 2], req[n - 1], l1[n - 1]];
  });
  const hist = (await api("/cache/stats/history", adminToken)).body.points;
  const byT = new Map(hist.map((p) => [p.t * 1000, p]));
  check(byT.has(shown[0].x) && byT.get(shown[0].x).requests === shown[0].y,
        "requests/s of a second equal the history's");
  check(byT.get(shown[1].x).requests === shown[1].y, "requests/s of the newest second");
  check(byT.get(shown[2].x).reads.l1 === shown[2].y, "L1 hits of the newest second");
  check(shown[1].y > 10, "the load is charted: " + shown[1].y + " requests in the newest second");
  const rps = Number(await tileValue(page, "t-rps"));
  check(rps >= 0, "requests/s shown");
  await page.screenshot({ path: path.join(artifacts, "dashboard-admin.png"), fullPage: true });

  // The key browser: list, inspect, delete, clear, invalidate a tag.
  check(await page.isVisible("#keys"), "the key browser is shown to an admin");
  await page.fill("#k-ns", "dash");
  await page.fill("#k-pattern", "k1*");
  await page.click("#keys-form button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#k-rows tr").length === 11,
                             null, { timeout: TIMEOUT });
  const listed = await page.$$eval("#k-rows tr", (rows) => rows.map((r) => r.dataset.key).sort());
  check(JSON.stringify(listed) === JSON.stringify(["k1", "k10", "k11", "k12", "k13", "k14", "k15",
                                                   "k16", "k17", "k18", "k19"]),
        "the keys k1* listed: " + listed);
  await page.click('#k-rows tr[data-key="k13"] button.inspect-key');
  await page.waitForSelector("#k-inspect:not([hidden])", { timeout: TIMEOUT });
  const field = (n) => page.textContent(`#k-inspect-fields dd[data-field="${n}"]`);
  check(await field("tags") === "g3", "tags shown: " + (await field("tags")));
  check(await field("type") === "text/plain", "type shown");
  check(await field("size") === "9 B", "size shown: " + (await field("size")));
  check(/^\d+(\.\d)? s$/.test(await field("ttl")), "ttl shown: " + (await field("ttl")));
  check(["l1", "l2"].includes(await field("tier")), "tier shown");
  check(await page.textContent("#k-inspect-value") === "value k13", "value shown");
  await page.screenshot({ path: path.join(artifacts, "dashboard-keys.png"), fullPage: true });

  await page.click('#k-rows tr[data-key="k12"] button.delete-key');
  await page.waitForSelector('#k-rows tr[data-key="k12"]', { state: "detached", timeout: TIMEOUT });
  check((await api("/v1/cache/dash/k12", adminToken)).status === 404,
        "the key deleted in the browser is gone from the server");
  check((await api("/v1/cache/dash/k11", adminToken)).status === 200, "its neighbour is not");

  await page.fill("#k-pattern", "k2*");
  await page.click("#k-clear");
  await page.waitForSelector("#k-confirm:not([hidden])", { timeout: TIMEOUT });
  const confirmText = await page.textContent("#k-confirm-text");
  check(/This removes 11 keys matching k2\* in namespace dash of tenant default/.test(confirmText),
        "the confirmation says how many: " + confirmText);
  check((await api("/v1/cache/dash/k21", adminToken)).status === 200, "nothing removed before yes");
  await page.click("#k-confirm-yes");
  await waitMessage(page, /removed 11 key/);
  const left = (await api("/cache/keys?namespace=dash&pattern=k2*", adminToken)).body.keys;
  check(left.length === 0, "the cleared keys are gone: " + JSON.stringify(left));

  await page.fill("#k-tag", "g4");
  await page.click("#tag-form button[type=submit]");
  await page.waitForSelector("#k-confirm:not([hidden])", { timeout: TIMEOUT });
  await page.click("#k-confirm-yes");
  await waitMessage(page, /invalidated 1 tag/);
  check((await api("/v1/cache/dash/k14", adminToken)).status === 404, "a key of tag g4 is gone");
  check((await api("/v1/cache/dash/k15", adminToken)).status === 200, "a key of tag g0 is not");

  checkRequests(log, adminToken);
  check(log.errors.length === 0, "no error in the page: " + log.errors.join(" | "));
  await context.close();
}

async function readPage(browser) {
  const log = { requests: [], errors: [] };
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  watch(page, log);
  await page.goto(base + "/dashboard");
  await page.waitForSelector("#token-form:not([hidden])", { timeout: TIMEOUT });
  check(await page.isHidden("#main"), "nothing shown without a token");
  await page.fill("#token-input", readToken);
  await page.click("#token-form button[type=submit]");
  await page.waitForSelector("#main:not([hidden])", { timeout: TIMEOUT });
  await waitPolls(page, "polls", 3);
  check(await page.$eval("body", (b) => b.dataset.role) === "read", "role read");
  check(await page.isHidden("#keys"), "no key browser for a read token");
  const buttons = await page.$$eval("button", (bs) => bs.filter((b) => b.offsetParent !== null)
                                                       .map((b) => b.id || b.textContent));
  for (const b of buttons)
    check(!/delete|clear|invalidate|remove|k-/i.test(b), "no admin button visible: " + b);
  // The counters of /cache/stats are the read role's too: the tiles show its totals.
  await waitPolls(page, "statsPolls", 1);
  check(log.requests.some((r) => new URL(r.url).pathname === "/cache/stats"),
        "a read token's page asks /cache/stats");
  const keys = Number(await tileValue(page, "t-keys"));
  check(keys > 100, "the tiles show the server's figures: " + keys + " keys");
  // A reload keeps the token of this tab (sessionStorage), still out of every URL.
  await page.reload();
  await page.waitForSelector("#main:not([hidden])", { timeout: TIMEOUT });
  await page.screenshot({ path: path.join(artifacts, "dashboard-read.png"), fullPage: true });
  checkRequests(log, readToken);
  // The only errors: the browser's notes of the 401 the first whoami got without a token.
  const other = log.errors.filter((e) => !/status of 401/.test(e));
  check(other.length === 0, "no error in the page: " + other.join(" | "));
  await context.close();
}

async function wrongToken(browser) {
  const log = { requests: [], errors: [] };
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page, log);
  await page.goto(base + "/dashboard#token=wrong-token-for-the-test");
  await page.waitForSelector("#token-form:not([hidden])", { timeout: TIMEOUT });
  check(await page.isHidden("#main"), "nothing shown with a wrong token");
  await page.fill("#token-input", "wrong-token-for-the-test");
  await page.click("#token-form button[type=submit]");
  await page.waitForFunction(() => /not accept/.test(document.getElementById("token-error").textContent),
                             null, { timeout: TIMEOUT });
  checkRequests(log, null);
  await context.close();
}

(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.STRATA_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    await adminPage(browser);
    await readPage(browser);
    await wrongToken(browser);
  } finally {
    await browser.close();
  }
  console.log("all ok");
})().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
