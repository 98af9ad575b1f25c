// Suara's web chat: sends text to /web/chat and audio (recorded or uploaded) to /web/audio,
// shows the answer, its sources and the transcript, and plays the voice reply.
// Everything shown is set as text (never as HTML): answers come from documents.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const status = $("status");
  const ask = $("ask");
  const message = $("message");
  const record = $("record");
  const upload = $("upload");
  const keyForm = $("key-form");
  const keyInput = $("key");

  const CONVERSATION = "suara.conversation";
  const KEY = "suara.webChatKey";
  const MAX_RECORD_MS = 120000;

  const store = {
    get(name) {
      try { return localStorage.getItem(name); } catch { return null; }
    },
    set(name, value) {
      try { localStorage.setItem(name, value); } catch { /* private mode: kept in memory */ }
    },
  };

  function newId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // randomUUID needs https; this works on plain http too
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  let conversation = store.get(CONVERSATION) || newId();
  store.set(CONVERSATION, conversation);
  let memoryKey = store.get(KEY);
  let waitingForKey = null; // the request to send again once a key is entered
  let inFlight = 0;

  // Build an element with text children only.
  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function setStatus(text) {
    status.textContent = text;
  }

  function busy(delta) {
    inFlight += delta;
    document.body.setAttribute("aria-busy", inFlight > 0 ? "true" : "false");
    if (inFlight > 0) setStatus("Thinking…");
    else if (status.textContent === "Thinking…") setStatus("");
  }

  function addTurn(text, kind) {
    const turn = el("li", "turn");
    const label = kind === "text" ? "You" : kind === "voice" ? "You (voice note)" : "You (audio file)";
    const bubble = el("div", "bubble user", el("p", "who", label));
    if (text) bubble.append(el("p", "text", text));
    turn.append(bubble);
    log.append(turn);
    turn.scrollIntoView({ block: "end" });
    return turn;
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  function sourcesList(sources) {
    const list = el("ol", "sources");
    for (const source of sources) {
      const label = source.section ? `${source.title} — ${source.section}` : source.title;
      const href = source.url ? safeUrl(source.url) : null;
      let item;
      if (href) {
        const link = el("a", null, label);
        link.href = href;
        link.rel = "noopener noreferrer";
        link.target = "_blank";
        item = el("li", null, link);
      } else {
        item = el("li", null, label);
        if (source.source) item.title = source.source;
      }
      list.append(item);
    }
    return list;
  }

  function voicePlayer(voice) {
    const mime = /^audio\/[\w.+-]+$/.test(voice.mime_type) ? voice.mime_type : "audio/ogg";
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.className = "voice";
    audio.src = `data:${mime};base64,${voice.data}`;
    audio.setAttribute("aria-label", "Spoken answer");
    return audio;
  }

  function showAnswer(turn, data) {
    if (data.transcript) {
      turn.querySelector(".bubble.user").append(el("p", "transcript", `“${data.transcript}”`));
    }
    const bubble = el("div", data.declined ? "bubble bot declined" : "bubble bot",
      el("p", "who", "Suara"), el("p", "text answer", data.answer));
    if (data.sources && data.sources.length) {
      bubble.append(el("p", "sources-title", "Sources"), sourcesList(data.sources));
    }
    if (data.voice && data.voice.data) bubble.append(voicePlayer(data.voice));
    const details = [];
    if (data.emotion && data.emotion.label !== "neutral") details.push(`tone: ${data.emotion.label}`);
    if (data.exec_time && data.exec_time.total) {
      details.push(`${(data.exec_time.total / 1000).toFixed(1)} s`);
    }
    if (details.length) bubble.append(el("p", "meta", details.join(" · ")));
    turn.append(bubble);
    turn.scrollIntoView({ block: "end" });
  }

  function showError(turn, text) {
    turn.append(el("div", "bubble bot error", el("p", "who", "Suara"), el("p", "text", text)));
    turn.scrollIntoView({ block: "end" });
  }

  function askForKey(again, wasWrong) {
    waitingForKey = again;
    keyForm.hidden = false;
    setStatus(wasWrong ? "That key was not accepted. Please check it." : "This chat needs a key.");
    keyInput.focus();
  }

  async function send(path, body, contentType, turn) {
    const headers = { "X-Conversation-Id": conversation };
    if (contentType) headers["Content-Type"] = contentType;
    if (memoryKey) headers["X-Web-Chat-Key"] = memoryKey;
    busy(+1);
    try {
      let response;
      try {
        response = await fetch(path, { method: "POST", headers, body });
      } catch {
        showError(turn, "Could not reach the server. Check the connection and try again.");
        return;
      }
      let data = null;
      try { data = await response.json(); } catch { data = null; }
      if (response.status === 401) {
        askForKey(() => send(path, body, contentType, turn), Boolean(memoryKey));
        return;
      }
      if (!response.ok || !data) {
        showError(turn, (data && data.message) || `The server answered ${response.status}.`);
        return;
      }
      showAnswer(turn, data);
    } finally {
      busy(-1);
    }
  }

  function sendText(text) {
    const turn = addTurn(text, "text");
    return send("/web/chat", JSON.stringify({ message: text }), "application/json", turn);
  }

  function sendAudio(blob, name, kind) {
    const turn = addTurn(kind === "voice" ? null : name, kind);
    const form = new FormData();
    form.append("audio", blob, name);
    return send("/web/audio", form, null, turn);
  }

  ask.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = message.value.trim();
    if (!text) {
      setStatus("Type a question first.");
      message.focus();
      return;
    }
    message.value = "";
    sendText(text);
  });

  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ask.requestSubmit();
    }
  });

  $("upload-button").addEventListener("click", () => upload.click());
  upload.addEventListener("change", () => {
    const file = upload.files && upload.files[0];
    if (file) sendAudio(file, file.name, "file");
    upload.value = "";
  });

  let recorder = null;

  function recordingState(on) {
    record.setAttribute("aria-pressed", on ? "true" : "false");
    record.textContent = on ? "Stop" : "Record";
    record.classList.toggle("recording", on);
    setStatus(on ? "Recording… press Stop to send." : "");
  }

  record.addEventListener("click", async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) {
      setStatus("Recording needs a secure page (https or localhost); upload a file instead.");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      setStatus(`The microphone is not available (${error.name}).`);
      return;
    }
    const types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
    const type = types.find((t) => MediaRecorder.isTypeSupported(t));
    const chunks = [];
    const current = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const limit = setTimeout(() => current.state === "recording" && current.stop(), MAX_RECORD_MS);
    current.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) chunks.push(event.data);
    });
    current.addEventListener("stop", () => {
      clearTimeout(limit);
      stream.getTracks().forEach((track) => track.stop());
      recorder = null;
      recordingState(false);
      const mime = current.mimeType || type || "audio/webm";
      const blob = new Blob(chunks, { type: mime });
      const ext = mime.includes("ogg") ? "ogg" : mime.includes("mp4") ? "m4a" : "webm";
      if (blob.size) sendAudio(blob, `voice-note.${ext}`, "voice");
      else setStatus("Nothing was recorded.");
    });
    recorder = current;
    current.start();
    recordingState(true);
  });

  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    memoryKey = key;
    store.set(KEY, key);
    keyInput.value = "";
    keyForm.hidden = true;
    setStatus("");
    const again = waitingForKey;
    waitingForKey = null;
    if (again) again();
  });

  $("new-conversation").addEventListener("click", () => {
    conversation = newId();
    store.set(CONVERSATION, conversation);
    log.replaceChildren();
    setStatus("New conversation started.");
    message.focus();
  });
})();
