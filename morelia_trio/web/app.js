// The MoreliaTalk web client. It speaks the document dialect (float times, so paging by
// time always moves on), uses `subscribe` for live updates and falls back to polling
// `get_update` on servers without it, and reconnects by itself. Every piece of data a
// server sent goes into the page through textContent, never as HTML.

"use strict";

const POLL_MS = 2000;
const SERVER = socketUrl();
// A session belongs to the server that issued it: it is never sent to another.
const STORE_KEY = `morelia.session ${SERVER}`;
const PAGE_WANTED = 20; // messages the first screen of a flow tries to show
const RECHECK_LAST = 100; // messages of the open flow re-read for deletions when polling

// --- the connection -----------------------------------------------------------------

// The page's own server, or the one ?ws= names. A page served from a web server takes ?ws=
// only for its own host: else a link could send what people type, and their saved token,
// to a server of someone else's choosing.
function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const own = `${scheme}//${location.host}/ws`;
  const given = new URLSearchParams(location.search).get("ws");
  if (!given) return own;
  try {
    const url = new URL(given);
    if (url.protocol !== "ws:" && url.protocol !== "wss:") return own;
    if (location.protocol === "file:" || url.hostname === location.hostname) return url.href;
  } catch {
    // not a URL: the page's own server
  }
  return own;
}

class ConnectionLost extends Error {}

class ServerError extends Error {
  constructor(type, errors) {
    super(errors.detail || errors.status || "error");
    this.type = type;
    this.code = errors.code;
    this.detail = errors.detail || "";
  }
}

// One WebSocket at a time; replies come in request order, `update` and `resync` frames
// come whenever the server has them.
class Connection {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.pending = [];
    this.ws = null;
    this.backoff = 500;
    this.open();
  }

  open() {
    this.handlers.status("Connecting…");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.handlers.status("Cannot connect: the server address is not valid.");
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.handlers.opened();
    };
    ws.onmessage = (event) => this.received(event.data);
    ws.onclose = () => this.closed(ws);
  }

  received(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "update") return this.handlers.update(frame);
    if (frame.type === "resync") return this.handlers.resync(frame);
    const waiting = this.pending.shift();
    if (waiting) waiting.resolve(frame);
  }

  closed(ws) {
    if (ws !== this.ws) return;
    this.ws = null;
    for (const waiting of this.pending.splice(0)) waiting.reject(new ConnectionLost());
    const delay = this.backoff + Math.random() * 250;
    this.backoff = Math.min(this.backoff * 2, 15000);
    this.handlers.status(`Disconnected; reconnecting in ${Math.ceil(delay / 1000)} s…`);
    this.handlers.lost();
    setTimeout(() => this.open(), delay);
  }

  // The reply frame, or a ServerError for any code but 200, 201 and 206.
  request(type, data) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new ConnectionLost());
    return new Promise((resolve, reject) => {
      this.pending.push({
        resolve: (frame) => {
          const errors = frame.errors || {};
          if ([200, 201, 206].includes(errors.code)) resolve(frame);
          else reject(new ServerError(type, errors));
        },
        reject,
      });
      ws.send(JSON.stringify({ type, data, jsonapi: { version: "1.0" } }));
    });
  }
}

// --- what the client knows ----------------------------------------------------------

const state = {
  session: loadSession(), // {id, token}
  me: null, // my profile
  flows: new Map(), // id -> flow
  open: null, // id of the flow shown
  history: new Map(), // flow id -> {messages: Map, oldest, complete}
  unread: new Map(), // flow id -> new messages not yet seen
  since: 0, // get_update from here catches up
  live: false, // the server pushes updates (subscribe worked)
  pollTimer: null,
  loadingOlder: false,
};

function loadSession() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY));
    if (saved && saved.id && saved.token) return saved;
  } catch {
    // a damaged entry counts as no session
  }
  return null;
}

function saveSession(session) {
  state.session = session;
  if (session) localStorage.setItem(STORE_KEY, JSON.stringify(session));
  else localStorage.removeItem(STORE_KEY);
}

function me() {
  return { id: state.session.id, auth_id: state.session.token };
}

// --- the page -----------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

