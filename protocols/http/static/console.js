// ZoneMQ web console: a small static app over the admin API (/api/), no framework.
// Every value from the broker goes into the page as text (textContent), never as HTML.
"use strict";

const PAGE = 20; // messages per page when browsing
let refreshTimer = null;

// -- helpers -----------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const seg = (name) => encodeURIComponent(name);

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = null;
  }
  if (!resp.ok) {
    const text = data && data.message ? data.message : resp.status + " " + resp.statusText;
    const err = new Error(text);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function status(text, isError) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
  el.hidden = false;
}

function clearStatus() {
  document.getElementById("status").hidden = true;
}

// Run an action of a button: disable it meanwhile, report the outcome, re-render.
async function act(button, what, done) {
  button.disabled = true;
  try {
    const result = await what();
    status(done(result), false);
    await render();
  } catch (e) {
    status(e.message, true);
  } finally {
    button.disabled = false;
  }
}

function fmtAge(ms) {
  if (ms === null || ms === undefined) return "";
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

function fmtTime(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "";
}

function destLink(d) {
  return h("a", { href: "#/" + d.kind + "/" + seg(d.name), "data-dest": d.name }, d.name);
}

function table(headers, rows, attrs) {
  return h(
    "table",
    attrs || {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : null }, x.label || x)))),
    h("tbody", {}, rows)
  );
}

function num(v) {
  return h("td", { class: "num" }, v === null || v === undefined ? "" : v);
}

// -- charts ------------------------------------------------------------------------------

// One SVG line chart of `series` ([{cls, points: [[t, v], ...]}]) over the same time axis.
function chart(title, series, legend) {
  const W = 520, H = 120, PAD = 28;
  const all = series.flatMap((s) => s.points);
  const box = h("div", { class: "chart", "data-chart": title }, h("div", { class: "title" }, title, " ", legend || ""));
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
    return el;
  };
  add("line", { class: "axis", x1: PAD, y1: H - 14, x2: W - 4, y2: H - 14 });
  add("line", { class: "axis", x1: PAD, y1: 4, x2: PAD, y2: H - 14 });
  if (all.length === 0) {
    add("text", { x: PAD + 8, y: H / 2 }, "no samples yet");
  } else {
    const t0 = Math.min(...all.map((p) => p[0]));
    const t1 = Math.max(...all.map((p) => p[0]));
    const top = Math.max(1, ...all.map((p) => p[1]));
    const x = (t) => PAD + ((W - PAD - 8) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1));
    const y = (v) => H - 14 - ((H - 22) * v) / top;
    for (const s of series) {
      if (s.points.length === 0) continue;
      const pts = s.points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1));
      if (pts.length === 1) pts.push(pts[0]);
      add("polyline", { class: s.cls, points: pts.join(" ") });
    }
    add("text", { x: 2, y: 12 }, String(Math.round(top * 100) / 100));
    add("text", { x: 2, y: H - 16 }, "0");
    add("text", { x: PAD, y: H - 2 }, "-" + Math.round(t1 - t0) + " s");
    add("text", { x: W - 30, y: H - 2 }, "now");
  }
  box.append(svg);
  return box;
}

function charts(samples) {
  const depth = samples.map((s) => [s.at, s.depth]);
  const rin = samples.filter((s) => s.enqueue_rate !== null).map((s) => [s.at, s.enqueue_rate]);
  const rout = samples.filter((s) => s.dequeue_rate !== null).map((s) => [s.at, s.dequeue_rate]);
  return h(
    "div",
    { class: "charts" },
    chart("Depth", [{ cls: "depth", points: depth }]),
    chart(
      "Messages/s",
      [
        { cls: "in", points: rin },
        { cls: "out", points: rout },
      ],
      h("span", {}, h("span", { class: "legend-in" }, "enqueued"), " · ", h("span", { class: "legend-out" }, "dequeued"))
    )
  );
}

// -- views -------------------------------------------------------------------------------

