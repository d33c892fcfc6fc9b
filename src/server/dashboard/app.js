/* app.js: the strata dashboard (index.html), served by strata serve at /dashboard/app.js.
 *
 * The token: from the URL's fragment (/dashboard#token=..., which a browser never sends), else
 * from this tab's sessionStorage, else asked for once; the fragment is then removed from the
 * address bar. It travels in the Authorization header only, never in a URL.
 *
 * What it shows: on open, the last 15 minutes from GET /cache/stats/history (a point a second);
 * then, every second, the points after the newest it has (?since=). Every 2 s GET /cache/health
 * (Redis' latency and link) and GET /cache/stats (the totals the tiles show; the read role
 * reads both). Charts are Chart.js 3 (compiled into the binary from Debian's
 * libjs-chart.js). The key browser is shown to an admin token only (GET /cache/keys and
 * /cache/key/ need it); its buttons to the roles their calls need (GET /cache/whoami says which).
 */
"use strict";

(function () {
  const HISTORY_POINTS = 900; /* 15 minutes at one a second, as the server keeps */
  const ROLES = { none: 0, read: 1, write: 2, admin: 3 };
  const TOKEN_KEY = "strata-dashboard-token";
  const $ = (id) => document.getElementById(id);

  let token = null;
  let who = { role: "none", tenant: null, tokens: true };
  let points = [];
  let charts = [];
  let timers = [];
  let polls = 0;

  /* ---- the token ------------------------------------------------------------------------ */

  function takeTokenFromFragment() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      /* The address bar, the history and any bookmark keep no token. */
      history.replaceState(null, "", location.pathname + location.search);
    }
    token = sessionStorage.getItem(TOKEN_KEY);
  }

  function askForToken(why) {
    $("main").hidden = true;
    $("token-form").hidden = false;
    $("token-error").textContent = why || "";
    $("token-input").value = "";
    $("token-input").focus();
    setStatus("needs a token", false);
  }

  /* ---- the server's API ------------------------------------------------------------------- */

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /* Every request: same origin, the token in Authorization (never in the URL), no cache. */
  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers || {});
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch(path, {
      method: opts.method || "GET",
      headers: headers,
      body: opts.body,
      cache: "no-store",
      credentials: "omit",
    });
    const text = await r.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = null;
    }
    if (!r.ok) {
      const err = (body && body.error) || {};
      throw new ApiError(r.status, err.code || "http_" + r.status, err.message || r.statusText);
    }
    return body;
  }

  function can(role) {
    return ROLES[who.role] >= ROLES[role];
  }

  /* ---- formatting ----------------------------------------------------------------------- */

  function fmtNum(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return "-";
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return Number.isInteger(n) ? String(n) : n.toFixed(1);
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "-";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function pct(x) {
    return x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%";
  }

  function clock(t) {
    const d = new Date(t);
    return d.toTimeString().slice(0, 8);
  }

  /* A tile: its text, and its figure as data-value (what tests compare with the API). */
  function tile(id, text, value) {
    const el = $(id);
    el.textContent = text;
    if (value !== undefined) el.dataset.value = String(value);
  }

  function tileState(id, state) {
    const el = $(id);
    el.classList.remove("good", "warn", "bad");
    if (state) el.classList.add(state);
  }

  function setStatus(text, ok) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + (ok ? "ok" : "bad");
  }

  /* ---- charts ------------------------------------------------------------------------------ */

  const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04",
                  "#db2777"];

  /* A reads-per-tier hit ratio: L1's of every read, L2's of what L1 missed. */
  function l1Ratio(p) {
    const all = p.reads.l1 + p.reads.l2 + p.reads.misses;
    return all ? p.reads.l1 / all : null;
  }
  function l2Ratio(p) {
    const past = p.reads.l2 + p.reads.misses;
    return past ? p.reads.l2 / past : null;
  }
  function hitRatio(p) {
    const all = p.reads.l1 + p.reads.l2 + p.reads.misses;
    return all ? (p.reads.l1 + p.reads.l2) / all : null;
  }

  /* Each chart: its canvas, its series (a label and the figure of a point), its y axis. */
  const SPECS = [
    { id: "c-requests", series: [
      ["requests", (p) => p.requests],
      ["4xx", (p) => p.errors_4xx],
      ["5xx", (p) => p.errors_5xx]] },
    { id: "c-reads", stacked: true, series: [
      ["L1 hits", (p) => p.reads.l1],
      ["L2 hits", (p) => p.reads.l2],
      ["misses", (p) => p.reads.misses]] },
    { id: "c-hit", ratio: true, series: [
      ["L1", l1Ratio],
      ["L2", l2Ratio],
      ["both", hitRatio]] },
    { id: "c-ns", ratio: true, dynamic: (p) => p.namespaces || {},
      value: (v) => (v.l1 + v.l2 + v.misses ? v.hit_ratio : null) },
    { id: "c-latency", series: [
      ["p50", (p) => p.latency_ms.p50],
      ["p90", (p) => p.latency_ms.p90],
      ["p99", (p) => p.latency_ms.p99]] },
    { id: "c-memory", bytes: true, series: [
      ["used", (p) => p.l1.bytes],
      ["bound", (p) => p.l1.max_bytes]] },
    { id: "c-evictions", series: [
      ["evictions", (p) => p.l1.evictions],
      ["expirations", (p) => p.l1.expirations]] },
    { id: "c-redis", series: [
      ["errors/s", (p) => p.redis.errors],
      ["available (1/0)", (p) => (p.redis.configured ? (p.redis.available ? 1 : 0) : null)],
      ["link up (1/0)", (p) => (p.redis.configured ? (p.redis.coherent ? 1 : 0) : null)]] },
    { id: "c-ratelimit", series: [
      ["allowed", (p) => p.ratelimit.allowed],
      ["limited", (p) => p.ratelimit.limited]] },
    { id: "c-sessions", series: [
      ["created", (p) => p.sessions.created],
      ["requests", (p) => p.sessions.requests]] },
    { id: "c-llm", series: [
      ["tokens saved", (p) => p.llm.tokens_saved],
      ["answers from cache", (p) => p.llm.hits]] },
  ];

  function makeChart(spec) {
    const yTicks = {};
    if (spec.bytes) yTicks.callback = (v) => fmtBytes(v);
    if (spec.ratio) yTicks.callback = (v) => Math.round(v * 100) + "%";
    const datasets = (spec.series || []).map((s, i) => dataset(s[0], i, spec.stacked));
    const chart = new Chart($(spec.id), {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        elements: { point: { radius: 0 }, line: { borderWidth: 1.5, tension: 0 } },
        scales: {
          x: { type: "linear", ticks: { callback: (v) => clock(v), maxTicksLimit: 6 } },
          y: {
            beginAtZero: true,
            stacked: !!spec.stacked,
            max: spec.ratio ? 1 : undefined,
            ticks: yTicks,
          },
        },
        plugins: {
          legend: { labels: { boxWidth: 10 } },
          tooltip: { callbacks: { title: (items) => (items.length ? clock(items[0].parsed.x) : "") } },
        },
      },
    });
    return { spec: spec, chart: chart };
  }

  function dataset(label, i, fill) {
    const c = COLORS[i % COLORS.length];
    return { label: label, data: [], borderColor: c, backgroundColor: c + (fill ? "55" : "22"),
             fill: !!fill };
  }

  function redraw() {
    for (const c of charts) {
      const spec = c.spec;
      if (spec.dynamic) {
        /* One series per namespace seen in the points. */
        const byName = new Map(c.chart.data.datasets.map((d) => [d.label, d]));
        for (const d of byName.values()) d.data = [];
        for (const p of points) {
          const all = spec.dynamic(p);
          for (const name of Object.keys(all)) {
            let d = byName.get(name);
            if (!d) {
              d = dataset(name, byName.size, false);
              byName.set(name, d);
              c.chart.data.datasets.push(d);
            }
            d.data.push({ x: p.t * 1000, y: spec.value(all[name]) }); /* null: a gap */
          }
        }
      } else {
        spec.series.forEach((s, i) => {
          const out = [];
          for (const p of points) {
            const y = s[1](p);
            out.push({ x: p.t * 1000, y: y === undefined ? null : y }); /* null: a gap */
          }
          c.chart.data.datasets[i].data = out;
        });
      }
      c.chart.update("none");
    }
  }

  /* ---- the figures -------------------------------------------------------------------------- */

  function sum(f) {
    let n = 0;
    for (const p of points) n += f(p) || 0;
    return n;
  }

  function showPoint() {
    const p = points[points.length - 1];
    if (!p) return;
    tile("t-rps", fmtNum(p.requests), p.requests);
    /* Ratios over the last minute: one second may have no reads at all. */
    const minute = { reads: { l1: 0, l2: 0, misses: 0 } };
    for (const q of points.slice(-60))
      for (const k of ["l1", "l2", "misses"]) minute.reads[k] += q.reads[k];
    const h = hitRatio(minute);
    tile("t-hit", pct(h), h === null ? "" : h);
    $("t-hit-tiers").textContent = "L1 " + pct(l1Ratio(minute)) + " · L2 " + pct(l2Ratio(minute)) +
      " (last minute)";
    tile("t-lat", p.latency_ms.p50 + " / " + p.latency_ms.p99 + " ms", p.latency_ms.p99);
    if (!can("admin")) {
      /* Without /cache/stats, the newest point's gauges. */
      tile("t-mem", fmtBytes(p.l1.bytes), p.l1.bytes);
      $("t-mem-sub").textContent = "of " + fmtBytes(p.l1.max_bytes) + " (" +
        pct(p.l1.bytes / p.l1.max_bytes) + ")";
      $("t-mem-sub").dataset.value = String(p.l1.max_bytes);
      tile("t-keys", fmtNum(p.l1.entries), p.l1.entries);
    }
    tile("t-rl", fmtNum(p.ratelimit.allowed) + " / " + fmtNum(p.ratelimit.limited),
         p.ratelimit.limited);
    tile("t-sessions", fmtNum(p.sessions.in_l1), p.sessions.in_l1);
    $("t-sessions-sub").textContent = fmtNum(p.sessions.created) + " created/s";
    const tokens = sum((q) => q.llm.tokens_saved);
    tile("t-llm", fmtNum(tokens), tokens);
    const usd = sum((q) => q.llm.usd_saved);
    $("t-usd").textContent = "$" + usd.toFixed(4) + " saved";
    $("t-usd").dataset.value = String(usd);
    if (!p.redis.configured) {
      tile("t-redis", "none", "none");
      $("t-redis-sub").textContent = "memory only (no REDIS_URL)";
      tileState("tile-redis", null);
    }
  }

  function showStats(s) {
    tile("t-mem", fmtBytes(s.l1.memory_bytes), s.l1.memory_bytes);
    $("t-mem-sub").textContent = "of " + fmtBytes(s.l1.max_memory_bytes) + " (" +
      pct(s.l1.memory_bytes / s.l1.max_memory_bytes) + ") · " + fmtNum(s.l1.evictions) +
      " evicted, " + fmtNum(s.l1.expirations) + " expired";
    $("t-mem-sub").dataset.value = String(s.l1.max_memory_bytes);
    tile("t-keys", fmtNum(s.l1.keys), s.l1.keys);
  }

  function showHealth(h) {
    if (!h.redis_configured) return;
    const state = !h.redis_available ? "bad" : !h.coherent || h.readonly ? "warn" : "good";
    tileState("tile-redis", state);
    tile("t-redis", h.redis_available ? "up" : "down", h.redis_available ? "up" : "down");
    const lat = h.redis_latency_ms !== undefined ? h.redis_latency_ms.toFixed(2) + " ms · " : "";
    $("t-redis-sub").textContent = lat + "breaker " + h.breaker + " · link " +
      (h.coherent ? "up" : "down") + (h.readonly ? " · read-only" : "");
    $("t-redis-sub").dataset.breaker = h.breaker;
  }

  /* ---- polling ------------------------------------------------------------------------------ */

  function addPoints(list) {
    const newest = points.length ? points[points.length - 1].t : 0;
    for (const p of list) if (p.t > newest) points.push(p);
    if (points.length > HISTORY_POINTS) points = points.slice(points.length - HISTORY_POINTS);
  }

  async function pollHistory() {
    const since = points.length ? points[points.length - 1].t : 0;
    const h = await api("/cache/stats/history" + (since ? "?since=" + since : ""));
    addPoints(h.points);
    redraw();
    showPoint();
    updateNamespaces();
  }

  async function pollSlow() {
    const health = await api("/cache/health");
    showHealth(health);
    if (can("read")) {
      showStats(await api("/cache/stats"));
      document.body.dataset.statsPolls = String(Number(document.body.dataset.statsPolls || 0) + 1);
    }
  }

  function every(ms, fn) {
    let busy = false;
    const run = async () => {
      if (busy) return; /* a slow answer is not asked again before it came */
      busy = true;
      try {
        await fn();
        polls++;
        document.body.dataset.polls = String(polls);
        setStatus("live · " + clock(Date.now()), true);
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          stop();
          sessionStorage.removeItem(TOKEN_KEY);
          token = null;
          askForToken("The server did not accept the token.");
        } else {
          setStatus("cannot reach strata: " + e.message, false);
        }
      } finally {
        busy = false;
      }
    };
    run();
    timers.push(setInterval(run, ms));
  }

  function stop() {
    for (const t of timers) clearInterval(t);
    timers = [];
  }

  /* ---- the key browser ---------------------------------------------------------------------- */

  let cursor = "0";
  let pending = null; /* the action the confirmation box waits for */

  function tenant() {
    return $("k-tenant").value.trim() || "default";
  }

  function message(text) {
    $("k-message").textContent = text;
  }

  function updateNamespaces() {
    const names = new Set();
    for (const p of points) for (const n of Object.keys(p.namespaces || {})) names.add(n);
    const list = $("k-ns-list");
    if (list.childElementCount === names.size) return;
    list.replaceChildren();
    for (const n of names) {
      const o = document.createElement("option");
      o.value = n;
      list.appendChild(o);
    }
  }

  function query(extra) {
    const q = new URLSearchParams();
    const ns = $("k-ns").value.trim();
    const pattern = $("k-pattern").value.trim();
    if (ns) q.set("namespace", ns);
    if (pattern) q.set("pattern", pattern);
    q.set("tenant", tenant());
    for (const k of Object.keys(extra || {})) q.set(k, extra[k]);
    return q.toString();
  }

  /* Lists a page of keys; returns what the list now shows, for the message. */
  async function listKeys(from) {
    const page = await api("/cache/keys?" + query({ limit: 50, cursor: from }));
    const rows = $("k-rows");
    if (from === "0") rows.replaceChildren();
    for (const k of page.keys) rows.appendChild(keyRow(k));
    cursor = page.cursor;
    $("k-next").hidden = cursor === "0";
    return rows.childElementCount + " key(s)" + (cursor === "0" ? "" : ", more on the next page");
  }

  function button(text, cls, fn) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (cls) b.className = cls;
    b.addEventListener("click", fn);
    return b;
  }

  function keyRow(k) {
    const tr = document.createElement("tr");
    const name = k.key !== undefined ? k.key : null;
    tr.dataset.key = name !== null ? name : "";
    tr.dataset.namespace = k.namespace;
    const tdNs = document.createElement("td");
    tdNs.textContent = k.namespace;
    const tdKey = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = name !== null ? name : "(binary) " + k.key_b64;
    tdKey.appendChild(code);
    const tdAct = document.createElement("td");
    tdAct.className = "actions";
    if (name !== null) {
      tdAct.appendChild(button("Inspect", "inspect-key", () => run(() => inspect(k.namespace, name))));
      if (can("write"))
        tdAct.appendChild(button("Delete", "danger delete-key",
                                 () => run(() => removeKey(k.namespace, name, tr))));
    }
    tr.append(tdNs, tdKey, tdAct);
    return tr;
  }

  function keyPath(ns, key) {
    return encodeURIComponent(ns) + "/" + encodeURIComponent(key);
  }

  async function inspect(ns, key) {
    const v = await api("/cache/key/" + keyPath(ns, key) + "?tenant=" + encodeURIComponent(tenant()));
    $("k-inspect").hidden = false;
    $("k-inspect-title").textContent = ns + " / " + key;
    const dl = $("k-inspect-fields");
    dl.replaceChildren();
    const fields = [
      ["tier", v.tier],
      ["tenant", v.tenant],
      ["ttl", v.ttl_ms === null ? "none" : (v.ttl_ms / 1000).toFixed(1) + " s"],
      ["size", fmtBytes(v.size)],
      ["type", v.content_type],
      ["tags", v.tags.length ? v.tags.join(", ") : "none"],
      ["created", new Date(v.created_ms).toISOString()],
    ];
    for (const [name, value] of fields) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.field = name;
      dl.append(dt, dd);
    }
    const preview = v.value !== undefined ? v.value : "(binary, base64) " + v.value_b64;
    $("k-inspect-value").textContent = preview.length > 4096 ? preview.slice(0, 4096) + "…" : preview;
    const del = $("k-delete");
    del.hidden = !can("write");
    del.onclick = () => run(() => removeKey(ns, key, null));
  }

  async function removeKey(ns, key, tr) {
    await api("/v1/cache/" + keyPath(ns, key), { method: "DELETE", headers: { "X-Tenant": tenant() } });
    if (!tr)
      for (const row of $("k-rows").children)
        if (row.dataset.key === key && row.dataset.namespace === ns) tr = row;
    if (tr) tr.remove();
    $("k-inspect").hidden = true;
    message("deleted " + ns + " / " + key);
  }

  function confirmThen(text, label, action) {
    $("k-confirm-text").textContent = text;
    $("k-confirm-yes").textContent = label;
    $("k-confirm").hidden = false;
    pending = action;
  }

  async function askClear() {
    const ns = $("k-ns").value.trim();
    const pattern = $("k-pattern").value.trim();
    const n = (await api("/cache/clear?" + query({ dry_run: "true" }), { method: "POST" })).matching;
    if (n === 0) {
      message("no key matches: nothing to clear");
      return;
    }
    const what = (pattern ? "matching " + pattern : "") + (ns ? " in namespace " + ns : " in every namespace");
    confirmThen("This removes " + n + " key" + (n === 1 ? "" : "s") + " " + what + " of tenant " +
                tenant() + ", from memory and from Redis.", "Remove " + n + " key" + (n === 1 ? "" : "s"),
                async () => {
                  const r = await api("/cache/clear?" + query(), { method: "POST" });
                  const removed = "removed " + r.removed + " key(s)";
                  message(removed);
                  /* The list again, said after the removal (not instead of it). */
                  let listed;
                  try {
                    listed = await listKeys("0");
                  } catch (e) {
                    listed = "the list could not be read again: " + e.message;
                  }
                  message(removed + "; " + listed);
                });
  }

  function askTag() {
    const tag = $("k-tag").value.trim();
    if (!tag) return;
    confirmThen("Invalidate tag " + tag + " of tenant " + tenant() + "? Every entry written with it " +
                "stops being served, on every instance sharing the Redis.", "Invalidate " + tag,
                async () => {
                  const r = await api("/v1/invalidate", {
                    method: "POST",
                    headers: { "Content-Type": "application/json", "X-Tenant": tenant() },
                    body: JSON.stringify({ tags: [tag] }),
                  });
                  message("invalidated " + r.tags_invalidated + " tag(s)");
                });
  }

  /* Runs an action of the key browser, saying what went wrong in the page. */
  async function run(fn) {
    try {
      await fn();
    } catch (e) {
      message((e.code ? e.code + ": " : "") + e.message);
    }
  }

  function setupKeys() {
    if (!can("admin")) return; /* listing and inspecting keys need the admin role */
    $("keys").hidden = false;
    if (who.tenant) {
      $("k-tenant").value = who.tenant;
      $("k-tenant").disabled = true;
    }
    $("k-clear").hidden = !can("admin");
    $("tag-form").hidden = !can("write");
    $("keys-form").addEventListener("submit", (e) => {
      e.preventDefault();
      run(async () => message(await listKeys("0")));
    });
    $("k-next").addEventListener("click", () => run(async () => message(await listKeys(cursor))));
    $("k-clear").addEventListener("click", () => run(askClear));
    $("tag-form").addEventListener("submit", (e) => {
      e.preventDefault();
      run(askTag);
    });
    $("k-confirm-yes").addEventListener("click", () => {
      const action = pending;
      pending = null;
      $("k-confirm").hidden = true;
      if (action) run(action);
    });
    $("k-confirm-no").addEventListener("click", () => {
      pending = null;
      $("k-confirm").hidden = true;
      message("cancelled");
    });
  }

  /* ---- start -------------------------------------------------------------------------------- */

  async function start() {
    try {
      who = await api("/cache/whoami");
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        sessionStorage.removeItem(TOKEN_KEY);
        token = null;
        askForToken(e.status === 401 && document.body.dataset.asked ? "The server did not accept the token." : "");
      } else {
        setStatus("cannot reach strata: " + e.message, false);
      }
      return;
    }
    $("token-form").hidden = true;
    $("main").hidden = false;
    $("who").textContent = who.tokens
      ? "role " + who.role + (who.tenant ? " · tenant " + who.tenant : "")
      : "development mode (no tokens)";
    document.body.dataset.role = who.role;
    $("change-token").hidden = !who.tokens;
    if (!charts.length) charts = SPECS.map(makeChart);
    setupKeys();
    every(1000, pollHistory);
    every(2000, pollSlow);
  }

  document.addEventListener("DOMContentLoaded", () => {
    takeTokenFromFragment();
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const t = $("token-input").value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      token = t;
      document.body.dataset.asked = "1";
      start();
    });
    $("change-token").addEventListener("click", () => {
      stop();
      sessionStorage.removeItem(TOKEN_KEY);
      location.reload();
    });
    start();
  });
})();
