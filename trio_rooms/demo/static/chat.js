// The trio_rooms demo chat client: plain JavaScript, no build step.
// The wire protocol is described in trio_rooms/demo/app.py.
"use strict";

(() => {
  const ROOM_PATTERN = /^[A-Za-z0-9_.~-]{1,128}$/;
  const MAX_NAME = 32;
  const MAX_TEXT = 2000;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  // The close code of a connection whose session was resumed on another one (another tab).
  const SESSION_TAKEN_OVER = 4001;

  const $ = (id) => document.getElementById(id);
  const ui = {
    roomName: $("room-name"),
    status: $("status"),
    statusText: $("status-text"),
    nameForm: $("name-form"),
    nameInput: $("name-input"),
    roomForm: $("room-form"),
    roomInput: $("room-input"),
    memberCount: $("member-count"),
    memberList: $("member-list"),
    messages: $("messages"),
    sendForm: $("send-form"),
    messageInput: $("message-input"),
    sendButton: $("send-button"),
  };

  const state = {
    room: roomFromHash(),
    name: initialName(),
    socket: null,
    generation: 0, // bumped whenever we drop a socket on purpose
    attempt: 0,
    retryTimer: null,
    connectedOnce: false,
    selfId: null,
    resumed: false, // this connection resumed the session of an earlier one
    pendingName: null, // a rename made offline, sent once connected
    myIds: new Set(), // every session id this page has had: own messages survive reconnects
    members: new Map(), // userId -> name
  };

  // ------------------------------------------------------------------ helpers

  function roomFromHash() {
    let room = "";
    try {
      room = decodeURIComponent(location.hash.slice(1));
    } catch (_) {
      room = "";
    }
    return ROOM_PATTERN.test(room) && room !== "." && room !== ".." ? room : "lobby";
  }

  function validName(name) {
    const trimmed = name.trim();
    return trimmed.length >= 1 && trimmed.length <= MAX_NAME ? trimmed : null;
  }

  function initialName() {
    const fromUrl = new URLSearchParams(location.search).get("name");
    const stored = localStorage.getItem("trio_rooms.name");
    return (
      validName(fromUrl || "") ||
      validName(stored || "") ||
      `guest-${String(Math.floor(Math.random() * 10000)).padStart(4, "0")}`
    );
  }

  // The session's resume token, per room and per tab: a reload or a reconnect (even to a
  // restarted server) gets the same session back, name included. Tokens are single use:
  // every connection gets a new one in its "$session" frame.
  function tokenKey(room) {
    return `trio_rooms.token.${room}`;
  }

  function loadToken(room) {
    try {
      return sessionStorage.getItem(tokenKey(room)) || "";
    } catch (_) {
      return ""; // storage disabled: every connection is a new session
    }
  }

  function saveToken(room, token) {
    try {
      if (token) sessionStorage.setItem(tokenKey(room), token);
      else sessionStorage.removeItem(tokenKey(room));
    } catch (_) {
      // storage disabled or full: the session is simply not resumed
    }
  }

  function hue(text) {
    let h = 0;
    for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function avatar(userId, name) {
    const el = document.createElement("span");
    el.className = "avatar";
    el.style.background = `hsl(${hue(userId)} 55% 52%)`;
    el.textContent = (Array.from(name.trim())[0] || "?").toUpperCase();
    el.setAttribute("aria-hidden", "true");
    return el;
  }

  function timeOf(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function append(el) {
    const stick = nearBottom();
    const empty = ui.messages.querySelector(".empty");
    if (empty) empty.remove();
    ui.messages.append(el);
    if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function showEmpty() {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No messages yet. Say hi!";
    ui.messages.replaceChildren(li);
  }

  function system(text, kind) {
    const li = document.createElement("li");
    li.className = kind === "error" ? "system error" : "system";
    li.textContent = text;
    append(li);
  }

  function chat(msg) {
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

  function renderMembers() {
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

  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.statusText.textContent = text;
    const ready = kind === "connected";
    ui.messageInput.disabled = !ready;
    ui.sendButton.disabled = !ready;
  }

  // --------------------------------------------------------------- connection

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const room = encodeURIComponent(state.room);
    const name = encodeURIComponent(state.name);
    const resume = encodeURIComponent(loadToken(state.room));
    const path = `/rooms/${room}/websocket?name=${name}&resume=${resume}`;
    return `${scheme}://${location.host}${path}`; // the page's own server serves the rooms
  }

  function connect() {
    clearTimeout(state.retryTimer);
    const generation = ++state.generation;
    state.resumed = false;
    if (state.connectedOnce || state.attempt > 0) setStatus("reconnecting", "reconnecting…");
    else setStatus("connecting", "connecting…");
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (_) {
      scheduleReconnect(generation);
      return;
    }
    state.socket = socket;
    socket.onmessage = (event) => {
      if (generation === state.generation) receive(event.data);
    };
    socket.onclose = (event) => {
      if (generation !== state.generation) return; // we dropped it on purpose
      state.socket = null;
      if (event.code === SESSION_TAKEN_OVER) {
        saveToken(state.room, ""); // another tab has this session now: start a new one
        system("This session was resumed in another tab. Starting a new one…");
      } else if (state.selfId !== null) system("Connection lost. Reconnecting…");
      state.selfId = null;
      state.members.clear(); // stale until the server sends the list again
      renderMembers();
      scheduleReconnect(generation);
    };
  }

  function scheduleReconnect(generation) {
    if (generation !== state.generation) return;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    state.attempt += 1;
    setStatus("reconnecting", "reconnecting…");
    state.retryTimer = setTimeout(connect, delay);
  }

  function switchRoom(room) {
    if (room === state.room && state.socket) return;
    state.room = room;
    ui.roomName.textContent = room;
    ui.roomInput.value = room;
    document.title = `#${room} · trio_rooms chat`;
    state.members.clear();
    state.selfId = null;
    state.connectedOnce = false;
    state.attempt = 0;
    renderMembers();
    showEmpty();
    if (state.socket) {
      state.generation += 1; // silence the old socket's close handler
      state.socket.close(1000, "switching rooms");
      state.socket = null;
    }
    connect();
  }

  function send(message) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  // ----------------------------------------------------------------- messages

  function receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (msg === null || typeof msg !== "object") return;
    if (typeof msg.error === "string") {
      system(`Server: ${msg.error}`, "error");
      return;
    }
    const session = msg.$session;
    if (session && typeof session === "object") {
      // The library's first frame (it has no "type"): keep the new token for next time.
      saveToken(state.room, typeof session.token === "string" ? session.token : "");
      state.resumed = session.resumed === true;
      return;
    }
    switch (msg.type) {
      case "members":
        state.selfId = msg.selfId;
        state.myIds.add(msg.selfId);
        state.members = new Map(msg.members.map((m) => [m.userId, m.name]));
        state.name = state.members.get(msg.selfId) || state.name;
        ui.nameInput.value = state.name;
        state.attempt = 0;
        state.connectedOnce = true;
        setStatus("connected", "connected");
        renderMembers();
        if (state.pendingName !== null && state.pendingName !== state.name) {
          send({ type: "setName", name: state.pendingName }); // renamed while offline
        }
        state.pendingName = null;
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
      default:
        break; // a newer server: ignore what we do not know
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

  function autosize() {
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
    if (!send({ type: "setName", name })) {
      // Offline: the name is asked for (or sent, to a resumed session) on reconnecting.
      state.name = name;
      state.pendingName = name;
      localStorage.setItem("trio_rooms.name", name);
    }
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
  {
    const room = state.room;
    state.room = null;
    switchRoom(room);
  }
})();
