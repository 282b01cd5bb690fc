// The orders page: places orders with the command service and shows the user's items by price
// group, live from the query service's event stream. Plain DOM, no dependencies.
"use strict";

const USER_KEY = "orders.userId";
const KNOWN_USERS_KEY = "orders.knownUsers";
const KNOWN_USERS_MAX = 10;
const USER_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const GROUPS = ["cheap", "affordable", "expensive"];
const ITEM_FIELDS = ["sku", "name", "unit_price", "quantity"];
const FIELD_WORDS = { sku: "SKU", name: "name", unit_price: "unit price", quantity: "quantity" };
// EventSource gives up for good on an HTTP error; after that the page tries again itself.
const RESUBSCRIBE_AFTER_MS = 2000;

const state = {
  commandServiceUrl: null,
  userId: null,
  stream: null,
  resubscribeTimer: null,
  submitting: false,
  // After a 503 or a network failure the order may or may not be recorded: retrying the same
  // order with the same Idempotency-Key cannot place it twice.
  retry: null,
  nextRowId: 1,
};

const $ = (id) => document.getElementById(id);

// ---- storage -------------------------------------------------------------------------------

function stored(key, fallback) {
  try {
    const value = localStorage.getItem(key);
    return value === null ? fallback : JSON.parse(value);
  } catch {
    return fallback; // storage disabled or a value we did not write
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage disabled: the page still works, it only forgets the user on reload.
  }
}

// ---- money ---------------------------------------------------------------------------------

// Amounts arrive as exact decimal strings ("1234.50"); they are formatted as text, never floats.
function pounds(amount) {
  const [whole, fraction = "00"] = String(amount).split(".");
  return `£${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${fraction.padEnd(2, "0")}`;
}

// ---- connection status ---------------------------------------------------------------------

function setConnection(status, text) {
  $("connection").dataset.state = status;
  $("connection-text").textContent = text;
}

// ---- the user ------------------------------------------------------------------------------

function rememberUser(userId) {
  store(USER_KEY, userId);
  const known = [userId, ...stored(KNOWN_USERS_KEY, []).filter((u) => u !== userId)];
  store(KNOWN_USERS_KEY, known.slice(0, KNOWN_USERS_MAX));
  renderKnownUsers();
}

function renderKnownUsers() {
  const options = stored(KNOWN_USERS_KEY, []).map((userId) => {
    const option = document.createElement("option");
    option.value = userId;
    return option;
  });
  $("known-users").replaceChildren(...options);
}

function showUser(userId) {
  state.userId = userId;
  $("user-id").value = userId;
  $("order-user").textContent = `for ${userId}`;
  $("items-user").textContent = `by ${userId}`;
  rememberUser(userId);
  clearColumns();
  subscribe(userId);
}

function onUserSubmit(event) {
  event.preventDefault();
  const input = $("user-id");
  const userId = input.value.trim();
  if (!USER_ID_PATTERN.test(userId)) {
    input.setAttribute("aria-invalid", "true");
    $("user-error").textContent =
      "A user id is 1 to 64 letters, digits, dots, dashes or underscores.";
    input.focus();
    return;
  }
  input.removeAttribute("aria-invalid");
  $("user-error").textContent = "";
  if (userId !== state.userId) showUser(userId);
}

// ---- the live view -------------------------------------------------------------------------

