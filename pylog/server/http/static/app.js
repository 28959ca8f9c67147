// pylog dashboard: plain JavaScript, no libraries, no build step.
// Every value from the server is written with textContent (el() below never parses HTML),
// mutating calls carry the page's CSRF token, charts are drawn by hand on <canvas>.
"use strict";

const CSRF = document.querySelector('meta[name="pylog-csrf"]').content;
const PAGE_SIZE = 50;
const HISTORY = 120;                       // points kept per chart (2 minutes at 1/s)
const state = { timer: null, streams: [], rates: [], lag: {}, queues: {} };

// -- DOM helpers ----------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") { for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn); }
    else if (k === "text") node.textContent = v;
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
function table(headers, rows, cls) {
  return el("table", { class: "grid " + (cls || "") },
    el("thead", {}, el("tr", {}, headers.map(h => el("th", { class: h.num ? "num" : null }, h.t || h)))),
    rows instanceof Node ? rows : el("tbody", {}, rows));
}
function td(value, cls) { return el("td", { class: cls }, value === null || value === undefined ? "" : value); }
function link(hash, text) { return el("a", { href: hash }, text); }
function card(label, value) { return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value)); }
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function duration(s) {
  s = Math.floor(s); const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}
function when(ms) { return ms >= 0 ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : ""; }
function toast(text, bad) {
  const t = document.getElementById("toast");
  t.textContent = text; t.className = "toast" + (bad ? " bad" : ""); t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}
function stamp() { document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString(); }

// -- HTTP -----------------------------------------------------------------------------
async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || "GET",
                 headers: { "Accept": "application/json", "X-Pylog-Dashboard": "1" } };
  if (init.method !== "GET") init.headers["X-Pylog-CSRF"] = CSRF;
  if (opts.body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(opts.body); }
  const resp = await fetch(path, init);
  if (resp.status === 401) { showLogin(); throw new Error("401: log in first"); }
  if (resp.status === 204) return null;
  const doc = await resp.json().catch(() => ({ message: resp.statusText }));
  if (!resp.ok) throw new Error((doc.error_code || resp.status) + ": " + (doc.message || resp.statusText));
  return doc;
}
// -- login (a listener with --http-security SASL_*) ------------------------------------
function showLogin() {
  const box = document.getElementById("login");
  if (!box.hidden) return;
  box.hidden = false;
  document.getElementById("login-user").focus();
}
async function login(ev) {
  ev.preventDefault();
  const user = document.getElementById("login-user").value;
  const password = document.getElementById("login-password").value;
  const resp = await fetch("/auth/login", { method: "POST", headers: {
    "Content-Type": "application/json", "X-Pylog-CSRF": CSRF, "X-Pylog-Dashboard": "1" },
    body: JSON.stringify({ user, password }) });
  const msg = document.getElementById("login-error");
  if (!resp.ok) { msg.textContent = "wrong user or password"; return; }
  document.getElementById("login").hidden = true;
  msg.textContent = "";
  location.reload();
}
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  if (form) form.addEventListener("submit", login);
});
function guarded(fn) {
  return async (...args) => { try { await fn(...args); } catch (e) { toast(e.message, true); } };
}

