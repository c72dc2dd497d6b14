// The platform team's page: reads GET overview (and audit) with the caller's own session and renders it.
// Every value from the API is user data (names, tags): it goes into the page as text (textContent), never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const FINAL = new Set(["Succeeded", "Failed", "Canceled"]);
  const POLL_MS = 1000;
  const SHOWN_AS_COLUMNS = new Set(["expiresAt", "keepAlive"]); // tags the Expires and Keep-alive columns show
  const POLL_LIMIT = 600; // ten minutes of polling at most, then the row says to refresh
  const functionKey = new URLSearchParams(window.location.search).get("code"); // AUTH_MODE=keys

  const state = { data: null, sort: { key: "scope", dir: 1 }, busy: new Map(), canWrite: false };

  // HTTP

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (functionKey) headers["x-functions-key"] = functionKey;
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      return { status: 0, data: null, message: "The service could not be reached: " + error.message };
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    const message = data && data.error ? data.error.message : "HTTP " + response.status;
    return { status: response.status, data, message, code: data && data.error ? data.error.code : null };
  }

  function deploymentPath(row) {
    if (row.kind === "serverlessEndpoint") {
      return "serverless-endpoints/" + encodeURIComponent(row.name) + "?project=" + encodeURIComponent(row.project);
    }
    return "deployments/" + encodeURIComponent(row.name) + "?account=" + encodeURIComponent(row.account);
  }

  // Small DOM helpers (text only)

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function cell(row, label, content, className) {
    const td = el("td", null, className);
    td.dataset.label = label;
    if (content instanceof Node) td.append(content); else td.textContent = content === null || content === undefined ? "—" : String(content);
    row.append(td);
    return td;
  }

  function money(value, currency, whole) {
    if (value === null || value === undefined) return "no price";
    const digits = whole ? { maximumFractionDigits: 0, minimumFractionDigits: 0 } : { maximumFractionDigits: 2 };
    return new Intl.NumberFormat("en-US", { style: "currency", currency: currency || "USD", ...digits }).format(value);
  }

  function shortModel(model) {
    if (!model) return "—";
    const ft = model.indexOf(".ft-");
    if (ft > 0) return model.slice(0, ft).replace(/-\d{4}-\d{2}-\d{2}$/, "") + " ft-" + model.slice(ft + 4, ft + 8) + "…";
    if (model.startsWith("ftchkpt-") && model.length > 16) return model.slice(0, 16) + "…";
    const foundry = /\/models\/([^/]+)(?:\/versions\/([^/]+))?$/.exec(model);  // azureml://.../models/<name>/versions/<n>
    if (model.startsWith("azureml://") && foundry) model = foundry[1] + (foundry[2] ? " v" + foundry[2] : "");
    return model.length > 24 ? model.slice(0, 23) + "…" : model;
  }

  function countdown(iso) {
    if (!iso) return { text: "never", title: "No expiry set", expired: false, order: Infinity };
    const when = Date.parse(iso);
    if (Number.isNaN(when)) return { text: "unreadable", title: String(iso), expired: false, order: Infinity };
    const minutes = Math.round((when - Date.now()) / 60000);
    const span = Math.abs(minutes);
    const days = Math.floor(span / 1440), hours = Math.floor((span % 1440) / 60), mins = span % 60;
    const parts = days >= 2 ? days + " d" : days ? days + " d " + hours + " h" : hours ? hours + " h " + mins + " min" : mins + " min";
    const title = new Date(when).toISOString();
    return minutes >= 0
      ? { text: "in " + parts, title, expired: false, order: when }
      : { text: "expired " + parts + " ago", title, expired: true, order: when };
  }

  function scopeOf(row) { return row.account !== undefined ? row.account : row.project; }

  function show(node, visible) { node.hidden = !visible; }

  function say(text) {
    const message = $("message");
    message.textContent = text || "";
    show(message, Boolean(text));
  }

  // Loading

  async function load() {
    const answer = await call("GET", "overview");
    show($("loading"), false);
    if (answer.status !== 200) {
      state.data = null;
      say(answer.status === 403
        ? "You may not see this overview. " + answer.message
        : "The overview could not be loaded (" + (answer.code || answer.status) + "): " + answer.message);
      ["totals-section", "list-section", "audit-section", "errors", "pending-section"].forEach((id) => show($(id), false));
      $("caller").textContent = "";
      return;
    }
    say("");
    state.data = answer.data;
    const roles = answer.data.caller.roles || [];
    state.canWrite = roles.includes("Deployments.Write");
    $("caller").textContent = "Signed in as " + answer.data.caller.name + " (" + (roles.join(", ") || "no roles") + ")";
    renderErrors(answer.data.errors || []);
    renderTotals(answer.data);
    renderPending(answer.data.pendingDeployments || []);
    renderFilters(answer.data);
    renderRows();
    if (roles.includes("Audit.Read")) loadAudit(answer.data.auditQueryable !== false); else show($("audit-section"), false);
  }

  async function loadAudit(queryable) {
    const answer = queryable
      ? await call("GET", "audit?top=20")
      : { status: 0, message: "in this set-up audit records go to the app's log only (no AzureWebJobsStorage)." };
    const body = $("audit").tBodies[0];
    body.replaceChildren();
    if (answer.status !== 200) {
      const tr = el("tr");
      const td = cell(tr, "Audit", "The audit trail could not be read: " + answer.message);
      td.colSpan = 5;
      body.append(tr);
    } else {
      for (const record of answer.data.value || []) {
        const tr = el("tr");
        const time = el("time", new Date(record.time).toLocaleString());
        time.dateTime = record.time;
        cell(tr, "When", time);
        const who = record.caller || {};
        cell(tr, "Who", who.name || who.appId || who.objectId || "unknown");
        cell(tr, "What", record.action + (record.changed === false ? " (no change)" : ""));
        cell(tr, "Deployment", record.account + " / " + record.deployment);
        const outcome = record.outcome;
        cell(tr, "Outcome", outcome
          ? [outcome.status, outcome.provisioningState, outcome.code].filter((part) => part !== null && part !== undefined).join(" ")
          : "no answer from ARM yet");
        body.append(tr);
      }
      if (!body.rows.length) {
        const tr = el("tr");
        cell(tr, "Audit", "No changes recorded yet.").colSpan = 5;
        body.append(tr);
      }
    }
    show($("audit-section"), true);
  }

  // Rendering

  function renderErrors(errors) {
    const list = $("error-list");
    list.replaceChildren();
    for (const entry of errors) {
      const where = entry.source === "idleReport" ? "Idle figures of account " + entry.account
        : entry.account !== undefined ? "Account " + entry.account
        : entry.project !== undefined ? "Project " + entry.project : "The " + entry.source;
      list.append(el("li", where + ": " + entry.error.code + ", " + entry.error.message));
    }
    show($("errors"), errors.length > 0);
  }

  function renderTotals(data) {
    const currency = data.prices.currency;
    const table = $("totals");
    table.tBodies[0].replaceChildren();
    for (const group of data.totals.groups) {
      const tr = el("tr");
      const th = el("th", (group.scope === "project" ? "project " : "") + group.name);
      th.scope = "row";
      tr.append(th);
      cell(tr, "Deployments", group.count, "num");
      cell(tr, "Per hour", money(group.perHour, currency), "num");
      cell(tr, "Per 30 days", money(group.per30Days, currency), "num");
      cell(tr, "No price", group.unpriced, "num");
      table.tBodies[0].append(tr);
    }
    const overall = data.totals.overall;
    const tr = el("tr", null, "overall");
    const th = el("th", "All");
    th.scope = "row";
    tr.append(th);
    cell(tr, "Deployments", overall.count, "num");
    cell(tr, "Per hour", money(overall.perHour, currency), "num").id = "total-per-hour";
    cell(tr, "Per 30 days", money(overall.per30Days, currency), "num").id = "total-per-30-days";
    cell(tr, "No price", overall.unpriced, "num");
    table.tFoot.replaceChildren(tr);
    const source = $("price-source");
    source.replaceChildren("List prices in " + currency + ", checked " + data.prices.checked + ", from ");
    const url = String(data.prices.source || "");
    if (/^https:\/\//.test(url)) {
      const link = el("a", new URL(url).hostname);
      link.href = url;
      link.rel = "noopener noreferrer";
      source.append(link, ".");
    } else {
      source.append(url + ".");
    }
    show($("totals-section"), true);
  }

  function renderPending(pending) {
    const list = $("pending-list");
    list.replaceChildren(...pending.map((intent) => el("li", (intent.deployment || "?") + ": job " + intent.jobId + ", " + intent.status)));
    show($("pending-section"), pending.length > 0);
  }

  function fillSelect(select, values) {
    const current = select.value;
    select.replaceChildren(el("option", "All"));
    select.options[0].value = "";
    for (const value of values) {
      const option = el("option", value);
      option.value = value;
      select.append(option);
    }
    select.value = values.includes(current) ? current : "";
  }

  function renderFilters(data) {
    const scopes = data.totals.groups.map((group) => group.name);
    fillSelect($("filter-account"), [...new Set(scopes)]);
    fillSelect($("filter-state"), [...new Set(data.value.map((row) => row.state).filter(Boolean))].sort());
  }

  function matches(row) {
    const account = $("filter-account").value, wanted = $("filter-state").value;
    const text = $("filter-text").value.trim().toLowerCase();
    if (account && scopeOf(row) !== account) return false;
    if (wanted && row.state !== wanted) return false;
    if (!text) return true;
    const tags = Object.entries(row.tags || {}).map(([key, value]) => key + "=" + value).join(" ");
    return [row.name, row.model, row.sku, scopeOf(row), row.state, tags].join(" ").toLowerCase().includes(text);
  }

  const SORT_KEYS = {
    scope: (row) => scopeOf(row) + "\u0000" + row.name,
    name: (row) => String(row.name),
    model: (row) => String(row.model),
    sku: (row) => String(row.sku || ""),
    capacity: (row) => row.capacity ?? -1,
    state: (row) => String(row.state || ""),
    expires: (row) => countdown(row.expiresAt).order,
    idle: (row) => row.idleDays ?? -1,
    cost: (row) => row.cost.perHour ?? -1,
  };

  function sorted(rows) {
    const key = SORT_KEYS[state.sort.key], dir = state.sort.dir;
    return rows.slice().sort((a, b) => {
      const x = key(a), y = key(b);
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
    });
  }

  function renderRows() {
    const data = state.data;
    if (!data) return;
    const body = $("rows").tBodies[0];
    const rows = sorted(data.value.filter(matches));
    body.replaceChildren(...rows.map(renderRow));
    for (const th of $("rows").tHead.querySelectorAll("th[data-sort]")) {
      th.setAttribute("aria-sort", th.dataset.sort === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
    $("shown").textContent = "Showing " + rows.length + " of " + data.value.length + ".";
    show($("list-section"), true);
  }

  function renderRow(row) {
    const tr = el("tr");
    tr.dataset.name = row.name;
    tr.dataset.scope = scopeOf(row);
    if (row.idleAndCosting) tr.classList.add("idle-costing");
    const where = el("span", scopeOf(row));
    if (row.kind !== "deployment") where.append(el("span", " (serverless)", "kind"));
    cell(tr, "Account", where);
    const name = el("span", row.name, "name");
    if (row.idleAndCosting) {
      const mark = el("span", "idle and costing", "badge warn");
      mark.title = "Not called for " + row.idleDays + " days while it costs money every hour";
      name.append(" ", mark);
    }
    cell(tr, "Name", name);
    const model = el("span", shortModel(row.model), "model");
    model.title = row.model || "";
    cell(tr, "Model", model);
    cell(tr, "SKU", row.sku);
    cell(tr, "Capacity", row.capacity, "num capacity");
    const stateText = row.endpointState && row.endpointState !== row.state ? row.state + " / " + row.endpointState : row.state;
    cell(tr, "State", el("span", stateText || "—", "state state-" + String(row.state || "unknown").toLowerCase()));
    const expiry = countdown(row.expiresAt);
    const expires = el("span", expiry.text, expiry.expired ? "expired" : "");
    expires.title = expiry.title;
    cell(tr, "Expires", expires);
    cell(tr, "Keep-alive", row.keepAlive ? "on" : "off");
    const idle = el("span", row.idleDays === null || row.idleDays === undefined ? "—" : row.idleDays + " d idle", "idle");
    if (row.autoDeleteInDays !== null && row.autoDeleteInDays !== undefined) {
      idle.append(el("span", "Azure removes it in " + row.autoDeleteInDays + " d", "removal"));
    }
    if (row.lastUsed) idle.title = "Last called " + row.lastUsed;
    cell(tr, "Idle", idle);
    const currency = state.data.prices.currency;
    const cost = el("span", null, "cost");
    cost.append(el("span", money(row.cost.perHour, currency) + " / h", "per-hour"),
      el("span", row.cost.basis === "tokens" ? "tokens only" : money(row.cost.per30Days, currency, true) + " / 30 d", "per-month"));
    cell(tr, "Cost (est.)", cost, "num");
    const tags = el("ul", null, "tags");
    for (const [key, value] of Object.entries(row.tags || {})) {
      if (!SHOWN_AS_COLUMNS.has(key)) tags.append(el("li", key + "=" + value));
    }
    cell(tr, "Tags", tags.children.length ? tags : "—");
    const actions = el("div", null, "actions");
    if (state.canWrite && row.kind === "deployment") {
      actions.append(
        button("Scale", "Scale " + row.name, () => openScale(row)),
        button("Expiry", "Set or clear the expiry of " + row.name, () => openExpiry(row)),
        button(row.keepAlive ? "Keep-alive off" : "Keep-alive on", "Turn keep-alive " + (row.keepAlive ? "off" : "on") + " for " + row.name,
          () => act(row, "keep-alive", "PATCH", { keepAlive: !row.keepAlive })),
        button("Delete", "Delete " + row.name, () => openDelete(row), "danger"),
      );
    } else if (state.canWrite) {  // a serverless endpoint: no capacity to scale; delete it
      actions.append(button("Delete", "Delete " + row.name, () => openDelete(row), "danger"));
    }
    const status = el("span", state.busy.get(key(row)) || "", "status");
    status.setAttribute("role", "status");
    actions.append(status);
    cell(tr, "Actions", actions, "actions-col");
    return tr;
  }

  function button(text, label, onClick, className) {
    const node = el("button", text, className);
    node.type = "button";
    node.setAttribute("aria-label", label);
    node.addEventListener("click", onClick);
    return node;
  }

  function key(row) { return scopeOf(row) + "/" + row.name; }

  // Actions: 202 -> polling -> a final state, each step shown on the row and in the progress list

  function progress(row, text) {
    state.busy.set(key(row), text);
    const tr = [...$("rows").tBodies[0].rows].find((r) => r.dataset.scope === scopeOf(row) && r.dataset.name === row.name);
    if (tr) tr.querySelector(".status").textContent = text;
    let item = [...$("progress").children].find((li) => li.dataset.key === key(row));
    if (!item) {
      item = el("li");
      item.dataset.key = key(row);
      $("progress").append(item);
    }
    item.textContent = row.name + " (" + scopeOf(row) + "): " + text;
  }

  async function act(row, what, method, body) {
    progress(row, what + ": sending…");
    const answer = await call(method, deploymentPath(row), body);
    if (answer.status >= 400 || answer.status === 0) {
      progress(row, what + " refused (" + (answer.code || answer.status) + "): " + answer.message);
      return;
    }
    if (answer.status === 202) {
      progress(row, what + ": accepted (202), waiting for Azure…");
      await poll(row, what, method === "DELETE");
    } else if (answer.status === 204) {
      progress(row, what + ": deleted");
    } else {
      progress(row, what + ": " + ((answer.data && answer.data.provisioningState) || "Succeeded"));
    }
    await load();
  }

  async function poll(row, what, deleting) {
    for (let attempt = 0; attempt < POLL_LIMIT; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const answer = await call("GET", deploymentPath(row));
      if (answer.status === 404 && deleting) { progress(row, what + ": deleted"); return; }
      if (answer.status !== 200) { progress(row, what + ": could not read its state (" + answer.message + ")"); return; }
      const current = answer.data.provisioningState;
      if (FINAL.has(current)) { progress(row, what + ": " + current); return; }
      progress(row, what + ": " + current + "…");
    }
    progress(row, what + ": still running; refresh later");
  }

  let dialogRow = null;

  function openDialog(id, row) {
    dialogRow = row;
    $(id).showModal();
  }

  function openScale(row) {
    $("scale-title").textContent = "Scale " + row.name + " (" + row.account + ")";
    $("scale-capacity").value = row.capacity || 1;
    openDialog("scale-dialog", row);
  }

  function openExpiry(row) {
    $("expiry-title").textContent = "Expiry of " + row.name + " (" + row.account + ")";
    $("expiry-hours").value = "";
    $("expiry-at").value = "";
    openDialog("expiry-dialog", row);
  }

  function openDelete(row) {
    $("delete-title").textContent = "Delete " + row.name + "?";
    const what = row.kind === "serverlessEndpoint" ? "serverless endpoint" : "deployment";
    const where = row.kind === "serverlessEndpoint" ? "project " + row.project : "account " + row.account;
    $("delete-text").textContent = "This deletes the " + what + " \u201c" + row.name + "\u201d in " + where
      + ". Calls to it fail from then on; the fine-tuned model itself is kept and can be deployed again.";
    $("delete-confirm").textContent = "Delete " + row.name;
    openDialog("delete-dialog", row);
  }

  function closeDialogs() {
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  }

  function wire() {
    $("refresh").addEventListener("click", () => load());
    for (const id of ["filter-account", "filter-state"]) $(id).addEventListener("change", renderRows);
    $("filter-text").addEventListener("input", renderRows);
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    for (const th of $("rows").tHead.querySelectorAll("th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        state.sort = { key: th.dataset.sort, dir: state.sort.key === th.dataset.sort ? -state.sort.dir : 1 };
        renderRows();
      });
    }
    for (const cancel of document.querySelectorAll("dialog .cancel")) cancel.addEventListener("click", closeDialogs);
    $("scale-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const row = dialogRow;
      closeDialogs();
      act(row, "scale to " + $("scale-capacity").value, "PATCH", { capacity: Number($("scale-capacity").value) });
    });
    $("expiry-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const row = dialogRow, at = $("expiry-at").value, hours = $("expiry-hours").value;
      if (!at && !hours) { $("expiry-hours").focus(); return; }
      closeDialogs();
      const body = at ? { expiresAt: new Date(at).toISOString() } : { ttlHours: Number(hours) };
      act(row, "set expiry", "PATCH", body);
    });
    $("expiry-clear").addEventListener("click", () => {
      const row = dialogRow;
      closeDialogs();
      act(row, "clear expiry", "PATCH", { expiresAt: null });
    });
    $("delete-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const row = dialogRow;
      closeDialogs();
      act(row, "delete", "DELETE");
    });
    window.setInterval(renderRows, 60000); // the expiry countdowns move on
  }

  wire();
  load();
})();