// What a person should read for each error the server can give.
function explain(error, doing) {
  if (error instanceof ConnectionLost) {
    return `Could not ${doing}: the connection to the server is down; it reconnects by itself.`;
  }
  if (!(error instanceof ServerError)) return `Could not ${doing}: ${error.message}`;
  const detail = error.detail ? ` (${error.detail})` : "";
  switch (error.code) {
    case 401:
      return error.type === "authentication"
        ? "Wrong password for this login."
        : "Your session has ended; please log in again.";
    case 404:
      return error.type === "authentication"
        ? "No account has this login."
        : `Could not ${doing}: not found${detail}.`;
    case 409:
      return "This login is taken; choose another one.";
    case 403:
      return `Could not ${doing}: not allowed${detail}.`;
    case 413:
      return `Could not ${doing}: too long${detail}.`;
    case 415:
      return `Could not ${doing}: the server refused a field${detail}.`;
    case 429:
      return `Could not ${doing}: too many requests; wait a moment and try again${detail}.`;
    case 503:
      return `Could not ${doing}: the server cannot do this right now; try again soon${detail}.`;
    case 500:
      return `Could not ${doing}: the server failed (a bug on its side).`;
    default:
      return `Could not ${doing}: error ${error.code}${detail}.`;
  }
}

// Runs a user's action, showing what went wrong; a 401 outside logging in logs out.
async function attempt(doing, action) {
  try {
    const result = await action();
    showError("");
    return result;
  } catch (error) {
    showError(explain(error, doing));
    if (error instanceof ServerError && error.code === 401 && error.type !== "authentication") {
      logOut();
    }
    return undefined;
  }
}

function showScreen() {
  const loggedIn = Boolean(state.session);
  $("auth").hidden = loggedIn;
  $("app").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  $("whoami").hidden = !loggedIn;
  if (loggedIn) {
    const name = state.me ? state.me.username || state.me.login : "";
    $("whoami").textContent = `${name} · your user id: ${state.session.id}`;
  }
}