async function overview() {
  const [b, hist] = await Promise.all([api("GET", "/api/broker"), api("GET", "/api/history")]);
  const last = hist.samples.length ? hist.samples[hist.samples.length - 1] : null;
  const card = (label, value, key) =>
    h("div", { class: "card", "data-card": key }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  const secs = Math.round(b.uptime_s);
  const uptime = secs < 3600 ? Math.floor(secs / 60) + " min " + (secs % 60) + " s" : (secs / 3600).toFixed(1) + " h";
  return [
    h("h1", {}, b.name),
    h(
      "div",
      { class: "cards" },
      card("Version", b.version, "version"),
      card("Uptime", uptime, "uptime"),
      card("Connections", b.connections, "connections"),
      card("Queues", b.queues, "queues"),
      card("Topics", b.topics, "topics"),
      card("Durable subscriptions", b.durable_subscriptions, "durables"),
      card("Messages queued", b.messages, "messages"),
      card("In / out per s", last && last.enqueue_rate !== null ? last.enqueue_rate + " / " + last.dequeue_rate : "–", "rates")
    ),
    h("h2", {}, "Last minutes (every ", hist.interval_s, " s)"),
    charts(hist.samples),
  ];
}

async function destinations() {
  const { destinations: all } = await api("GET", "/api/destinations");
  const groups = [
    ["Queues", "queue"],
    ["Topics", "topic"],
    ["Durable subscriptions", "durable"],
    ["Temporary queues", "temp-queue"],
    ["Temporary topics", "temp-topic"],
  ];
  const out = [h("h1", {}, "Destinations")];
  for (const [title, kind] of groups) {
    const list = all.filter((d) => d.kind === kind);
    if (list.length === 0 && kind.startsWith("temp")) continue;
    out.push(h("h2", {}, title, " (", list.length, ")"));
    const rows = list.map((d) =>
      h(
        "tr",
        { "data-row": d.name },
        h("td", {}, kind === "durable" ? d.name : destLink(d), d.paused ? h("span", { class: "muted" }, " (paused)") : null),
        num(d.depth),
        num(d.consumers),
        num(d.enqueued),
        num(d.dequeued),
        h("td", { class: "num" }, fmtAge(d.oldest_message_age_ms))
      )
    );
    out.push(
      table(
        ["Name", { label: "Depth", num: true }, { label: "Consumers", num: true }, { label: "Enqueued", num: true }, { label: "Dequeued", num: true }, { label: "Oldest", num: true }],
        rows,
        { "data-table": kind }
      )
    );
  }
  return out;
}

async function destination(kind, name, params) {
  const base = kind === "queue" ? "/api/queues/" : "/api/topics/";
  const [d, hist] = await Promise.all([
    api("GET", base + seg(name)),
    api("GET", "/api/history/" + kind + "/" + seg(name)),
  ]);
  const out = [
    h("h1", {}, kind === "queue" ? "Queue " : "Topic ", name),
    h(
      "div",
      { class: "cards" },
      ...[
        ["Depth", d.depth],
        ["Pending", d.pending],
        ["In flight", d.inflight],
        ["Consumers", d.consumers],
        ["Enqueued", d.enqueued],
        ["Dequeued", d.dequeued],
        ["Dead-lettered", d.dlq],
        ["Oldest", fmtAge(d.oldest_message_age_ms) || "–"],
      ].map(([l, v]) => h("div", { class: "card" }, h("div", { class: "label" }, l), h("div", { class: "value" }, v)))
    ),
    h("h2", {}, "Last minutes"),
    hist.sampled || hist.samples.length
      ? charts(hist.samples)
      : h("p", { class: "muted", id: "not-sampled" }, "Not sampled yet (new, or past listeners.console.sampled_destinations)."),
  ];
  const toolbar = h("div", { class: "toolbar" });
  out.push(toolbar);
  toolbar.append(h("a", { href: "#/send?kind=" + kind + "&name=" + seg(name) }, "Send a message…"));
  if (kind === "queue") {
    const confirmBar = h("span", { hidden: true, "data-confirm": "purge" });
    const purge = h(
      "button",
      { class: "danger", id: "purge", onclick: () => (confirmBar.hidden = false) },
      "Purge…"
    );
    const yes = h(
      "button",
      {
        class: "danger",
        id: "purge-confirm",
        onclick: () =>
          act(yes, () => api("DELETE", base + seg(name) + "/messages"), (r) => "Purged " + r.purged + " message(s) from " + name),
      },
      "Delete all " + d.pending + " pending message(s)"
    );
    confirmBar.append(" ", yes, " ", h("button", { class: "secondary", onclick: () => (confirmBar.hidden = true) }, "Cancel"));
    toolbar.append(purge, confirmBar);
    if (d.dead_letter) {
      const retryAll = h(
        "button",
        {
          id: "retry-all",
          onclick: () => act(retryAll, () => api("POST", base + seg(name) + "/retry"), (r) => retryText(r)),
        },
        "Retry all"
      );
      toolbar.append(retryAll);
    }
    const pause = h(
      "button",
      {
        class: "secondary",
        id: "pause",
        onclick: () =>
          act(pause, () => api("POST", base + seg(name) + (d.paused ? "/resume" : "/pause")), (r) => (r.paused ? "Paused " : "Resumed ") + name),
      },
      d.paused ? "Resume dispatch" : "Pause dispatch"
    );
    toolbar.append(pause);
  }
  out.push(h("h2", {}, "Consumers (", d.consumer_list.length, ")"));
  out.push(
    table(
      ["Connection", "Ack", { label: "Prefetch", num: true }, { label: "In flight", num: true }, "Selector"],
      d.consumer_list.map((c) =>
        h("tr", {}, h("td", {}, c.connection || ""), h("td", {}, c.ack_mode), num(c.prefetch), num(c.inflight), h("td", {}, c.selector || ""))
      ),
      { "data-table": "consumers" }
    )
  );
  if (kind === "queue") out.push(...(await messages(name, d, params)));
  return out;
}

function retryText(r) {
  return "Retried " + r.moved + " message(s)" + (r.left ? "; " + r.left + " without an original destination stay" : "");
}

async function messages(name, d, params) {
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const page = await api("GET", "/api/queues/" + seg(name) + "/messages?offset=" + offset + "&limit=" + PAGE);
  const here = "#/queue/" + seg(name);
  const rows = page.messages.map((m) => {
    const actions = h("td", {});
    if (d.dead_letter) {
      const retry = h(
        "button",
        {
          class: "secondary",
          "data-retry": m.id,
          onclick: () => act(retry, () => api("POST", "/api/queues/" + seg(name) + "/retry", { id: m.id }), retryText),
        },
        "Retry"
      );
      actions.append(retry, " ");
    }
    const del = h(
      "button",
      {
        class: "secondary",
        "data-delete": m.id,
        onclick: () =>
          act(del, () => api("DELETE", "/api/queues/" + seg(name) + "/messages/" + seg(m.id)), () => "Deleted " + m.id),
      },
      "Delete"
    );
    actions.append(del);
    const origin = m.properties.originalDestination;
    return h(
      "tr",
      { "data-message": m.id },
      h("td", {}, m.id),
      h("td", {}, fmtTime(m.timestamp)),
      num(m.priority),
      h("td", {}, m.persistent ? "yes" : "no"),
      num(m.delivery_count),
      h("td", {}, origin || ""),
      h("td", { class: "body" }, m.body_encoding === "base64" ? "(bytes) " + m.body : m.body),
      actions
    );
  });
  const last = Math.min(page.total, offset + page.messages.length);
  return [
    h("h2", {}, "Messages"),
    h(
      "div",
      { class: "toolbar", "data-paging": "" },
      h("span", { id: "page-info" }, page.total ? offset + 1 + "–" + last + " of " + page.total : "No pending messages"),
      h("a", { href: offset > 0 ? here + "?offset=" + Math.max(0, offset - PAGE) : null, id: "prev", hidden: offset === 0 }, "‹ Previous"),
      h("a", { href: here + "?offset=" + (offset + PAGE), id: "next", hidden: last >= page.total }, "Next ›")
    ),
    table(
      ["Message id", "Time (UTC)", { label: "Priority", num: true }, "Persistent", { label: "Deliveries", num: true }, "Original destination", "Body", ""],
      rows,
      { "data-table": "messages" }
    ),
  ];
}

async function connections() {
  const { connections: list } = await api("GET", "/api/connections");
  const rows = list.map((c) => {
    const close = h(
      "button",
      {
        class: "danger",
        "data-close": c.id,
        onclick: () => act(close, () => api("DELETE", "/api/connections/" + seg(c.id)), () => "Closed " + c.id),
      },
      "Close"
    );
    return h(
      "tr",
      { "data-connection": c.id },
      h("td", {}, c.id),
      h("td", {}, c.protocol),
      h("td", {}, c.user || ""),
      h("td", {}, c.peer || ""),
      h("td", {}, c.client_id || ""),
      num(c.subscriptions),
      h("td", {}, close)
    );
  });
  return [
    h("h1", {}, "Connections (", list.length, ")"),
    table(["Id", "Protocol", "User", "Address", "Client id", { label: "Subscriptions", num: true }, ""], rows, { "data-table": "connections" }),
  ];
}

async function dlq() {
  const { destinations: all } = await api("GET", "/api/destinations?kind=queue");
  const list = all.filter((d) => d.dead_letter);
  const rows = list.map((d) => {
    const retry = h(
      "button",
      {
        "data-retry-all": d.name,
        disabled: d.pending === 0,
        onclick: () => act(retry, () => api("POST", "/api/queues/" + seg(d.name) + "/retry"), retryText),
      },
      "Retry all"
    );
    return h("tr", { "data-row": d.name }, h("td", {}, destLink(d)), num(d.depth), num(d.enqueued), h("td", { class: "num" }, fmtAge(d.oldest_message_age_ms)), h("td", {}, retry));
  });
  return [
    h("h1", {}, "Dead letter queues"),
    h("p", { class: "muted" }, "Retry moves each message back to the queue it was dead-lettered from (its originalDestination). Open a queue to retry or delete single messages."),
    list.length
      ? table(["Queue", { label: "Depth", num: true }, { label: "Enqueued", num: true }, { label: "Oldest", num: true }, ""], rows, { "data-table": "dlq" })
      : h("p", {}, "No dead letter queue exists yet."),
  ];
}

function sendForm(params) {
  const field = (label, input) => [h("label", { for: input.id }, label), input];
  const kind = h("select", { id: "send-kind", name: "kind" }, h("option", { value: "queue" }, "queue"), h("option", { value: "topic" }, "topic"));
  kind.value = params.get("kind") === "topic" ? "topic" : "queue";
  const name = h("input", { id: "send-name", name: "name", required: true, value: params.get("name") || "" });
  const body = h("textarea", { id: "send-body", name: "body" });
  const persistent = h("input", { id: "send-persistent", type: "checkbox", checked: true });
  const priority = h("input", { id: "send-priority", type: "number", min: 0, max: 9, value: 4 });
  const ttl = h("input", { id: "send-ttl", type: "number", min: 0, value: 0 });
  const corr = h("input", { id: "send-correlation", name: "correlation_id" });
  const props = h("textarea", { id: "send-properties", placeholder: "one name=value a line" });
  const submit = h("button", { id: "send-submit", type: "submit" }, "Send");
  const form = h(
    "form",
    { class: "send", id: "send-form" },
    field("Kind", kind),
    field("Destination", name),
    field("Body", body),
    field("Persistent", h("span", {}, persistent)),
    field("Priority (0–9)", priority),
    field("Time to live (ms, 0: none)", ttl),
    field("Correlation id", corr),
    field("Properties", props),
    h("span"),
    h("span", {}, submit)
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const properties = {};
    for (const line of props.value.split("\n")) {
      if (!line.trim()) continue;
      const at = line.indexOf("=");
      if (at <= 0) {
        status("a property line needs name=value: " + line, true);
        return;
      }
      properties[line.slice(0, at).trim()] = line.slice(at + 1);
    }
    const msg = {
      body: body.value,
      persistent: persistent.checked,
      priority: parseInt(priority.value, 10),
      ttl_ms: parseInt(ttl.value || "0", 10),
      properties,
    };
    if (corr.value) msg.correlation_id = corr.value;
    const path = (kind.value === "topic" ? "/api/topics/" : "/api/queues/") + seg(name.value) + "/messages";
    submit.disabled = true;
    api("POST", path, msg)
      .then((r) => status("Sent " + r.id + " to " + r.kind + " " + r.name, false))
      .catch((e) => status(e.message, true))
      .finally(() => (submit.disabled = false));
  });
  return [h("h1", {}, "Send a message"), form];
}