// -- charts ---------------------------------------------------------------------------
function chart(canvas, series, title) {
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 400, h = canvas.clientHeight || 160;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, w, h);
  let max = 1;
  for (const s of series) for (const p of s.points) max = Math.max(max, p);
  g.fillStyle = "#667085"; g.font = "12px system-ui";
  g.fillText(title + "  (max " + (Math.round(max * 10) / 10) + ")", 8, 14);
  const colors = ["#2f6fde", "#e07b00", "#2e7d32", "#c0362c"];
  series.forEach((s, k) => {
    g.strokeStyle = colors[k % colors.length]; g.lineWidth = 1.5; g.beginPath();
    s.points.forEach((p, i) => {
      const age = s.points.length - 1 - i;          // newest point at the right edge
      const x = w - 8 - (w - 16) * age / Math.max(1, HISTORY - 1), y = h - 8 - (h - 34) * p / max;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke(); g.fillStyle = colors[k % colors.length];
    g.fillText(s.name, 8 + 140 * k, 30);
  });
}
function push(list, value) { list.push(value); if (list.length > HISTORY) list.shift(); }

// -- routing --------------------------------------------------------------------------
function stop() {
  clearInterval(state.timer); state.timer = null;
  for (const s of state.streams) s.close();
  state.streams = [];
}
function every(ms, fn) { fn(); state.timer = setInterval(fn, ms); }
function render(...nodes) { const p = document.getElementById("page"); p.replaceChildren(...nodes); return p; }
function route() {
  stop();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const pages = { "": overview, topics: topics, topic: topicPage, groups: groups, group: groupPage, queues: queues };
  const page = pages[parts[0]] || overview;
  const navKey = { "": "overview", topic: "topics", group: "groups" }[parts[0]] || parts[0];
  for (const a of document.querySelectorAll("nav a[data-nav]")) a.classList.toggle("active", a.dataset.nav === navKey);
  guarded(page)(...parts.slice(1));
}
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

// -- overview -------------------------------------------------------------------------
async function overview() {
  const cards = el("div", { class: "cards", id: "overview-cards" });
  const produce = el("canvas", { class: "chart", id: "chart-rates" });
  render(el("h1", {}, "Overview"), cards, el("div", { class: "charts" }, produce));
  const show = (o) => {
    const conns = Object.values(o.connections).reduce((a, b) => a + b, 0);
    cards.replaceChildren(card("Topics", o.topics), card("Partitions", o.partitions),
      card("Size", bytes(o.size_bytes)), card("Log end (sum)", o.log_end_offset),
      card("Produce rate", o.records.produce_rate + "/s"), card("Consume rate", o.records.fetch_rate + "/s"),
      card("Connections", conns + " (kafka " + o.connections.kafka + ", text " + o.connections.text + ", http " + o.connections.http + ")"),
      card("Uptime", duration(o.uptime_seconds)), card("REST consumers", o.consumer_instances));
    push(state.rates, [o.records.produce_rate, o.records.fetch_rate]);
    chart(produce, [{ name: "produced/s", points: state.rates.map(r => r[0]) },
                    { name: "consumed/s", points: state.rates.map(r => r[1]) }], "records per second");
    stamp();
  };
  show(await api("/api/overview"));
  const es = new EventSource("/api/live/metrics");
  es.addEventListener("metrics", (ev) => show(JSON.parse(ev.data)));
  state.streams.push(es);
}

// -- topics ---------------------------------------------------------------------------
async function topics() {
  let offset = 0;
  const filter = el("input", { id: "topic-filter", placeholder: "filter by name" });
  const body = el("div", { id: "topic-table" });
  const pager = el("span", { class: "muted", id: "topic-pager" });
  const name = el("input", { id: "new-topic", placeholder: "new topic name" });
  const parts = el("input", { id: "new-topic-partitions", type: "number", min: 1, value: 1, class: "w80" });
  const load = guarded(async () => {
    const q = encodeURIComponent(filter.value);
    const doc = await api(`/api/topics?q=${q}&offset=${offset}&limit=${PAGE_SIZE}`);
    pager.textContent = doc.total ? `${offset + 1}-${offset + doc.topics.length} of ${doc.total}` : "no topics";
    body.replaceChildren(table(["Topic", { t: "Partitions", num: 1 }, { t: "Records", num: 1 }, { t: "Log end", num: 1 }, { t: "Size", num: 1 }, ""],
      doc.topics.map(t => el("tr", {}, el("td", {}, link("#/topic/" + encodeURIComponent(t.name), t.name)),
        td(t.partitions, "num"), td(t.records, "num"), td(t.log_end_offset, "num"), td(bytes(t.size_bytes), "num"),
        el("td", {}, el("button", { class: "danger", on: { click: () => deleteTopic(t.name, load) } }, "Delete"))))));
    load.total = doc.total; stamp();
  });
  const create = guarded(async () => {
    if (!name.value) return;
    if (!confirm(`Create topic "${name.value}" with ${parts.value} partition(s)?`)) return;
    await api("/topics", { method: "POST", body: { topic: name.value, partitions: Number(parts.value) } });
    toast("created " + name.value); name.value = ""; load();
  });
  filter.addEventListener("input", () => { offset = 0; load(); });
  render(el("h1", {}, "Topics"),
    el("div", { class: "bar" }, filter,
      el("button", { on: { click: () => { offset = Math.max(0, offset - PAGE_SIZE); load(); } } }, "Previous"),
      el("button", { on: { click: () => { if (offset + PAGE_SIZE < (load.total || 0)) { offset += PAGE_SIZE; load(); } } } }, "Next"),
      pager),
    body,
    el("h2", {}, "Create a topic"),
    el("div", { class: "bar" }, name, parts, el("button", { class: "primary", id: "create-topic", on: { click: create } }, "Create")));
  await load();
}
const deleteTopic = guarded(async (name, after) => {
  if (!confirm(`Delete topic "${name}" and all its records? This cannot be undone.`)) return;
  await api("/api/topics/" + encodeURIComponent(name), { method: "DELETE" });
  toast("deleted " + name); after();
});

// -- one topic ------------------------------------------------------------------------
function decode(b64) {
  if (b64 === null || b64 === undefined) return null;
  const raw = atob(b64), out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
function shown(rec, fmt) {
  const data = decode(rec.value);
  if (data === null) return "(null)";
  if (fmt === "hex") return Array.from(data.slice(0, 4096), b => b.toString(16).padStart(2, "0")).join(" ");
  const text = new TextDecoder("utf-8", { fatal: false }).decode(data);
  if (fmt === "json") { try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; } }
  return text;
}
function recordRow(rec, fmt) {
  const headers = (rec.headers || []).map(([k, v]) => k + "=" + (v === null ? "(null)" : v)).join("\n");
  return el("tr", { class: "record" }, td(rec.partition, "num"), td(rec.offset, "num"), td(when(rec.timestamp)),
    td(rec.key === null ? "(null)" : rec.key, "key"), td(headers, "headers"), td(shown(rec, fmt), "value"));
}
const RECORD_HEAD = [{ t: "P", num: 1 }, { t: "Offset", num: 1 }, "Timestamp", "Key", "Headers", "Value"];

async function topicPage(name) {
  const t = await api("/api/topics/" + encodeURIComponent(name));
  const partition = el("select", { id: "browse-partition" }, t.partition_list.map(p => el("option", { value: p.partition }, p.partition)));
  const mode = el("select", { id: "browse-mode" }, el("option", { value: "offset" }, "from offset"), el("option", { value: "timestamp" }, "from time (ms)"));
  const start = el("input", { id: "browse-start", placeholder: "start (empty: log start)", class: "w180" });
  const fmt = el("select", { id: "browse-format" }, ["text", "json", "hex"].map(f => el("option", { value: f }, f)));
  const records = el("div", { id: "records" });
  const browse = guarded(async () => {
    let q = `partition=${partition.value}&max=100`;
    if (start.value !== "") q += `&${mode.value}=${encodeURIComponent(start.value)}`;
    const doc = await api(`/api/topics/${encodeURIComponent(name)}/messages?${q}`);
    records.replaceChildren(el("p", { class: "muted" }, `offsets ${doc.log_start_offset}-${doc.log_end_offset}; showing ${doc.records.length} from ${doc.offset}`),
      table(RECORD_HEAD, doc.records.map(r => recordRow(r, fmt.value)), "records"));
  });
  const liveBody = el("tbody", { id: "live-rows" });
  const liveBtn = el("button", { id: "live-start" }, "Start live tail");
  liveBtn.addEventListener("click", () => {
    for (const s of state.streams) s.close();
    state.streams = [];
    const es = new EventSource(`/api/live/topics/${encodeURIComponent(name)}?partition=${partition.value}`);
    es.addEventListener("record", (ev) => {
      liveBody.prepend(recordRow(JSON.parse(ev.data), fmt.value));
      while (liveBody.children.length > 200) liveBody.lastChild.remove();
    });
    es.addEventListener("open", () => { liveBtn.textContent = "Live tail on (partition " + partition.value + ")"; liveBtn.dataset.open = "1"; });
    state.streams.push(es);
  });
  const pkey = el("input", { id: "produce-key", placeholder: "key (optional)" });
  const pval = el("textarea", { id: "produce-value", rows: 2, cols: 40, placeholder: "value (text)" });
  const ppart = el("input", { id: "produce-partition", type: "number", min: 0, placeholder: "partition (any)", class: "w130" });
  const produce = guarded(async () => {
    const bytesOf = new TextEncoder().encode(pval.value);
    let bin = ""; for (const b of bytesOf) bin += String.fromCharCode(b);
    const msg = { topic: name, value: btoa(bin) };
    if (pkey.value !== "") msg.key = pkey.value;
    if (ppart.value !== "") msg.partition = Number(ppart.value);
    const doc = await api("/produce", { method: "POST", body: msg });
    toast(`produced at ${doc.offsets[0].partition}@${doc.offsets[0].offset}`);
  });
  render(el("h1", {}, "Topic ", el("span", { id: "topic-name" }, t.name)),
    el("div", { class: "cards" }, card("Partitions", t.partitions), card("Records", t.records), card("Size", bytes(t.size_bytes))),
    el("h2", {}, "Partitions"),
    table([{ t: "Partition", num: 1 }, { t: "Start offset", num: 1 }, { t: "End offset", num: 1 }, { t: "Size", num: 1 }],
      t.partition_list.map(p => el("tr", {}, td(p.partition, "num"), td(p.log_start_offset, "num"), td(p.log_end_offset, "num"), td(bytes(p.size_bytes), "num")))),
    el("details", {}, el("summary", {}, "Configs"),
      table(["Name", "Value", "Source"], t.configs.map(c => el("tr", {}, td(c.name), td(c.value), td(c.default ? "default" : "set"))))),
    el("h2", {}, "Messages"),
    el("div", { class: "bar" }, "partition", partition, mode, start, "show as", fmt,
      el("button", { class: "primary", id: "browse", on: { click: browse } }, "Load")),
    records,
    el("h2", {}, "Live tail"), el("div", { class: "bar" }, liveBtn),
    table(RECORD_HEAD, liveBody, "live"),
    el("h2", {}, "Produce"),
    el("div", { class: "bar" }, pkey, pval, ppart, el("button", { class: "primary", id: "produce", on: { click: produce } }, "Produce")));
  fmt.addEventListener("change", browse);
  await browse();
  stamp();
}

// -- consumer groups ------------------------------------------------------------------
async function groups() {
  const body = el("div", { id: "group-table" });
  render(el("h1", {}, "Consumer groups"), body);
  every(2000, guarded(async () => {
    const doc = await api("/api/groups");
    body.replaceChildren(doc.groups.length ? table(["Group", "State", { t: "Members", num: 1 }, { t: "Lag", num: 1 }, "REST instances"],
      doc.groups.map(g => el("tr", {}, el("td", {}, link("#/group/" + encodeURIComponent(g.group), g.group)), td(g.state),
        td(g.members, "num"), td(g.lag, "num"), td(g.rest_instances.join(", "))))) : el("p", { class: "muted" }, "no groups yet"));
    stamp();
  }));
}

async function groupPage(group) {
  const head = el("div", { class: "cards", id: "group-cards" });
  const members = el("div", { id: "group-members" });
  const parts = el("div", { id: "group-partitions" });
  const canvas = el("canvas", { class: "chart", id: "chart-lag" });
  const rtopic = el("select", { id: "reset-topic" });
  const rpart = el("input", { id: "reset-partition", placeholder: "partition (all)", class: "w120" });
  const rto = el("select", { id: "reset-to" }, ["earliest", "latest", "offset", "timestamp"].map(v => el("option", { value: v }, v)));
  const rval = el("input", { id: "reset-value", placeholder: "offset / timestamp ms", class: "w170" });
  const history = state.lag[group] = state.lag[group] || [];
  const reset = guarded(async () => {
    const body = { topic: rtopic.value, to: rto.value };
    if (rpart.value !== "") body.partition = Number(rpart.value);
    if (rto.value === "offset") body.offset = Number(rval.value);
    if (rto.value === "timestamp") body.timestamp = Number(rval.value);
    const where = body.partition === undefined ? "every partition" : "partition " + body.partition;
    if (!confirm(`Reset group "${group}" on ${rtopic.value} (${where}) to ${rto.value} ${rval.value}?`)) return;
    await api(`/api/groups/${encodeURIComponent(group)}/reset`, { method: "POST", body });
    toast("offsets reset"); load();
  });
  const load = guarded(async () => {
    const g = await api("/api/groups/" + encodeURIComponent(group));
    head.replaceChildren(card("State", g.state), card("Members", g.members), card("Lag", g.lag), card("Protocol", g.protocol || "-"));
    members.replaceChildren(g.member_list.length || g.rest_instances.length ? table(["Member", "Client", "Host", "Assignment"],
      g.member_list.map(m => el("tr", {}, td(m.member_id), td(m.client_id), td(m.client_host),
        td(m.assignment.map(a => a.topic + "-" + a.partition).join(", ")))).concat(
      g.rest_instances.map(n => el("tr", {}, td(n), td("REST consumer instance"), td(""), td(""))))) : el("p", { class: "muted" }, "no active members"));
    parts.replaceChildren(table(["Topic", { t: "Partition", num: 1 }, { t: "Committed", num: 1 }, { t: "Log end", num: 1 }, { t: "Lag", num: 1 }],
      g.partitions.map(p => el("tr", {}, td(p.topic), td(p.partition, "num"), td(p.committed_offset, "num"), td(p.log_end_offset, "num"), td(p.lag, "num lag")))));
    const topicsSeen = [...new Set(g.partitions.map(p => p.topic))];
    if (rtopic.options.length !== topicsSeen.length) rtopic.replaceChildren(...topicsSeen.map(t => el("option", { value: t }, t)));
    push(history, g.lag);
    chart(canvas, [{ name: "lag", points: history }], "lag (records) over time");
    document.getElementById("group-lag").textContent = String(g.lag);
    stamp();
  });
  render(el("h1", {}, "Group ", el("span", { id: "group-name" }, group), " ", el("span", { class: "pill" }, "lag ", el("span", { id: "group-lag" }, "…"))),
    head, el("div", { class: "charts" }, canvas), el("h2", {}, "Members"), members,
    el("h2", {}, "Committed offsets"), parts,
    el("h2", {}, "Reset offsets"), el("p", { class: "muted" }, "Refused while the group has active members (stop its consumers first)."),
    el("div", { class: "bar" }, rtopic, rpart, rto, rval, el("button", { class: "danger", id: "reset", on: { click: reset } }, "Reset")));
  state.timer = setInterval(load, 2000);
  await load();
}

// -- queues ---------------------------------------------------------------------------
async function queues() {
  const body = el("div", { id: "queue-table" });
  const canvas = el("canvas", { class: "chart", id: "chart-queues" });
  const dlqTopic = el("select", { id: "dlq-topic" });
  const dlqPart = el("input", { id: "dlq-partition", type: "number", min: 0, value: 0, class: "w80" });
  const dlqRows = el("div", { id: "dlq-rows" });
  const series = state.queues;
  const loadDlq = guarded(async () => {
    if (!dlqTopic.value) { dlqRows.replaceChildren(el("p", { class: "muted" }, "no dead-letter topic yet")); return; }
    const doc = await api(`/api/dlq?topic=${encodeURIComponent(dlqTopic.value)}&partition=${dlqPart.value}&max=100`);
    dlqRows.replaceChildren(el("p", { class: "muted" }, `${doc.log_end_offset - doc.log_start_offset} dead letters retained (requeue: ${doc.requeue})`),
      table([{ t: "Offset", num: 1 }, "Origin", "Reason", { t: "Deliveries", num: 1 }, "Key", "Value", ""],
        doc.records.map(r => el("tr", { class: "dead-letter" }, td(r.offset, "num"),
          td(r.origin ? `${r.origin.topic}-${r.origin.partition}@${r.origin.offset} (group ${r.origin.group})` : r.origin_error),
          td(r.origin ? r.origin.reason : ""), td(r.origin ? r.origin.delivery_count : "", "num"),
          td(r.key === null ? "(null)" : r.key, "key"), td(shown(r, "text"), "value"),
          el("td", {}, el("button", { class: "requeue", on: { click: () => requeue(doc.topic, doc.partition, r.offset, loadDlq) } }, "Requeue")))), "dlq"));
  });
  const purge = guarded(async () => {
    if (!dlqTopic.value) return;
    if (!confirm(`Purge every dead letter of ${dlqTopic.value} partition ${dlqPart.value}? This cannot be undone.`)) return;
    await api("/api/dlq/purge", { method: "POST", body: { topic: dlqTopic.value, partition: Number(dlqPart.value) } });
    toast("purged"); loadDlq();
  });
  render(el("h1", {}, "Queues (share groups)"), body, el("div", { class: "charts" }, canvas),
    el("h2", {}, "Dead letters"),
    el("div", { class: "bar" }, dlqTopic, "partition", dlqPart, el("button", { id: "dlq-load", on: { click: loadDlq } }, "Load"),
      el("button", { class: "danger", id: "dlq-purge", on: { click: purge } }, "Purge")), dlqRows);
  dlqTopic.addEventListener("change", loadDlq);
  const load = guarded(async () => {
    const [doc, tl] = await Promise.all([api("/dashboard"), api("/api/topics?q=.dlq&limit=500")]);
    body.replaceChildren(doc.queues.length ? table(["Group", "Topic", { t: "Available", num: 1 }, { t: "Acquired", num: 1 }, { t: "Acknowledged", num: 1 },
      { t: "Released", num: 1 }, { t: "Expired", num: 1 }, { t: "Archived", num: 1 }, { t: "Dead-lettered", num: 1 }],
      doc.queues.map(q => el("tr", { class: "queue" }, td(q.group), td(q.topic), td(q.available, "num"), td(q.acquired, "num"),
        td(q.acknowledged, "num"), td(q.released, "num"), td(q.expired, "num"), td(q.archived, "num"), td(q.dead_lettered, "num")))) :
      el("p", { class: "muted" }, "no share groups yet"));
    const names = [...new Set(doc.queues.filter(q => q.dlq_exists).map(q => q.dlq_topic)
      .concat(tl.topics.filter(t => t.name.endsWith(".dlq")).map(t => t.name)))].sort();
    if ([...dlqTopic.options].map(o => o.value).join() !== names.join()) {
      const keep = dlqTopic.value;
      dlqTopic.replaceChildren(...names.map(n => el("option", { value: n }, n)));
      if (names.includes(keep)) dlqTopic.value = keep;
      loadDlq();
    }
    const total = (k) => doc.queues.reduce((a, q) => a + q[k], 0);
    push(series.acked = series.acked || [], total("acknowledged"));
    push(series.available = series.available || [], total("available"));
    const rate = (s) => s.map((v, i) => i ? Math.max(0, v - s[i - 1]) / 2 : 0);
    chart(canvas, [{ name: "acknowledged/2s", points: rate(series.acked) }, { name: "available", points: series.available }], "queues over time");
    stamp();
  });
  state.timer = setInterval(load, 2000);
  await load();
}
const requeue = guarded(async (topic, partition, offset, after) => {
  if (!confirm(`Requeue dead letter ${topic}-${partition}@${offset} to its origin topic?`)) return;
  const doc = await api("/api/dlq/requeue", { method: "POST", body: { topic, partition, offset } });
  toast(`requeued to ${doc.requeued.topic}-${doc.requeued.partition}@${doc.requeued.offset}`);
  after();
});
