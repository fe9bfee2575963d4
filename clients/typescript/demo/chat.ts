// The trio_rooms demo chat page, on the TypeScript client: the client reconnects and
// resumes the session; this file only draws. Built into trio_rooms/demo/static/chat.bundle.js
// by `npm run bundle` (the committed bundle is checked to be up to date).
// The wire protocol is described in trio_rooms/demo/app.py.

import {
  type CloseEvent,
  type OpenEvent,
  type RoomClient,
  ClientQueueFullError,
  openRoomClient,
} from "../src/index.js";
import {
  type Chat,
  type ClientMessage,
  type History,
  type ServerMessage,
  schema,
} from "./schema.js";

const ROOM_PATTERN = /^[A-Za-z0-9_.~-]{1,128}$/;
const MAX_NAME = 32;
const MAX_TEXT = 2000;
// The close code of a connection whose session was resumed on another one (another tab).
const SESSION_TAKEN_OVER = 4001;
const RECONNECT = { initialDelay: 250, maxDelay: 10_000 };

type ChatClient = RoomClient<ServerMessage, ClientMessage>;
type Status = "connecting" | "connected" | "reconnecting" | "offline";

function element<T extends HTMLElement>(id: string, kind: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof kind)) throw new Error(`the page has no #${id} ${kind.name}`);
  return found;
}

const ui = {
  roomName: element("room-name", HTMLElement),
  status: element("status", HTMLElement),
  statusText: element("status-text", HTMLElement),
  nameForm: element("name-form", HTMLFormElement),
  nameInput: element("name-input", HTMLInputElement),
  roomForm: element("room-form", HTMLFormElement),
  roomInput: element("room-input", HTMLInputElement),
  memberCount: element("member-count", HTMLElement),
  memberList: element("member-list", HTMLUListElement),
  messages: element("messages", HTMLOListElement),
  sendForm: element("send-form", HTMLFormElement),
  messageInput: element("message-input", HTMLTextAreaElement),
  sendButton: element("send-button", HTMLButtonElement),
};

const state = {
  room: "",
  name: initialName(),
  client: null as ChatClient | null,
  generation: 0, // bumped on each room switch: an older client's events are ignored
  selfId: null as string | null,
  resumed: false, // the current connection resumed the session of an earlier one
  myIds: new Set<string>(), // every session id this page has had: own messages survive reconnects
  members: new Map<string, string>(), // userId -> name
};

// ------------------------------------------------------------------ helpers

function roomFromHash(): string {
  let room = "";
  try {
    room = decodeURIComponent(location.hash.slice(1));
  } catch {
    room = "";
  }
  return ROOM_PATTERN.test(room) && room !== "." && room !== ".." ? room : "lobby";
}

function validName(name: string): string | null {
  const trimmed = name.trim();
  return trimmed.length >= 1 && trimmed.length <= MAX_NAME ? trimmed : null;
}

function initialName(): string {
  const fromUrl = new URLSearchParams(location.search).get("name");
  const stored = localStorage.getItem("trio_rooms.name");
  return (
    validName(fromUrl ?? "") ??
    validName(stored ?? "") ??
    `guest-${String(Math.floor(Math.random() * 10000)).padStart(4, "0")}`
  );
}

// The session's resume token, per room and per tab: a reload gets the same session back,
// name included (across reconnects the client keeps it itself). Tokens are single use:
// every connection gets a new one in its "$session" frame.
function tokenKey(room: string): string {
  return `trio_rooms.token.${room}`;
}

function loadToken(room: string): string {
  try {
    return sessionStorage.getItem(tokenKey(room)) ?? "";
  } catch {
    return ""; // storage disabled: every page load is a new session
  }
}

function saveToken(room: string, token: string): void {
  try {
    if (token) sessionStorage.setItem(tokenKey(room), token);
    else sessionStorage.removeItem(tokenKey(room));
  } catch {
    // storage disabled or full: the session is simply not resumed on a reload
  }
}

function hue(text: string): number {
  let h = 0;
  for (const ch of text) h = (h * 31 + (ch.codePointAt(0) ?? 0)) % 360;
  return h;
}