function subscribe(userId) {
  unsubscribe();
  setConnection("connecting", "Connecting…");
  const source = new EventSource(`users/${encodeURIComponent(userId)}/items/stream`);
  state.stream = source;
  const current = () => state.stream === source;
  source.addEventListener("open", () => {
    if (current()) setConnection("live", "Live");
  });
  source.addEventListener("items", (event) => {
    if (!current()) return;
    setConnection("live", "Live");
    renderItems(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    if (!current()) return;
    setConnection("reconnecting", "Reconnecting…");
    if (source.readyState === EventSource.CLOSED) {
      state.resubscribeTimer = setTimeout(() => subscribe(userId), RESUBSCRIBE_AFTER_MS);
    }
  });
}

function unsubscribe() {
  clearTimeout(state.resubscribeTimer);
  if (state.stream !== null) state.stream.close();
  state.stream = null;
}

function column(group) {
  return document.querySelector(`.column[data-group="${group}"]`);
}

function clearColumns() {
  for (const group of GROUPS) {
    renderGroup(group, { lines: [], item_count: 0, total: "0.00" }, false);
  }
}

function renderItems(view) {
  if (view.user_id !== state.userId) return;
  for (const group of GROUPS) renderGroup(group, view.groups[group], true);
}

function renderGroup(group, body, highlight) {
  const section = column(group);
  const count = section.querySelector('[data-field="item_count"]');
  const total = section.querySelector('[data-field="total"]');
  const changed = total.textContent !== pounds(body.total) || count.textContent !== String(body.item_count);
  count.textContent = String(body.item_count);
  total.textContent = pounds(body.total);
  section.querySelector('[data-field="lines"]').replaceChildren(linesTable(group, body.lines));
  if (highlight && changed) {
    section.classList.remove("updated");
    void section.offsetWidth; // restart the animation
    section.classList.add("updated");
  }
}

function linesTable(group, lines) {
  if (lines.length === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No items yet.";
    return empty;
  }
  const table = document.createElement("table");
  table.className = "lines";
  const caption = table.createCaption();
  caption.className = "visually-hidden";
  caption.textContent = `${group[0].toUpperCase()}${group.slice(1)} items`;
  const head = table.createTHead().insertRow();
  for (const [text, numeric] of [["Item", false], ["Unit price", true], ["Qty", true]]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = text;
    if (numeric) th.className = "numeric";
    head.append(th);
  }
  const tbody = table.createTBody();
  for (const line of lines) {
    const row = tbody.insertRow();
    row.dataset.sku = line.sku;
    const item = row.insertCell();
    const name = document.createElement("span");
    name.className = "line-name";
    name.textContent = line.name;
    const sku = document.createElement("span");
    sku.className = "line-sku";
    sku.textContent = line.sku;
    item.append(name, sku);
    const price = row.insertCell();
    price.className = "numeric";
    price.textContent = pounds(line.unit_price);
    const quantity = row.insertCell();
    quantity.className = "numeric";
    quantity.textContent = String(line.quantity);
  }
  return table;
}

// ---- the order form ------------------------------------------------------------------------

function itemRows() {
  return [...$("item-rows").querySelectorAll(".item-row")];
}

function addItemRow() {
  const fragment = $("item-row-template").content.cloneNode(true);
  const row = fragment.querySelector(".item-row");
  const id = `item-${state.nextRowId++}`;
  row.querySelector('[data-role="number"]').id = `${id}-number`;
  row.setAttribute("aria-labelledby", `${id}-number`);
  for (const field of ITEM_FIELDS) {
    const input = row.querySelector(`[data-name="${field}"]`);
    input.id = `${id}-${field}`;
    input.name = field;
    row.querySelector(`label[data-for="${field}"]`).htmlFor = input.id;
    input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
  }
  row.querySelector('[data-role="remove"]').addEventListener("click", () => removeItemRow(row));
  $("item-rows").append(row);
  renumberRows();
  return row;
}

function removeItemRow(row) {
  const rows = itemRows();
  if (rows.length <= 1) return;
  const next = rows[rows.indexOf(row) + 1] ?? rows[rows.indexOf(row) - 1];
  row.remove();
  renumberRows();
  // Keep keyboard users where they were rather than dropping focus to the page.
  next.querySelector('[data-role="remove"]:not(:disabled)')?.focus() ?? $("add-item").focus();
}

function renumberRows() {
  const rows = itemRows();
  rows.forEach((row, index) => {
    row.querySelector('[data-role="number"]').textContent = `Item ${index + 1}`;
    const remove = row.querySelector('[data-role="remove"]');
    remove.setAttribute("aria-label", `Remove item ${index + 1}`);
    remove.disabled = rows.length === 1;
  });
}

function resetOrderForm() {
  $("item-rows").replaceChildren();
  addItemRow();
}

function isBlank(row) {
  return ITEM_FIELDS.every((field) => {
    const value = row.querySelector(`[name="${field}"]`).value.trim();
    return value === "" || (field === "quantity" && value === "1");
  });
}

function lineFrom(row) {
  const value = (field) => row.querySelector(`[name="${field}"]`).value.trim();
  const line = {};
  if (value("sku") !== "") line.sku = value("sku");
  if (value("name") !== "") line.name = value("name");
  // Prices travel as strings so that they stay exact decimals; the service validates them.
  const price = value("unit_price").replace(/^£\s*/, "");
  if (price !== "") line.unit_price = price;
  const quantity = value("quantity");
  if (quantity !== "") line.quantity = /^\d+$/.test(quantity) ? Number(quantity) : quantity;
  return line;
}

// The order to send, and for each of its items the row number the user sees.
function orderFromForm() {
  const rows = itemRows();
  const filled = rows.filter((row) => !isBlank(row));
  const chosen = filled.length > 0 ? filled : rows.slice(0, 1);
  return {
    order: { user_id: state.userId, items: chosen.map(lineFrom), currency: "GBP" },
    rows: chosen,
    rowNumbers: chosen.map((row) => rows.indexOf(row) + 1),
  };
}

function uuid4() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function onOrderSubmit(event) {
  event.preventDefault();
  if (state.submitting) return;
  clearMessages();
  if (state.userId === null) {
    showErrors(["Choose a user id first."]);
    $("user-id").focus();
    return;
  }
  if (state.commandServiceUrl === null) {
    showErrors(["The page has not loaded its settings yet; please reload it."]);
    return;
  }
  const { order, rows, rowNumbers } = orderFromForm();
  const body = JSON.stringify(order);
  const key = state.retry !== null && state.retry.body === body ? state.retry.key : uuid4();
  setSubmitting(true);
  let response;
  try {
    response = await fetch(`${state.commandServiceUrl}/orders`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": key },
      body,
    });
  } catch {
    state.retry = { key, body };
    showErrors([
      "Could not reach the ordering service. Check your connection and press Place order " +
        "again: the order will not be placed twice.",
    ]);
    return;
  } finally {
    setSubmitting(false);
  }
  await handleResponse(response, { key, body, rows, rowNumbers });
}

