// The orders page: places orders with the command service and shows the user's items by price
// group, live from the query service's event stream, and their orders. Plain DOM, no
// dependencies. The user signs in at the deployment's OpenID Connect issuer (authorization code
// with PKCE); the access token stays in this tab (sessionStorage) and goes to both services.
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

const SESSION_KEY = "orders.session";
const SIGN_IN_KEY = "orders.signIn";

const state = {
  commandServiceUrl: null,
  auth: null, // config.json's auth: {issuer, client_id, resource, scope}, or null when off
  session: null, // {accessToken, userId, expiresAt}
  userId: null,
  stream: null,
  resubscribeTimer: null,
  // Set when the stream broke off: the page may have missed changes it does not stream.
  streamGap: false,
  view: null, // see emptyView()
  orders: { userId: null, list: [], nextCursor: null, loaded: false, loading: false, error: "" },
  ordersReload: { userId: null, running: false, again: false, token: null }, // see loadOrders()
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

// ---- signing in ----------------------------------------------------------------------------

function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

function randomText() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function pkceChallenge(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

// The token's claims, for the page's own use (whose items to show); the services verify it.
function claimsOf(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
}

function redirectUri() {
  return `${location.origin}${location.pathname}`;
}

function sessionGet(key) {
  try {
    const value = sessionStorage.getItem(key);
    return value === null ? null : JSON.parse(value);
  } catch {
    return null;
  }
}

function sessionSet(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage disabled: the sign-in lasts until the page is reloaded.
  }
}

async function discovery() {
  const response = await fetch(`${state.auth.issuer}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

async function signIn() {
  $("account-error").textContent = "";
  try {
    const provider = await discovery();
    const verifier = randomText();
    const signInState = randomText();
    sessionSet(SIGN_IN_KEY, {
      verifier,
      state: signInState,
      tokenEndpoint: provider.token_endpoint,
    });
    const query = new URLSearchParams({
      client_id: state.auth.client_id,
      response_type: "code",
      redirect_uri: redirectUri(),
      scope: state.auth.scope,
      resource: state.auth.resource,
      state: signInState,
      code_challenge: await pkceChallenge(verifier),
      code_challenge_method: "S256",
    });
    location.assign(`${provider.authorization_endpoint}?${query}`);
  } catch {
    $("account-error").textContent = "Could not reach the sign-in service. Please try again.";
  }
}

// Back from the issuer with ?code=…&state=…: exchange the code for an access token.
async function finishSignIn(params) {
  const pending = sessionGet(SIGN_IN_KEY);
  sessionSet(SIGN_IN_KEY, null);
  history.replaceState(null, "", redirectUri());
  if (pending === null || params.get("state") !== pending.state || !params.get("code")) {
    $("account-error").textContent = "The sign-in did not complete. Please sign in again.";
    return;
  }
  try {
    const response = await fetch(pending.tokenEndpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: params.get("code"),
        redirect_uri: redirectUri(),
        client_id: state.auth.client_id,
        code_verifier: pending.verifier,
      }),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    const claims = claimsOf(body.access_token);
    const session = {
      accessToken: body.access_token,
      userId: claims.sub,
      expiresAt: claims.exp * 1000,
    };
    sessionSet(SESSION_KEY, session);
    signedIn(session);
  } catch {
    $("account-error").textContent = "The sign-in failed. Please try again.";
  }
}

function signedIn(session) {
  state.session = session;
  $("signed-out").hidden = true;
  $("sign-in").hidden = true;
  $("signed-in").hidden = false;
  $("sign-out").hidden = false;
  $("signed-in-user").textContent = session.userId;
  showUser(session.userId);
}

function signOut(message = "") {
  state.session = null;
  sessionSet(SESSION_KEY, null);
  answers.clear();
  unsubscribe();
  state.userId = null;
  $("order-user").textContent = "";
  $("items-user").textContent = "";
  clearColumns();
  clearOrders();
  setConnection("idle", "Not connected");
  $("signed-in").hidden = true;
  $("sign-out").hidden = true;
  $("signed-out").hidden = false;
  $("sign-in").hidden = false;
  $("account-error").textContent = message;
}

function authHeaders() {
  return state.session === null ? {} : { Authorization: `Bearer ${state.session.accessToken}` };
}

// fetch with the access token; a 401 means it expired or was revoked: sign in again.
async function authorizedFetch(url, options = {}) {
  const response = await fetch(url, {
    ...options,
    headers: { ...(options.headers ?? {}), ...authHeaders() },
  });
  if (response.status === 401 && state.auth !== null) {
    signOut("Your sign-in has expired. Please sign in again.");
  }
  return response;
}

// ---- reading views -------------------------------------------------------------------------

// The last answer to each view's URL, with its ETag, sent back as If-None-Match when the page
// reads the view again: a 304 says that what the page holds is current, so it reuses it and the
// service reads nothing. The page does this itself rather than leaving it to the browser's HTTP
// cache (cache: "no-store"), so that the user's answers stay in this tab's memory, until
// sign-out, and never in the browser's cache.
const ANSWERS_MAX = 50;
const answers = new Map(); // url -> {etag, text}, least recently used first

// The view at `url`, parsed afresh each time (callers may change what they get). With a
// consistency token (in a header, so that the URL names only the view), an answer that holds it.
async function readView(url, consistencyToken = null) {
  const held = answers.get(url);
  const headers = {};
  if (held !== undefined) headers["If-None-Match"] = held.etag;
  if (consistencyToken) headers["X-Consistency-Token"] = consistencyToken;
  const response = await authorizedFetch(url, { cache: "no-store", headers });
  let text;
  if (response.status === 304 && held !== undefined) {
    text = held.text;
  } else if (response.ok) {
    text = await response.text();
  } else {
    throw new Error(`HTTP ${response.status}`);
  }
  answers.delete(url);
  const etag = response.headers.get("ETag");
  if (etag !== null) answers.set(url, { etag, text });
  if (answers.size > ANSWERS_MAX) answers.delete(answers.keys().next().value);
  return JSON.parse(text);
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
  if (state.auth !== null) return; // signed in, the token says who
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
  clearOrders();
  state.streamGap = false;
  subscribe(userId);
  loadOrders();
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

// The page's model of the user's items: per group its summary and the lines loaded so far, in the
// server's order. `offset` is the view position of the last stream event applied.
function emptyView() {
  const groups = {};
  for (const group of GROUPS) groups[group] = emptyGroup();
  return { offset: null, partition: null, groups };
}

function emptyGroup() {
  return {
    summary: { item_count: 0, total: "0.00", line_count: 0 },
    lines: [],
    nextCursor: null,
    // While a "show more" page is on its way: the stream's line changes for this group since it
    // was asked for, to apply on top of the page once it arrives.
    loading: null,
    loadError: false,
  };
}

// Lines sort as the server's keys do: by sku in code point order (UTF-8 byte order), then by
// unit price in pence.
function pence(amount) {
  const [whole, fraction = ""] = String(amount).split(".");
  return Number(whole) * 100 + Number(fraction.padEnd(2, "0").slice(0, 2));
}

function compareSkus(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const diff = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (diff !== 0) return diff;
  }
  return x.length - y.length;
}

function compareLines(a, b) {
  return compareSkus(a.sku, b.sku) || pence(a.unit_price) - pence(b.unit_price);
}

function lineKey(line) {
  return `${line.sku}\u0000${pence(line.unit_price)}`;
}

// "<partition>:<offset>" or "v1:<partition>:<offset>" -> {partition, offset}.
function position(text) {
  const parts = String(text ?? "").split(":");
  const [partition, offset] = parts.slice(-2).map(Number);
  return Number.isInteger(partition) && Number.isInteger(offset) ? { partition, offset } : null;
}

// EventSource sends no Authorization header: a short-lived ticket for this user's stream goes in
// the URL instead (never the access token).
async function streamUrl(userId) {
  const base = `users/${encodeURIComponent(userId)}/items/stream`;
  if (state.auth === null) return base;
  const response = await authorizedFetch(`${base}-ticket`, { method: "POST" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const { ticket } = await response.json();
  return `${base}?${new URLSearchParams({ ticket })}`;
}

async function subscribe(userId) {
  unsubscribe();
  setConnection("connecting", "Connecting…");
  const attempt = {};
  state.stream = attempt;
  let url;
  try {
    url = await streamUrl(userId);
  } catch {
    if (state.stream !== attempt || (state.auth !== null && state.session === null)) return;
    state.streamGap = true;
    setConnection("reconnecting", "Reconnecting…");
    state.resubscribeTimer = setTimeout(() => subscribe(userId), RESUBSCRIBE_AFTER_MS);
    return;
  }
  if (state.stream !== attempt) return; // another user, or signed out, meanwhile
  const source = new EventSource(url);
  state.stream = source;
  const current = () => state.stream === source;
  source.addEventListener("open", () => {
    if (!current()) return;
    setConnection("live", "Live");
    // The orders are not on the stream: after a gap, read them again (a 304 if none came).
    if (state.streamGap) loadOrders();
    state.streamGap = false;
  });
  source.addEventListener("snapshot", (event) => {
    if (!current()) return;
    setConnection("live", "Live");
    applySnapshot(JSON.parse(event.data), position(event.lastEventId));
  });
  source.addEventListener("delta", (event) => {
    if (!current()) return;
    setConnection("live", "Live");
    const at = position(event.lastEventId);
    applyDelta(JSON.parse(event.data), at);
    // The user's view changed: an order came, perhaps from elsewhere. Show it in their orders.
    loadOrders(at === null ? null : `v1:${at.partition}:${at.offset}`);
  });
  source.addEventListener("error", () => {
    if (!current()) return;
    state.streamGap = true;
    setConnection("reconnecting", "Reconnecting…");
    if (source.readyState === EventSource.CLOSED) {
      state.resubscribeTimer = setTimeout(() => subscribe(userId), RESUBSCRIBE_AFTER_MS);
    }
  });
}

function unsubscribe() {
  clearTimeout(state.resubscribeTimer);
  if (state.stream instanceof EventSource) state.stream.close();
  state.stream = null;
}

function column(group) {
  return document.querySelector(`.column[data-group="${group}"]`);
}

function clearColumns() {
  state.view = emptyView();
  for (const group of GROUPS) renderGroup(group, false);
}

// A snapshot replaces everything the page knows, including pages it is still waiting for.
function applySnapshot(view, at) {
  if (view.user_id !== state.userId) return;
  const next = emptyView();
  next.offset = at?.offset ?? position(view.consistency_token)?.offset ?? null;
  next.partition = at?.partition ?? position(view.consistency_token)?.partition ?? null;
  for (const group of GROUPS) {
    const body = view.groups[group];
    if (body === undefined) continue;
    const model = next.groups[group];
    model.summary = summaryOf(body);
    model.lines = [...body.lines].sort(compareLines);
    model.nextCursor = body.next_cursor ?? null;
  }
  state.view = next;
  for (const group of GROUPS) renderGroup(group, true);
}

function summaryOf(body) {
  return { item_count: body.item_count, total: body.total, line_count: body.line_count };
}

function applyDelta(delta, at) {
  const view = state.view;
  if (at !== null) {
    view.offset = at.offset;
    view.partition = at.partition;
  }
  const touched = new Set();
  for (const [group, summary] of Object.entries(delta.groups ?? {})) {
    if (view.groups[group] === undefined) continue;
    view.groups[group].summary = summaryOf(summary);
    touched.add(group);
  }
  for (const line of delta.lines ?? []) {
    const model = view.groups[line.group];
    if (model === undefined) continue;
    model.loading?.changes.push({ offset: at?.offset ?? Infinity, line });
    mergeLine(model, line);
    touched.add(line.group);
  }
  for (const group of touched) renderGroup(group, true);
}

// Update a loaded line, or insert a new one if it falls among the lines loaded so far (or every
// line is loaded); a line past the loaded ones waits for "Show more".
function mergeLine(model, line) {
  const value = {
    sku: line.sku,
    name: line.name,
    unit_price: line.unit_price,
    quantity: line.quantity,
    order_count: line.order_count,
  };
  const lines = model.lines;
  let low = 0;
  let high = lines.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (compareLines(lines[middle], value) < 0) low = middle + 1;
    else high = middle;
  }
  if (low < lines.length && compareLines(lines[low], value) === 0) {
    lines[low] = value;
  } else if (low < lines.length || model.nextCursor === null) {
    lines.splice(low, 0, value);
  }
}

async function showMore(group) {
  const view = state.view;
  const model = view.groups[group];
  if (model.loading !== null || model.nextCursor === null) return;
  const userId = state.userId;
  model.loading = { changes: [] };
  model.loadError = false;
  renderMore(group);
  const query = new URLSearchParams({ group, cursor: model.nextCursor });
  // The page must hold at least what the stream has shown, or it could show older lines.
  const token =
    view.offset !== null && view.partition !== null ? `v1:${view.partition}:${view.offset}` : null;
  let page = null;
  try {
    page = await readView(`users/${encodeURIComponent(userId)}/items?${query}`, token);
  } catch {
    page = null;
  }
  // A snapshot or another user since: that page belongs to a model that is gone.
  if (state.view !== view || state.userId !== userId || view.groups[group] !== model) return;
  const changes = model.loading.changes;
  model.loading = null;
  const body = page?.groups?.[group];
  if (body === undefined) {
    model.loadError = true;
    renderMore(group);
    return;
  }
  const known = new Set(model.lines.map(lineKey));
  for (const line of body.lines) {
    if (!known.has(lineKey(line))) model.lines.push(line);
  }
  model.lines.sort(compareLines);
  model.nextCursor = body.next_cursor ?? null;
  // Changes the stream sent while the page was on its way and that the page may not hold.
  const pageOffset = position(page.consistency_token)?.offset ?? -Infinity;
  for (const change of changes) {
    if (change.offset > pageOffset) mergeLine(model, change.line);
  }
  renderGroup(group, false);
}

function renderGroup(group, highlight) {
  const model = state.view.groups[group];
  const section = column(group);
  const summary = model.summary;
  const fields = {
    item_count: String(summary.item_count),
    total: pounds(summary.total),
    line_count: String(summary.line_count),
  };
  let changed = false;
  for (const [name, text] of Object.entries(fields)) {
    const element = section.querySelector(`[data-field="${name}"]`);
    if (element.textContent !== text) changed = true;
    element.textContent = text;
  }
  section.querySelector('[data-field="lines"]').replaceChildren(linesTable(group, model.lines));
  renderMore(group);
  if (highlight && changed) {
    section.classList.remove("updated");
    void section.offsetWidth; // restart the animation
    section.classList.add("updated");
  }
}

function renderMore(group) {
  const model = state.view.groups[group];
  const section = column(group);
  const more = section.querySelector('[data-field="more"]');
  const shown = section.querySelector('[data-field="shown"]');
  const button = section.querySelector('[data-role="show-more"]');
  const error = section.querySelector('[data-field="more-error"]');
  const total = Math.max(model.summary.line_count, model.lines.length);
  more.hidden = model.nextCursor === null && !model.loadError;
  shown.textContent = `Showing ${model.lines.length} of ${total} lines`;
  button.hidden = model.nextCursor === null;
  const loading = model.loading !== null;
  button.setAttribute("aria-disabled", String(loading));
  button.querySelector('[data-field="more-label"]').textContent = loading
    ? "Loading…"
    : "Show more";
  error.textContent = model.loadError ? "Could not load more items. Please try again." : "";
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
    const orders = document.createElement("span");
    orders.className = "line-orders";
    orders.dataset.field = "order_count";
    orders.textContent = `in ${line.order_count} order${line.order_count === 1 ? "" : "s"}`;
    item.append(name, sku, orders);
    const price = row.insertCell();
    price.className = "numeric";
    price.textContent = pounds(line.unit_price);
    const quantity = row.insertCell();
    quantity.className = "numeric";
    quantity.dataset.field = "quantity";
    quantity.textContent = String(line.quantity);
  }
  return table;
}

// ---- the user's orders ---------------------------------------------------------------------

function clearOrders() {
  state.orders = {
    userId: state.userId,
    list: [],
    nextCursor: null,
    loaded: false,
    loading: false,
    error: "",
  };
  state.ordersReload = { userId: state.userId, running: false, again: false, token: null };
  renderOrders();
}

// (Re)reads the newest page of orders; with a token, one that holds the order the token stands
// for. One read at a time: those asked for meanwhile (a burst of deltas) make one more, with
// the latest token asked for.
async function loadOrders(consistencyToken = null) {
  const reload = state.ordersReload;
  if (reload.userId === null) return;
  reload.token = later(reload.token, consistencyToken);
  if (reload.running) {
    reload.again = true;
    return;
  }
  reload.running = true;
  do {
    reload.again = false;
    const token = reload.token;
    reload.token = null;
    const page = await fetchOrders(reload.userId, new URLSearchParams(), token);
    if (state.ordersReload !== reload) return; // another user, or signed out, since
    if (page === null) {
      state.orders.error = "Could not load your orders. They will show when you next place one.";
    } else {
      state.orders = {
        userId: reload.userId,
        list: page.orders,
        nextCursor: page.next_cursor ?? null,
        loaded: true,
        loading: false,
        error: "",
      };
    }
    renderOrders();
  } while (reload.again);
  reload.running = false;
}

// The later of two consistency tokens of one user (so of one partition); either may be null.
function later(a, b) {
  if (a === null || b === null) return a ?? b;
  return (position(b)?.offset ?? -1) > (position(a)?.offset ?? -1) ? b : a;
}

async function moreOrders() {
  const orders = state.orders;
  if (orders.loading || orders.nextCursor === null) return;
  orders.loading = true;
  orders.error = "";
  renderOrders();
  const page = await fetchOrders(orders.userId, new URLSearchParams({ cursor: orders.nextCursor }));
  if (state.orders !== orders) return; // another user, or a refresh, since
  orders.loading = false;
  if (page === null) {
    orders.error = "Could not load more orders. Please try again.";
  } else {
    const known = new Set(orders.list.map((order) => order.order_id));
    orders.list.push(...page.orders.filter((order) => !known.has(order.order_id)));
    orders.nextCursor = page.next_cursor ?? null;
  }
  renderOrders();
}

async function fetchOrders(userId, query, consistencyToken = null) {
  const text = query.toString();
  const suffix = text === "" ? "" : `?${text}`;
  try {
    return await readView(`users/${encodeURIComponent(userId)}/orders${suffix}`, consistencyToken);
  } catch {
    return null;
  }
}

const PLACED_AT = new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "short" });

function renderOrders() {
  const orders = state.orders;
  const list = $("orders-list");
  list.replaceChildren(...orders.list.map(orderItem));
  $("orders-empty").hidden = !orders.loaded || orders.list.length > 0;
  const button = $("more-orders");
  button.hidden = orders.nextCursor === null;
  button.setAttribute("aria-disabled", String(orders.loading));
  button.textContent = orders.loading ? "Loading…" : "Show more orders";
  $("orders-error").textContent = orders.error;
}

function orderItem(order) {
  const li = document.createElement("li");
  li.className = "order";
  li.dataset.orderId = order.order_id;
  const head = document.createElement("p");
  head.className = "order-head";
  const time = document.createElement("time");
  time.dateTime = order.placed_at;
  const placed = new Date(order.placed_at);
  time.textContent = Number.isNaN(placed.getTime()) ? order.placed_at : PLACED_AT.format(placed);
  const count = order.items.reduce((sum, item) => sum + item.quantity, 0);
  const spent = order.items.reduce((sum, item) => sum + pence(item.unit_price) * item.quantity, 0);
  const total = document.createElement("span");
  total.className = "order-total";
  total.textContent = `${count} item${count === 1 ? "" : "s"}, ${pounds(fromPence(spent))}`;
  head.append(time, total);
  const items = document.createElement("ul");
  items.className = "order-items";
  for (const item of order.items) {
    const entry = document.createElement("li");
    entry.textContent = `${item.quantity} × ${item.name} (${item.sku}) at ${pounds(item.unit_price)}`;
    items.append(entry);
  }
  li.append(head, items);
  return li;
}

function fromPence(amount) {
  return `${Math.trunc(amount / 100)}.${String(amount % 100).padStart(2, "0")}`;
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
    // Signed in, the order is the token's user's: the body names no one.
    order: {
      ...(state.auth === null ? { user_id: state.userId } : {}),
      items: chosen.map(lineFrom),
      currency: "GBP",
      channel: "web",
    },
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
    if (state.auth !== null) {
      showErrors(["Sign in first."]);
      $("sign-in").focus();
    } else {
      showErrors(["Choose a user id first."]);
      $("user-id").focus();
    }
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
    response = await authorizedFetch(`${state.commandServiceUrl}/orders`, {
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
    if (payload.user_id === state.userId) loadOrders(payload.consistency_token);
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
    state.auth = config.auth ?? null;
    if (state.auth !== null) state.auth.issuer = state.auth.issuer.replace(/\/+$/, "");
    return true;
  } catch {
    showErrors(["The page could not load its settings from the server; please reload it."]);
    return false;
  }
}

// Signed in already in this tab, back from the issuer, or neither.
async function startSignedIn() {
  $("account").hidden = false;
  $("sign-in").addEventListener("click", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  const params = new URLSearchParams(location.search);
  if (params.has("code") || params.has("error")) {
    signOut();
    await finishSignIn(params);
    return;
  }
  const session = sessionGet(SESSION_KEY);
  if (session !== null && session.expiresAt > Date.now() + 10_000) {
    signedIn(session);
  } else {
    signOut();
  }
}

// Authentication off (AUTH_DISABLED): the user says who they are.
function startAnonymous() {
  $("user-form").hidden = false;
  renderKnownUsers();
  const userId = stored(USER_KEY, null);
  if (typeof userId === "string" && USER_ID_PATTERN.test(userId)) {
    showUser(userId);
  } else {
    $("user-id").focus();
  }
}

async function start() {
  $("user-form").addEventListener("submit", onUserSubmit);
  $("order-form").addEventListener("submit", onOrderSubmit);
  $("add-item").addEventListener("click", () => {
    addItemRow().querySelector('[name="sku"]').focus();
  });
  for (const group of GROUPS) {
    column(group)
      .querySelector('[data-role="show-more"]')
      .addEventListener("click", () => showMore(group));
  }
  $("more-orders").addEventListener("click", moreOrders);
  state.view = emptyView();
  resetOrderForm();
  if (!(await loadConfig())) return;
  if (state.auth !== null) await startSignedIn();
  else startAnonymous();
}

start();