async function cluster() {
  let c;
  try {
    c = await api("GET", "/api/cluster");
  } catch (e) {
    if (e.status === 404) return [h("h1", {}, "Cluster"), h("p", { id: "single-node" }, "Single node: this broker has no [cluster] settings.")];
    throw e;
  }
  const card = (label, value, key) =>
    h("div", { class: "card", "data-card": key }, h("div", { class: "label" }, label), h("div", { class: "value" }, value === null || value === undefined ? "–" : value));
  const out = [
    h("h1", {}, "Cluster"),
    h(
      "div",
      { class: "cards" },
      card("This node", c.node, "node"),
      card("Zone", c.az, "az"),
      card("Role", c.role, "role"),
      card("Epoch", c.epoch, "epoch"),
      card("Active node", c.active, "active"),
      card("Min in-sync zones", c.min_insync_azs, "min-insync"),
      c.insync_zones ? card("In-sync zones", c.insync_zones.join(", ") || "none", "insync") : null
    ),
  ];
  if (c.standbys) {
    out.push(h("h2", {}, "Standbys (", c.standbys.length, ")"));
    out.push(
      table(
        ["Node", "Zone", "In sync", { label: "Lag (bytes)", num: true }, { label: "Lag (records)", num: true }],
        c.standbys.map((s) => h("tr", { "data-standby": s.node }, h("td", {}, s.node), h("td", {}, s.az), h("td", {}, s.in_sync ? "yes" : "no"), num(s.lag_bytes), num(s.lag_records))),
        { "data-table": "standbys" }
      )
    );
  }
  return out;
}

// -- routing -----------------------------------------------------------------------------

function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/");
  const name = parts.slice(1).join("/");
  switch (parts[0]) {
    case "":
      return ["overview", overview, true];
    case "destinations":
      return ["destinations", destinations, true];
    case "queue":
    case "topic":
      return ["destinations", () => destination(parts[0], decodeURIComponent(name), params), false];
    case "connections":
      return ["connections", connections, true];
    case "dlq":
      return ["dlq", dlq, true];
    case "send":
      return ["send", () => sendForm(params), false];
    case "cluster":
      return ["cluster", cluster, true];
    default:
      return ["", async () => [h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Overview"))], false];
  }
}

async function render() {
  const [nav, view, refresh] = route();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.nav === nav);
  const main = document.getElementById("view");
  try {
    const nodes = await view();
    main.replaceChildren(...[nodes].flat());
    main.dataset.view = nav;
  } catch (e) {
    status(e.message, true);
  }
  clearTimeout(refreshTimer);
  // Lists refresh themselves; a page with a form or paging waits for the user.
  if (refresh) refreshTimer = setTimeout(render, 5000);
}

window.addEventListener("hashchange", () => {
  clearStatus();
  render();
});
window.addEventListener("DOMContentLoaded", render);
