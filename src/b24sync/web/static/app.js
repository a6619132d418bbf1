// b24sync dashboard: small progressive enhancements over server-rendered pages.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

function detail(data) {
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) return data.detail.map((d) => d.msg).join("; ");
  return JSON.stringify(data);
}

// --- moments: "5 min ago", the absolute UTC time on hover -----------------------------------
function relativeTimes(root = document) {
  const lang = document.body.dataset.lang || "en";
  const format = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  for (const node of $$("time[datetime]", root)) {
    const seconds = (Date.parse(node.getAttribute("datetime")) - Date.now()) / 1000;
    if (Number.isNaN(seconds)) continue;
    const [unit, size] = units.find(([, s]) => Math.abs(seconds) >= s) || units[3];
    node.textContent = format.format(Math.round(seconds / size), unit);
  }
}

function moment(iso) {
  if (!iso) return "—";
  const utc = new Date(iso).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  const node = document.createElement("time");
  node.setAttribute("datetime", iso);
  node.title = utc;
  node.textContent = utc;
  return node.outerHTML;
}

const labels = () => JSON.parse(($("#labels") || { textContent: "{}" }).textContent);
const number = (n) => Number(n || 0).toLocaleString(document.body.dataset.lang || "en");

// --- overview: start buttons and live progress ---------------------------------------------
function overview() {
  const words = labels();
  for (const button of $$("[data-start]")) {
    button.addEventListener("click", async () => {
      const card = button.closest("[data-entity]");
      const result = await api("POST", `/api/v1/sync/start/${button.dataset.start}`, {
        sync_type: button.dataset.type,
      });
      $("[data-field=progress]", card).textContent = result.ok ? words.status.queued : detail(result.data);
      if (result.ok) {
        card.dataset.runId = result.data.run_id;
        $("[data-field=bar]", card).style.width = "0%";
      }
    });
  }
  const stream = new EventSource("/api/v1/sync/events");
  stream.addEventListener("runs", async (event) => {
    const snapshot = JSON.parse(event.data);
    let finished = false;
    for (const card of $$("[data-entity]")) {
      const runs = snapshot.runs.filter((r) => r.entity === card.dataset.entity);
      const run = runs.find((r) => String(r.id) === card.dataset.runId) || runs[0];
      if (!run) continue;
      const bar = $("[data-field=bar]", card);
      const progress = $("[data-field=progress]", card);
      const state = $("[data-field=state]", card);
      const mode = words.mode[run.sync_type] || run.sync_type;
      if (run.status === "running" || run.status === "queued") {
        const total = run.estimated_total || 0;
        const percent = total ? Math.min(99, Math.floor((100 * run.fetched) / total)) : 0;
        bar.style.width = `${percent}%`;
        const counted = run.fetched || total
          ? `${number(run.fetched)}${total ? " / " + number(total) : ""} ${words.records}${total ? ` (${percent} %)` : ""}`
          : words.starting;
        progress.textContent = `${mode}, ${words.status[run.status]}: ${counted}`;
        state.textContent = words.state[run.status];
        state.className = `state-${run.status}`;
      } else if (card.dataset.lastStatus !== `${run.id}:${run.status}`) {
        bar.style.width = run.status === "success" ? "100%" : "0%";
        progress.textContent = `#${run.id} ${mode}: ${words.status[run.status] || run.status}, ${number(run.fetched)} ${words.records}`;
        state.textContent = words.state.idle;
        state.className = "state-idle";
        finished = true;
      }
      card.dataset.lastStatus = `${run.id}:${run.status}`;
    }
    if (finished) {
      const status = await api("GET", "/api/v1/sync/status");
      for (const entity of status.data.entities || []) {
        const card = $(`[data-entity="${entity.entity}"]`);
        if (card) showStatus(card, entity, words);
      }
    }
  });
}

function showStatus(card, entity, words) {
  const run = entity.last_run;
  $("[data-field=rows]", card).textContent = number(entity.rows);
  $("[data-field=next-run]", card).innerHTML = moment(entity.next_run_at);
  if (run) {
    const took = run.seconds == null ? "" : `${run.seconds.toFixed(1)} s · `;
    const mode = words.mode[run.sync_type] || run.sync_type;
    $("[data-field=last-run]", card).innerHTML =
      `<a href="/runs/${run.id}">${moment(run.started_at)} · ${mode} · ${took}${words.status[run.status] || run.status}</a>`;
  }
  const cost = $("[data-field=cost]", card);
  if (cost && entity.full_sync_calls) cost.textContent = `${cost.dataset.label}: ≈ ${entity.full_sync_calls}`;
  const error = $("[data-field=error]", card);
  error.hidden = !(run && run.error);
  error.textContent = run && run.error ? `${words.error}: ${run.error}` : "";
  relativeTimes(card);
}