async function handleResponse(response, sent) {
  const payload = await response.json().catch(() => null);
  if (response.status === 201) {
    state.retry = null;
    resetOrderForm();
    const count = payload.items.reduce((sum, item) => sum + item.quantity, 0);
    showNotice(`Order placed: ${count} item${count === 1 ? "" : "s"}.`);
    return;
  }
  if (response.status === 503) {
    state.retry = { key: sent.key, body: sent.body };
    showErrors([
      "The order could not be recorded just now. Press Place order again in a moment: " +
        "the order will not be placed twice.",
    ]);
    return;
  }
  state.retry = null; // refused: nothing was recorded
  if (response.status === 422 && payload !== null && Array.isArray(payload.detail)) {
    const messages = payload.detail.map((issue) => describeIssue(issue, sent.rowNumbers));
    markInvalid(payload.detail, sent.rows);
    showErrors(messages, "The order was not placed:");
    return;
  }
  const detail = payload !== null && typeof payload.detail === "string" ? payload.detail : "";
  showErrors([`The order was not placed (error ${response.status}). ${detail}`.trim()]);
}

// ---- errors in plain words -----------------------------------------------------------------

function plainReason(issue) {
  switch (issue.type) {
    case "missing":
      return "is required";
    case "string_too_short":
      return "is required";
    case "int_type":
    case "int_parsing":
    case "int_from_float":
      return "must be a whole number";
    case "greater_than_equal":
    case "greater_than":
    case "less_than_equal":
    case "less_than":
    case "string_too_long":
      return issue.msg.replace(/^(Input|String|Value) should/, "must").replace(/should/, "must");
    default:
      return issue.msg.replace(/^Value error, /, "").replace(/^(Input|String|Value) should/, "must");
  }
}