function formatTime(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

// --- flows --------------------------------------------------------------------------

function flowLabel(flow) {
  const kind = { group: "group", channel: "channel", chat: "chat" }[flow.type] || flow.type;
  return `${flow.title || "(untitled)"} · ${kind}`;
}

function renderFlows() {
  const list = $("flows");
  const focused = document.activeElement && document.activeElement.dataset.flow;
  list.replaceChildren();
  const flows = [...state.flows.values()].sort((a, b) => a.time - b.time);
  for (const flow of flows) {
    const unread = state.unread.get(flow.id) || 0;
    const label = flowLabel(flow) + (unread ? ` (${unread} new)` : "");
    const button = el("button", { type: "button", text: label, onclick: () => openFlow(flow.id) });
    button.dataset.flow = String(flow.id);
    if (flow.id === state.open) button.setAttribute("aria-current", "true");
    list.append(el("li", {}, button));
    if (focused === String(flow.id)) button.focus();
  }
}

function rememberFlows(flows) {
  for (const flow of flows || []) state.flows.set(flow.id, flow);
  renderFlows();
}

async function loadFlows() {
  let since = 0;
  for (;;) {
    const reply = await conn.request("all_flow", { user: me(), time: since });
    const flows = reply.data.flow || [];
    rememberFlows(flows);
    if (reply.errors.code !== 206 || !flows.length) return;
    since = nextSince(since, flows[flows.length - 1].time);
  }
}

// The time to ask again from after a partial page ending at `last`: it must move on.
function nextSince(since, last) {
  return last > since ? last : since + 1e-6;
}

// --- messages -----------------------------------------------------------------------

function historyOf(flowId) {
  let history = state.history.get(flowId);
  if (!history) {
    history = { messages: new Map(), oldest: Infinity, complete: false };
    state.history.set(flowId, history);
  }
  return history;
}

function authorName(message) {
  return (message.from_user && message.from_user.username) || "someone";
}

function messageItem(message) {
  const mine = message.from_user && message.from_user.id === Number(state.session.id);
  const edited = message.edited_message && message.edited_message.status;
  const meta = el(
    "p",
    { class: "meta" },
    el("span", { class: "author", text: authorName(message) }),
    el("time", {
      datetime: new Date(message.time * 1000).toISOString(),
      text: formatTime(message.time),
    }),
  );
  if (edited) {
    meta.append(el("span", { class: "edited", text: `edited ${formatTime(message.edited_message.time)}` }));
  }
  const item = el("li", { class: mine ? "message mine" : "message" }, meta);
  item.dataset.id = String(message.id);
  item.dataset.time = String(message.time);
  const text = el("p", { class: "text", text: message.text || "" });
  item.append(text);
  if (mine) {
    item.append(
      el(
        "div",
        { class: "actions" },
        el("button", { type: "button", text: "Edit", "aria-label": "Edit this message", onclick: () => startEdit(item, message) }),
        el("button", { type: "button", text: "Delete", "aria-label": "Delete this message", onclick: () => removeOwn(message) }),
      ),
    );
  }
  return item;
}

function nearBottom(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
}

// Puts a message into its flow's history and, if shown, into the page in time order.
function upsertMessage(message) {
  if (message.deleted) return dropMessage(message.id, message.from_flow && message.from_flow.id);
  const flowId = message.from_flow.id;
  const history = state.history.get(flowId);
  if (!history) return;
  const known = history.messages.has(message.id);
  if (!known && message.time < history.oldest && !history.complete) return; // not loaded yet
  history.messages.set(message.id, message);
  if (!known && message.time < history.oldest) history.oldest = message.time;
  if (flowId !== state.open) return;
  const list = $("messages");
  const scroller = $("scroller");
  const stick = nearBottom(scroller);
  const item = messageItem(message);
  const old = list.querySelector(`li[data-id="${message.id}"]`);
  if (old) {
    if (old.querySelector(".edit-form")) return; // do not throw away an edit being typed
    old.replaceWith(item);
    return;
  }
  const after = [...list.children].find((li) => Number(li.dataset.time) > message.time);
  list.insertBefore(item, after || null);
  if (stick) scroller.scrollTop = scroller.scrollHeight;
}

function dropMessage(id, flowId) {
  for (const [fid, history] of state.history) {
    if (flowId !== undefined && flowId !== null && fid !== flowId) continue;
    history.messages.delete(id);
  }
  const item = $("messages").querySelector(`li[data-id="${id}"]`);
  if (item) item.remove();
}

async function allMessages(flowId, since) {
  const reply = await conn.request("all_messages", { user: me(), flow: { id: flowId }, time: since });
  return { messages: reply.data.message || [], partial: reply.errors.code === 206, now: reply.data.time };
}

// Loads messages older than those shown. The protocol pages forwards only (oldest first
// from a time), so it looks back from the oldest one shown: a window that widens while
// it finds nothing, and narrows (halving) while it holds more than one reply carries.
async function loadOlder(flowId) {
  const history = historyOf(flowId);
  if (history.complete) return 0;
  const flow = state.flows.get(flowId);
  const floor = flow ? flow.time : 0;
  const before = history.oldest;
  let near = Number.isFinite(before) ? before : state.now + 1;
  let far = null;
  let width = 8;
  for (let probe = 0; probe < 60; probe++) {
    const from = far === null ? Math.max(floor, near - width) : (far + near) / 2;
    const page = await allMessages(flowId, from);
    const last = page.messages[page.messages.length - 1];
    const covers = !page.partial || (last && last.time >= before);
    const older = page.messages.filter((m) => m.time < before);
    if (covers && (older.length || from <= floor)) {
      return accept(flowId, older, from <= floor);
    }
    if (covers) {
      near = from;
      width *= 4;
    } else {
      far = from;
      if (near - far < 1e-4) break;
    }
  }
  // Crowded beyond what halving can split: read forwards from the far end to the oldest.
  const start = far === null ? floor : far;
  let since = start;
  const found = [];
  for (;;) {
    const page = await allMessages(flowId, since);
    found.push(...page.messages.filter((m) => m.time < before));
    const last = page.messages[page.messages.length - 1];
    if (!page.partial || !last || last.time >= before) break;
    since = nextSince(since, last.time);
  }
  return accept(flowId, found, start <= floor);
}

function accept(flowId, messages, complete) {
  const history = historyOf(flowId);
  const list = $("messages");
  const scroller = $("scroller");
  const shown = flowId === state.open;
  const heightBefore = scroller.scrollHeight;
  const topBefore = scroller.scrollTop;
  const firstShown = list.firstElementChild;
  let added = 0;
  for (const message of messages) {
    if (history.messages.has(message.id)) continue;
    history.messages.set(message.id, message);
    history.oldest = Math.min(history.oldest, message.time);
    if (shown) list.insertBefore(messageItem(message), firstShown);
    added++;
  }
  if (complete) history.complete = true;
  if (shown) {
    // Keep the messages being read where they were.
    scroller.scrollTop = topBefore + (scroller.scrollHeight - heightBefore);
    showHistoryEdge(history);
  }
  return added;
}

function showHistoryEdge(history) {
  $("older").hidden = history.complete;
  $("history-start").hidden = !history.complete;
}

async function older() {
  if (state.loadingOlder || state.open === null) return;
  const flowId = state.open;
  state.loadingOlder = true;
  try {
    await attempt("load older messages", async () => {
      await loadOlder(flowId);
      // Fill the screen, so that scrolling up is possible at all.
      const scroller = $("scroller");
      let rounds = 0;
      while (
        flowId === state.open &&
        !historyOf(flowId).complete &&
        (scroller.scrollHeight <= scroller.clientHeight || historyOf(flowId).messages.size < PAGE_WANTED) &&
        rounds++ < 10
      ) {
        await loadOlder(flowId);
      }
    });
  } finally {
    state.loadingOlder = false;
  }
}

async function openFlow(flowId) {
  state.open = flowId;
  state.unread.delete(flowId);
  const flow = state.flows.get(flowId);
  $("flow-title-heading").textContent = flow ? flowLabel(flow) : "Flow";
  $("app").classList.add("reading");
  $("compose").hidden = false;
  renderFlows();
  const history = historyOf(flowId);
  const list = $("messages");
  list.replaceChildren();
  const sorted = [...history.messages.values()].sort((a, b) => a.time - b.time);
  for (const message of sorted) list.append(messageItem(message));
  showHistoryEdge(history);
  $("scroller").scrollTop = $("scroller").scrollHeight;
  if (!history.messages.size) await older();
  $("scroller").scrollTop = $("scroller").scrollHeight;
  $("text").focus();
}

function startEdit(item, message) {
  const text = item.querySelector(".text");
  const input = el("input", { "aria-label": "New text of the message" });
  input.value = message.text || "";
  const form = el(
    "form",
    { class: "edit-form" },
    input,
    el("div", { class: "actions" }, el("button", { type: "submit", text: "Save" }), el("button", { type: "button", text: "Cancel", onclick: () => stopEditing(form, text) })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const newText = input.value;
    const done = await attempt("edit the message", () =>
      conn.request("edited_message", { user: me(), message: { id: message.id, text: newText } }),
    );
    if (done) {
      stopEditing(form, text);
      upsertMessage({ ...message, text: newText, edited_message: { time: done.data.time, status: true } });
    }
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") stopEditing(form, text);
  });
  text.replaceWith(form);
  input.focus();
}

// Back to the message's text, the keyboard back in the message box.
function stopEditing(form, text) {
  form.replaceWith(text);
  $("text").focus();
}

async function removeOwn(message) {
  if (!window.confirm("Delete this message?")) return;
  const done = await attempt("delete the message", () =>
    conn.request("delete_message", { user: me(), message: { id: message.id } }),
  );
  if (done) {
    dropMessage(message.id, message.from_flow.id);
    $("text").focus();
  }
}

async function send(event) {
  event.preventDefault();
  const box = $("text");
  const text = box.value;
  if (!text.trim() || state.open === null) return;
  const flowId = state.open;
  const done = await attempt("send the message", () =>
    conn.request("send_message", { user: me(), flow: { id: flowId }, message: { text } }),
  );
  if (!done) return;
  box.value = "";
  const sent = done.data.message;
  upsertMessage({
    id: sent.id,
    time: sent.time,
    text,
    from_user: { id: Number(state.session.id), username: state.me ? state.me.username : "" },
    from_flow: { id: flowId },
    edited_message: null,
  });
  $("scroller").scrollTop = $("scroller").scrollHeight;
}

// --- live updates -------------------------------------------------------------------

// One get_update reply's worth of changes (an `update` frame has the same shape).
function applyChanges(data) {
  const users = Array.isArray(data.user) ? data.user : [];
  for (const user of users) {
    if (state.me && user.id === state.me.id) state.me = user;
  }
  if (Array.isArray(data.flow) && data.flow.length) rememberFlows(data.flow);
  let latest = 0;
  let unreadChanged = false;
  for (const message of Array.isArray(data.message) ? data.message : []) {
    const flowId = message.from_flow && message.from_flow.id;
    const fresh = !message.deleted && !(state.history.get(flowId) || { messages: new Map() }).messages.has(message.id);
    upsertMessage(message);
    if (fresh && flowId !== state.open && !message.edited_message) {
      const mine = message.from_user && message.from_user.id === Number(state.session.id);
      if (!mine) state.unread.set(flowId, (state.unread.get(flowId) || 0) + 1);
    }
    const changed = message.edited_message ? message.edited_message.time : message.time;
    if (changed) latest = Math.max(latest, changed);
    if (fresh) unreadChanged = true;
  }
  for (const flow of Array.isArray(data.flow) ? data.flow : []) latest = Math.max(latest, flow.time);
  if (unreadChanged) renderFlows();
  return latest;
}

async function catchUp() {
  for (;;) {
    const reply = await conn.request("get_update", { user: me(), time: state.since });
    const latest = applyChanges(reply.data);
    if (reply.errors.code !== 206) {
      state.since = Math.max(state.since, reply.data.time);
      state.now = reply.data.time;
      return;
    }
    state.since = nextSince(state.since, latest);
  }
}

// Without pushed updates, deletions show only by their absence: re-read the newest
// messages of the open flow and drop those that are gone.
async function recheckOpenFlow() {
  const flowId = state.open;
  if (flowId === null) return;
  const history = state.history.get(flowId);
  if (!history || !history.messages.size) return;
  const times = [...history.messages.values()].map((m) => m.time).sort((a, b) => a - b);
  const from = times[Math.max(0, times.length - RECHECK_LAST)];
  const present = new Set();
  let since = from;
  for (;;) {
    const page = await allMessages(flowId, since);
    for (const message of page.messages) present.add(message.id);
    const last = page.messages[page.messages.length - 1];
    if (!page.partial || !last) break;
    since = nextSince(since, last.time);
  }
  if (state.open !== flowId) return;
  for (const message of [...history.messages.values()]) {
    if (message.time >= from && !present.has(message.id)) dropMessage(message.id, flowId);
  }
}

function schedulePoll() {
  clearTimeout(state.pollTimer);
  if (state.live || !state.session) return;
  state.pollTimer = setTimeout(async () => {
    try {
      await catchUp();
      await recheckOpenFlow();
    } catch (error) {
      if (error instanceof ServerError && error.code === 401) {
        showError(explain(error, "update"));
        logOut();
        return;
      }
      // ConnectionLost: the reconnect resumes; anything else is tried again.
    }
    schedulePoll();
  }, POLL_MS);
}

async function goLive() {
  try {
    await conn.request("subscribe", { user: me() });
    state.live = true;
    setStatus("Connected · live");
  } catch (error) {
    if (!(error instanceof ServerError) || error.code !== 400) throw error;
    // An older server without subscribe: ask for changes every two seconds.
    state.live = false;
    setStatus("Connected · checking for news every 2 s");
  }
  await catchUp();
  schedulePoll();
}

// --- sessions -----------------------------------------------------------------------

async function startSession() {
  const reply = await conn.request("user_info", { user: me() });
  const profile = Array.isArray(reply.data.user) ? reply.data.user[0] : reply.data.user;
  state.me = profile;
  // A fresh page starts from now; one that reconnects catches up from where it was.
  if (!state.since) state.since = reply.data.time;
  state.now = reply.data.time;
  showScreen();
  await loadFlows();
  await goLive();
  if (state.open !== null) {
    // Back after a lost connection: whatever changed meanwhile came with catchUp.
    await recheckOpenFlow();
  } else if (state.flows.size && window.matchMedia("(min-width: 641px)").matches) {
    await openFlow([...state.flows.values()].sort((a, b) => a.time - b.time)[0].id);
  }
}

async function resume() {
  if (!state.session) {
    showScreen();
    setStatus("Connected");
    return;
  }
  try {
    await startSession();
  } catch (error) {
    if (error instanceof ConnectionLost) return; // the next connection tries again
    showError(explain(error, "resume the session"));
    if (error instanceof ServerError && error.code === 401) logOut();
  }
}

async function logIn(register) {
  const login = $("login").value;
  const password = $("password").value;
  if (!login || !password) {
    showError("Please enter both a login and a password.");
    return;
  }
  const user = { login, password };
  const username = $("username").value;
  if (register && username) user.username = username;
  const type = register ? "register_user" : "authentication";
  const reply = await attempt(register ? "register" : "log in", () => conn.request(type, { user }));
  if (!reply) return;
  $("password").value = "";
  saveSession({ id: reply.data.user.id, token: reply.data.user.auth_id });
  state.since = reply.data.time;
  state.now = reply.data.time;
  await attempt("load your flows", startSession);
}

function logOut() {
  saveSession(null);
  clearTimeout(state.pollTimer);
  state.me = null;
  state.flows.clear();
  state.history.clear();
  state.unread.clear();
  state.open = null;
  state.since = 0;
  state.live = false;
  $("messages").replaceChildren();
  $("flows").replaceChildren();
  $("app").classList.remove("reading");
  $("compose").hidden = true;
  $("flow-title-heading").textContent = "Pick a flow";
  showScreen();
  // Live updates of the old session must stop: a fresh connection has none.
  if (conn.ws) conn.ws.close();
}

async function createFlow(event) {
  event.preventDefault();
  const type = $("flow-type").value;
  let title = $("flow-title").value.trim();
  const flow = { type };
  if (type === "chat") {
    const peer = $("flow-peer").value.trim();
    if (!/^[0-9]+$/.test(peer)) {
      showError("For a chat, enter the other user's id (a number; each person sees theirs at the top).");
      return;
    }
    // user_info in the list dialect looks the other user up: a clear 404 before creating.
    const found = await attempt("find that user", () =>
      conn.request("user_info", { user: [{ uuid: String(state.session.id), auth_id: state.session.token }, { uuid: peer }] }),
    );
    if (!found) return;
    const other = found.data.user[1];
    if (!title) title = `${state.me.username || state.me.login} and ${other.username || other.login}`;
    flow.users = [Number(state.session.id), Number(peer)];
  }
  if (!title) {
    showError("Please give the flow a title.");
    return;
  }
  flow.title = title;
  const reply = await attempt("create the flow", () => conn.request("add_flow", { user: me(), flow }));
  if (!reply) return;
  rememberFlows([reply.data.flow]);
  $("flow-title").value = "";
  $("flow-peer").value = "";
  $("new-flow").open = false;
  await openFlow(reply.data.flow.id);
}

// --- wiring -------------------------------------------------------------------------

const conn = new Connection(SERVER, {
  status: setStatus,
  opened: () => {
    setStatus("Connected");
    resume();
  },
  lost: () => {
    state.live = false;
    clearTimeout(state.pollTimer);
  },
  update: (frame) => {
    const latest = applyChanges(frame.data || {});
    state.since = Math.max(state.since, latest);
  },
  resync: (frame) => {
    state.since = Math.min(state.since, (frame.data && frame.data.time) || 0);
    catchUp().catch(() => {});
  },
});

$("auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  logIn(false);
});
$("do-register").addEventListener("click", () => logIn(true));
$("logout").addEventListener("click", logOut);
$("compose").addEventListener("submit", send);
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("compose").requestSubmit();
  }
});
$("older").addEventListener("click", older);
$("scroller").addEventListener("scroll", () => {
  if ($("scroller").scrollTop < 30) older();
});
$("back").addEventListener("click", () => {
  $("app").classList.remove("reading");
  const current = document.querySelector(`#flows button[data-flow="${state.open}"]`);
  if (current) current.focus();
});
$("new-flow-form").addEventListener("submit", createFlow);
showScreen();