// --- schedules -------------------------------------------------------------------------------
function schedules() {
  $("#schedules").addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = {};
    for (const row of $$("tr[data-entity]")) {
      changes[row.dataset.entity] = {
        enabled: $("[name=enabled]", row).checked,
        interval_minutes: Number($("[name=interval_minutes]", row).value),
        webhook_enabled: $("[name=webhook_enabled]", row).checked,
      };
    }
    const result = await api("PUT", "/api/v1/sync/config", changes);
    const note = $("#schedules-result");
    note.textContent = result.ok ? note.dataset.saved : detail(result.data);
  });
}

// --- events ----------------------------------------------------------------------------------
function events() {
  const form = $("#register");
  if (!form) return; // the demo portal, or an inbound webhook: nothing to register here
  const send = async (action) => {
    const url = encodeURIComponent(form.handler_base_url.value);
    const result = action === "register"
      ? await api("POST", `/api/v1/webhooks/register?handler_base_url=${url}`)
      : action === "register-offline"
        ? await api("POST", "/api/v1/webhooks/register?offline=true")
        : await api("DELETE", `/api/v1/webhooks/unregister?handler_base_url=${url}`);
    $("#register-result").textContent = result.ok ? JSON.stringify(result.data) : detail(result.data);
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); send("register"); });
  $("[data-action=unregister]").addEventListener("click", () => send("unregister"));
  const offline = $("[data-action=register-offline]");
  if (offline) offline.addEventListener("click", () => send("register-offline"));
}

// --- test data -------------------------------------------------------------------------------
function testdata() {
  const controls = $("#testdata-controls");
  const buttons = [$("#seed-create"), $("#seed-clear"), $("#seed-clear-all")];
  const confirmAll = $("#confirm-all");
  let running = false;

  const setBusy = (busy) => {
    controls.dataset.busy = String(busy);
    $("#seed-busy").hidden = !busy || running;
    $("#seed-create").disabled = busy;
    $("#seed-clear").disabled = busy;
    $("#seed-clear-all").disabled = busy || confirmAll.value !== "DELETE ALL";
  };
  confirmAll.addEventListener("input", () => setBusy(controls.dataset.busy === "true"));
  setBusy(controls.dataset.busy === "true");

  const run = async (path) => {
    const status = await api("GET", "/bitrix/status");
    if (status.data.busy) { setBusy(true); $("#seed-busy").hidden = false; return; }
    running = true;
    setBusy(true);
    const bar = $("#seed-bar");
    bar.style.width = "0%";
    const stream = new EventSource(path);
    stream.addEventListener("message", (event) => {
      bar.style.width = `${event.data}%`;
      $("#seed-state").textContent = `${event.data} %`;
    });
    stream.addEventListener("done", async (event) => {
      stream.close();
      running = false;
      bar.style.width = "100%";
      $("#seed-state").textContent = controls.dataset.done;
      const report = $("#seed-report");
      report.textContent = `${report.dataset.label}: ${JSON.stringify(JSON.parse(event.data), null, 2)}`;
      report.hidden = false;
      setBusy(false);
      await showListing();
    });
    stream.addEventListener("error", (event) => {
      stream.close();
      running = false;
      $("#seed-state").textContent = event.data || "error";
      setBusy(false);
    });
  };
  $("#seed-create").addEventListener("click", () =>
    run(`/bitrix/webhook/push-stream?count=${Number($("#seed-count").value) || 100}`));
  $("#seed-clear").addEventListener("click", () => run("/bitrix/clear-stream"));
  $("#seed-clear-all").addEventListener("click", () => run("/bitrix/clear-stream?all=true"));
  setInterval(async () => {
    if (running) return;
    const status = await api("GET", "/bitrix/status");
    setBusy(Boolean(status.data.busy));
  }, 1000);
}

// The tables of the test-data page, read again after a run (the page keeps the run's report).
async function showListing() {
  const listing = (await api("GET", "/api/v1/testdata")).data;
  const cell = (text) => { const td = document.createElement("td"); td.textContent = text ?? ""; return td; };
  const fill = (table, rows) => {
    const body = $("tbody", table);
    body.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      tr.append(...cells.map(cell));
      return tr;
    }));
  };
  const name = (c) => [c.LAST_NAME, c.NAME, c.SECOND_NAME].filter(Boolean).join(" ");
  fill($("#companies-table"), (listing.companies || []).map((c, i) =>
    [i + 1, c.ID, c.TITLE, (c.contacts || []).map(name).join(", ")]));
  fill($("#contacts-table"), (listing.contacts || []).map((c, i) =>
    [i + 1, c.ID, name(c), ((c.PHONE || [])[0] || {}).VALUE, c.COMPANY_ID]));
  $("#companies-count").textContent = listing.companies_total;
  $("#contacts-count").textContent = listing.contacts_total;
}

const pages = { overview, schedules, events, testdata };
document.addEventListener("DOMContentLoaded", () => {
  relativeTimes();
  setInterval(() => relativeTimes(), 30000);
  const init = pages[document.body.dataset.page];
  if (init) init();
});