function describeIssue(issue, rowNumbers) {
  const loc = issue.loc[0] === "body" ? issue.loc.slice(1) : issue.loc;
  if (loc[0] === "items" && typeof loc[1] === "number") {
    const number = rowNumbers[loc[1]] ?? loc[1] + 1;
    const field = FIELD_WORDS[loc[2]];
    return field === undefined
      ? `Item ${number}: ${plainReason(issue)}`
      : `Item ${number}: ${field} ${plainReason(issue)}`;
  }
  if (loc[0] === "items") {
    return issue.type === "too_short" ? "Add at least one item." : `Items: ${plainReason(issue)}`;
  }
  if (loc[0] === "user_id") {
    return issue.type === "string_pattern_mismatch"
      ? "User id: use 1 to 64 letters, digits, dots, dashes or underscores."
      : `User id ${plainReason(issue)}`;
  }
  return issue.msg;
}

function markInvalid(issues, rows) {
  let first = null;
  for (const issue of issues) {
    const loc = issue.loc[0] === "body" ? issue.loc.slice(1) : issue.loc;
    if (loc[0] !== "items" || typeof loc[1] !== "number" || rows[loc[1]] === undefined) continue;
    const input = rows[loc[1]].querySelector(`[name="${loc[2]}"]`);
    if (input === null) continue;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "order-errors");
    first ??= input;
  }
  first?.focus();
}

function showErrors(messages, heading) {
  const box = $("order-errors");
  const parts = [];
  if (heading !== undefined) {
    const p = document.createElement("p");
    p.textContent = heading;
    parts.push(p);
  }
  const list = document.createElement("ul");
  for (const message of messages) {
    const li = document.createElement("li");
    li.textContent = message;
    list.append(li);
  }
  parts.push(list);
  box.replaceChildren(...parts);
  box.hidden = false;
}

function showNotice(text) {
  $("order-notice").textContent = text;
  $("order-notice").hidden = false;
}

function clearMessages() {
  $("order-errors").hidden = true;
  $("order-errors").replaceChildren();
  $("order-notice").hidden = true;
  $("order-notice").textContent = "";
  for (const input of $("item-rows").querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
}

function setSubmitting(submitting) {
  state.submitting = submitting;
  const button = $("place-order");
  // aria-disabled rather than disabled, so that the focused button keeps the focus.
  button.setAttribute("aria-disabled", String(submitting));
  button.textContent = submitting ? "Placing order…" : "Place order";
  $("order-form").setAttribute("aria-busy", String(submitting));
}

// ---- start ---------------------------------------------------------------------------------

async function loadConfig() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const config = await response.json();
    state.commandServiceUrl = String(config.command_service_url).replace(/\/+$/, "");
  } catch {
    showErrors(["The page could not load its settings from the server; please reload it."]);
  }
}

function start() {
  $("user-form").addEventListener("submit", onUserSubmit);
  $("order-form").addEventListener("submit", onOrderSubmit);
  $("add-item").addEventListener("click", () => {
    addItemRow().querySelector('[name="sku"]').focus();
  });
  resetOrderForm();
  renderKnownUsers();
  const userId = stored(USER_KEY, null);
  if (typeof userId === "string" && USER_ID_PATTERN.test(userId)) {
    showUser(userId);
  } else {
    $("user-id").focus();
  }
  loadConfig();
}

start();
