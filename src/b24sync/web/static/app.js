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

// --- overview: start buttons and live progress ---------------------------------------------
function overview() {
  for (const button of $$("[data-start]")) {
    button.addEventListener("click", async () => {
      const card = button.closest("[data-entity]");
      const result = await api("POST", `/api/v1/sync/start/${button.dataset.start}`, {
        sync_type: button.dataset.type,
      });
      $("[data-field=progress]", card).textContent = result.ok ? "queued" : detail(result.data);
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
      if (run.status === "running" || run.status === "queued") {
        const total = run.estimated_total || 0;
        const percent = total ? Math.min(99, Math.floor((100 * run.fetched) / total)) : 0;
        bar.style.width = `${percent}%`;
        progress.textContent = `${run.status}: ${run.fetched}${total ? " / " + total : ""}`;
        state.textContent = run.status;
      } else if (card.dataset.lastStatus !== `${run.id}:${run.status}`) {
        bar.style.width = run.status === "success" ? "100%" : "0%";
        progress.textContent = `#${run.id} ${run.sync_type}: ${run.status}, ${run.fetched}`;
        state.textContent = "idle";
        finished = true;
      }
      card.dataset.lastStatus = `${run.id}:${run.status}`;
    }
    if (finished) {
      const status = await api("GET", "/api/v1/sync/status");
      for (const entity of status.data.entities || []) {
        const card = $(`[data-entity=${entity.entity}]`);
        if (card) showStatus(card, entity);
      }
    }
  });
}

const when = (iso) => (iso ? iso.slice(0, 19).replace("T", " ") : "—");

function showStatus(card, entity) {
  const run = entity.last_run;
  $("[data-field=rows]", card).textContent = entity.rows;
  $("[data-field=next-run]", card).textContent = when(entity.next_run_at);
  if (run) {
    const took = run.seconds == null ? "" : `${run.seconds.toFixed(1)} s · `;
    $("[data-field=last-run]", card).textContent = `${when(run.started_at)} · ${run.sync_type} · ${took}${run.status}`;
  }
  const error = $("[data-field=error]", card);
  error.hidden = !(run && run.error);
  error.textContent = run && run.error ? `${error.dataset.label}: ${run.error}` : "";
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
    stream.addEventListener("done", (event) => {
      stream.close();
      running = false;
      $("#seed-state").textContent = `${controls.dataset.done}: ${event.data}`;
      window.location.reload();
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

const pages = { overview, schedules, events, testdata };
document.addEventListener("DOMContentLoaded", () => {
  const init = pages[document.body.dataset.page];
  if (init) init();
});