function avatar(userId: string, name: string): HTMLElement {
  const el = document.createElement("span");
  el.className = "avatar";
  el.style.background = `hsl(${hue(userId)} 55% 52%)`;
  el.textContent = (Array.from(name.trim())[0] ?? "?").toUpperCase();
  el.setAttribute("aria-hidden", "true");
  return el;
}

function timeOf(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function nearBottom(): boolean {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function append(el: HTMLElement): void {
  const stick = nearBottom();
  ui.messages.querySelector(".empty")?.remove();
  ui.messages.append(el);
  if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function showEmpty(): void {
  const li = document.createElement("li");
  li.className = "empty";
  li.textContent = "No messages yet. Say hi!";
  ui.messages.replaceChildren(li);
}

function system(text: string, kind: "info" | "error" = "info"): void {
  const li = document.createElement("li");
  li.className = kind === "error" ? "system error" : "system";
  li.textContent = text;
  append(li);
}

function chat(msg: Chat | History["messages"][number]): void {
  const own = state.myIds.has(msg.userId);
  const li = document.createElement("li");
  li.className = own ? "msg own" : "msg";
  const body = document.createElement("div");
  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = msg.name;
  author.style.color = `hsl(${hue(msg.userId)} 55% 38%)`;
  const time = document.createElement("time");
  time.className = "time";
  time.dateTime = new Date(msg.sentAt).toISOString();
  time.textContent = timeOf(msg.sentAt);
  meta.append(author, time);
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.textContent = msg.text;
  body.append(meta, bubble);
  li.append(avatar(msg.userId, msg.name), body);
  append(li);
}

function renderMembers(): void {
  const items = [...state.members.entries()].sort(([a, an], [b, bn]) => {
    if (a === state.selfId) return -1;
    if (b === state.selfId) return 1;
    return an.localeCompare(bn);
  });
  ui.memberList.replaceChildren(
    ...items.map(([userId, name]) => {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.className = "member-name";
      label.textContent = name;
      li.append(avatar(userId, name), label);
      if (userId === state.selfId) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = "(you)";
        li.append(you);
      }
      return li;
    }),
  );
  ui.memberCount.textContent = String(state.members.size);
}

function setStatus(kind: Status, text: string): void {
  ui.status.dataset["state"] = kind;
  ui.statusText.textContent = text;
  const ready = kind === "connected";
  ui.messageInput.disabled = !ready;
  ui.sendButton.disabled = !ready;
}

function forgetMembers(): void {
  state.selfId = null;
  state.members.clear(); // stale until the server sends the list again
  renderMembers();
}

// --------------------------------------------------------------- connection

function socketUrl(room: string): string {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ name: state.name });
  // The page's own server serves the rooms.
  return `${scheme}://${location.host}/rooms/${encodeURIComponent(room)}/websocket?${query}`;
}

/** Join `room` with a new client; `token` resumes a session of an earlier page load. */
async function join(room: string, token: string): Promise<void> {
  const generation = state.generation;
  const current = () => generation === state.generation;
  setStatus("connecting", "connecting…");
  let client: ChatClient;
  try {
    client = await openRoomClient(socketUrl(room), schema, {
      resumeToken: token,
      reconnect: RECONNECT,
      on: {
        open: (event: OpenEvent) => {
          if (!current()) return;
          saveToken(room, event.session?.token ?? "");
          state.resumed = event.session?.resumed ?? false;
        },
        disconnect: () => {
          if (!current()) return;
          if (state.selfId !== null) system("Connection lost. Reconnecting…");
          forgetMembers();
          setStatus("reconnecting", "reconnecting…");
        },
        close: (event: CloseEvent) => {
          if (current()) ended(room, event);
        },
        error: (error) => {
          if (current()) system(`Server: ${error.text}`, "error");
        },
      },
    });
  } catch (error) {
    // The first connection is not retried: the server is not there (yet).
    if (current()) setStatus("offline", `offline: ${String(error)}; reload to try again`);
    return;
  }
  if (!current()) {
    await client.close();
    return;
  }
  state.client = client;
  try {
    for await (const message of client) receive(message);
  } catch {
    // The client ended: its close event has said why.
  }
}

function ended(room: string, event: CloseEvent): void {
  state.client = null;
  forgetMembers();
  if (event.code === SESSION_TAKEN_OVER) {
    saveToken(room, ""); // another tab has this session now: start a new one
    system("This session was resumed in another tab. Starting a new one…");
    void join(room, "");
  } else if (event.error !== null) {
    setStatus("offline", `disconnected (${event.code}); reload to try again`);
  }
}

function switchRoom(room: string): void {
  if (room === state.room && state.client !== null) return;
  state.generation += 1; // silence the old client's events
  void state.client?.close();
  state.client = null;
  state.room = room;
  ui.roomName.textContent = room;
  ui.roomInput.value = room;
  document.title = `#${room} · trio_rooms chat`;
  forgetMembers();
  showEmpty();
  void join(room, loadToken(room));
}

/** Send `message`, or say why not; whether it was taken (sent, or queued while reconnecting). */
function send(message: ClientMessage): boolean {
  const client = state.client;
  if (client === null) return false;
  try {
    client.send(message);
    return true;
  } catch (error) {
    const why =
      error instanceof ClientQueueFullError
        ? "too many messages wait for the connection"
        : String(error);
    system(`Not sent: ${why}`, "error");
    return false;
  }
}

// ----------------------------------------------------------------- messages

function receive(msg: ServerMessage): void {
  switch (msg.type) {
    case "members":
      state.selfId = msg.selfId;
      state.myIds.add(msg.selfId);
      state.members = new Map(msg.members.map((m) => [m.userId, m.name]));
      state.name = state.members.get(msg.selfId) ?? state.name;
      ui.nameInput.value = state.name;
      setStatus("connected", "connected");
      renderMembers();
      break;
    case "history":
      showEmpty();
      msg.messages.forEach(chat);
      system(
        state.resumed
          ? `Reconnected to #${state.room} as ${state.name}`
          : `You joined #${state.room} as ${state.name}`,
      );
      state.resumed = false;
      break;
    case "chat":
      chat(msg);
      break;
    case "userJoined":
      state.members.set(msg.userId, msg.name);
      renderMembers();
      system(`${msg.name} joined`);
      break;
    case "userLeft":
      if (state.members.delete(msg.userId)) renderMembers();
      system(`${msg.name} left`);
      break;
    case "renamed":
      state.members.set(msg.userId, msg.name);
      renderMembers();
      if (msg.userId === state.selfId) {
        state.name = msg.name;
        localStorage.setItem("trio_rooms.name", msg.name);
        ui.nameInput.value = msg.name;
        system(`You are now ${msg.name}`);
      } else {
        system(`${msg.oldName} is now ${msg.name}`);
      }
      break;
    case "rejected":
      system(msg.reason, "error");
      break;
    default: {
      const unknown: never = msg; // the schema has no other message
      void unknown;
    }
  }
}

// ------------------------------------------------------------------- events

ui.sendForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.messageInput.value.trim();
  if (!text) return;
  if (text.length > MAX_TEXT) {
    system(`A message must be at most ${MAX_TEXT} characters.`, "error");
    return;
  }
  if (send({ type: "sendChat", text })) {
    ui.messageInput.value = "";
    autosize();
  }
});

ui.messageInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.sendForm.requestSubmit();
  }
});

function autosize(): void {
  ui.messageInput.style.height = "auto";
  ui.messageInput.style.height = `${ui.messageInput.scrollHeight + 2}px`;
}
ui.messageInput.addEventListener("input", autosize);

ui.nameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = validName(ui.nameInput.value);
  if (name === null) {
    system(`A name must be 1 to ${MAX_NAME} characters.`, "error");
    return;
  }
  // While reconnecting the client queues it: it goes out once the session is back, and
  // the server's "renamed" answer updates the page.
  send({ type: "setName", name });
});

ui.roomForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = ui.roomInput.value.trim();
  if (!ROOM_PATTERN.test(room)) return;
  location.hash = encodeURIComponent(room);
});

window.addEventListener("hashchange", () => switchRoom(roomFromHash()));

// -------------------------------------------------------------------- start

ui.nameInput.value = state.name;
switchRoom(roomFromHash());
