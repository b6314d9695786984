// livedub page: camera + microphone to the server over WebRTC, your translated face and voice back.
// No build step; plain browser APIs. GPL-3.0-or-later.
"use strict";

const PROTOCOL = 1;
let LANGUAGES = {};  // code → name, as the server offers them (/health)
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");

// What a web app embedding this page (or a test) can read: the streams, the events, the state.
const livedub = window.livedub = {
  state: "idle", events: [], sentences: [], words: [], stats: null, error: null,
  selfStream: null, translatedStream: null, pc: null, channel: null, sending: null,
  start, stop, send,
};

function setStatus(text) { $("status").textContent = text; }

function showError(text, retry) {
  livedub.error = text;
  $("error-text").textContent = text;
  $("retry").hidden = !retry;
  $("error").hidden = false;
}

function clearError() { livedub.error = null; $("error").hidden = true; }

function fill(select, entries, chosen) {
  const keep = select.value;
  select.replaceChildren(...entries.map(([value, label]) => new Option(label, value)));
  if (chosen !== undefined) select.value = chosen;
  else if (keep && entries.some(([v]) => v === keep)) select.value = keep;
}

async function listDevices() {
  if (!navigator.mediaDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const of = (kind, word) => devices.filter((d) => d.kind === kind)
    .map((d, i) => [d.deviceId, d.label || `${word} ${i + 1}`]);
  fill($("camera"), of("videoinput", "camera"));
  fill($("mic"), of("audioinput", "microphone"));
}

async function loadDefaults() {
  try {
    const health = await (await fetch("health")).json();
    LANGUAGES = health.languages || {};
    const langs = Object.entries(LANGUAGES);
    fill($("from"), [["", "detect"], ...langs], "");
    fill($("to"), langs, health.target);
    if (health.source) $("from").value = health.source;
    fill($("engine"), health.engines.map((e) => [e, e]), health.engine);
  } catch (e) {
    showError("The livedub server does not answer: is `livedub serve` running?", true);
  }
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

function waitForIce(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms);  // send what we have: the server answers with its own candidates
  });
}

async function start() {
  clearError();
  if (livedub.pc) await stop();
  livedub.state = "starting";
  $("start").disabled = true;
  setStatus("Asking for the camera and microphone…");
  const camera = $("camera").value, mic = $("mic").value;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: camera ? { deviceId: { exact: camera } } : true,
      audio: mic ? { deviceId: { exact: mic } } : true,
    });
  } catch (e) {
    livedub.state = "error";
    $("start").disabled = false;
    if (e.name === "NotAllowedError" || e.name === "SecurityError")
      showError("No camera or microphone permission: allow both for this page in the browser's site settings, then Retry.", true);
    else if (e.name === "NotFoundError" || e.name === "OverconstrainedError")
      showError("No camera or microphone found: plug one in (or pick another), then Retry.", true);
    else if (e.name === "NotReadableError")
      showError("The camera or microphone is busy in another program: close it there, then Retry.", true);
    else showError(`Cannot open the camera or microphone: ${e.message || e.name}`, true);
    return;
  }
  livedub.selfStream = stream;
  $("self").srcObject = stream;
  listDevices();

  lastHeard = 0; behind = false;  // a new call: silent until its server first speaks
  const pc = livedub.pc = new RTCPeerConnection();
  const translated = livedub.translatedStream = new MediaStream();
  pc.ontrack = (ev) => { translated.addTrack(ev.track); $("translated").srcObject = translated; };
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  const channel = livedub.channel = pc.createDataChannel("livedub");
  channel.onmessage = (ev) => onMessage(ev.data);
  channel.onclose = () => { if (pc === livedub.pc && livedub.state === "connected") moveCall("The server ended the call."); };
  pc.onconnectionstatechange = () => onConnection(pc);

  setStatus("Connecting…");
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc, 2000);
  const body = { sdp: pc.localDescription.sdp, type: pc.localDescription.type, to: $("to").value,
                 from: $("from").value, engine: $("engine").value };
  let reply;
  try {
    reply = await fetch("offer", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  } catch (e) {
    return fail("The livedub server does not answer: is `livedub serve` still running?");
  }
  const answer = await reply.json().catch(() => ({ error: `HTTP ${reply.status}` }));
  if (!reply.ok) {
    if (reply.status === 503) return fail(`The server is full (${answer.error}). Retry in a moment.`, "full");
    if (reply.status === 401) return fail("This server needs its token: open the full URL `livedub serve` printed.");
    return fail(`The server refused the call: ${answer.error}`);
  }
  await pc.setRemoteDescription(answer);
  $("stop").disabled = false;
  $("mute").disabled = false;
  $("target-name").textContent = `(${LANGUAGES[$("to").value] || $("to").value})`;
}

async function fail(text, state) {
  await stop();
  livedub.state = state || "error";
  showError(text, true);
}

let lostTimer = null;
function onConnection(pc) {
  if (pc !== livedub.pc) return;
  const state = pc.connectionState;
  clearTimeout(lostTimer);
  if (state === "connected") {
    livedub.state = "connected";
    keepLipSync(pc);
    clearError();
    setStatus("Connected. Speak: your translated face appears on the right, about a second behind.");
    if (moveTries) {
      livedub.moves += 1;
      moveTries = 0;
      setStatus("Reconnected (to another server). Speak: your translated face appears on the right.");
    }
  } else if (state === "failed") {
    moveCall("The connection to the server was lost.");
  } else if (state === "disconnected") {
    setStatus("Connection interrupted, waiting for it to come back…");
    lostTimer = setTimeout(() => { if (pc.connectionState !== "connected") moveCall("The connection to the server was lost."); }, 8000);
  }
}

// A call whose server goes away (it is stopping and said "going_away", or it died) moves: the page offers
// again to the same address, where the load balancer picks another server. A few tries, further apart each
// time, without reloading the page; then the Retry button.
const MOVE_DELAYS_MS = [500, 1500, 3000, 6000, 10000];
let moveTimer = null, moveTries = 0;
livedub.moves = 0;  // calls moved to another server so far

function moveCall(why) {
  if (moveTimer !== null) return;
  if (moveTries >= MOVE_DELAYS_MS.length) {
    moveTries = 0;
    fail(`${why} Reconnecting did not work: Retry to call again.`, "lost");
    return;
  }
  const delay = MOVE_DELAYS_MS[moveTries++];
  const notice = `${why} Reconnecting to another server (try ${moveTries} of ${MOVE_DELAYS_MS.length})…`;
  stop().then(() => { livedub.state = "reconnecting"; showError(notice, false); setStatus("Reconnecting…"); });
  moveTimer = setTimeout(async () => {
    try { await start(); } finally { moveTimer = null; }
    if (livedub.state !== "starting" && livedub.state !== "connected") moveCall(why);
  }, delay);
}

function cancelMove() { clearTimeout(moveTimer); moveTimer = null; moveTries = 0; }

// The server says something at least once a second ("stats"): silence for SILENT_MS while connected means it
// died (killed, or its machine or network went), long before the browser's own ICE timers notice. A server
// that said "slow" (this page's connection is behind) may be quiet on purpose: not counted then.
const SILENT_MS = 4000;
let lastHeard = 0, behind = false;
setInterval(() => {
  if (livedub.state === "connected" && lastHeard && !behind && performance.now() - lastHeard > SILENT_MS)
    moveCall("The server stopped answering.");
}, 1000);

// Lip sync on the page. The browser buffers the translated sound longer than its picture (audio jitter buffer
// 40-60 ms, video 10-20 ms, measured in Chromium here) and its own A/V sync leaves gaps of that size alone, so
// the sound came 30-150 ms after the mouth that speaks it. Once a second the page compares what each track is
// playing now on the server's clock (estimatedPlayoutTimestamp) and sets the picture's buffer to what it holds
// now plus the sound's lag (RTCRtpReceiver.jitterBufferTarget; the browser eases into it), never the sound's:
// the picture waits for the voice, as on television.
const SYNC_EVERY_MS = 1000, SYNC_DEADBAND_MS = 10, SYNC_MAX_MS = 500;
async function keepLipSync(pc) {
  const picture = pc.getReceivers().find((r) => r.track && r.track.kind === "video");
  if (!picture || !("jitterBufferTarget" in picture) || pc.lipSyncing) return;  // without it: played as it comes
  pc.lipSyncing = true;
  let last = null;
  while (pc === livedub.pc && pc.connectionState !== "closed") {
    await new Promise((r) => setTimeout(r, SYNC_EVERY_MS));
    const now = {};
    try {
      (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp") now[r.kind] = r; });
    } catch (e) { return; }
    const [audio, video] = [now.audio, now.video];
    if (!audio || !video || !audio.estimatedPlayoutTimestamp || !video.estimatedPlayoutTimestamp) continue;
    const lag = livedub.soundLagMs = video.estimatedPlayoutTimestamp - audio.estimatedPlayoutTimestamp;
    const frames = last ? video.jitterBufferEmittedCount - last.jitterBufferEmittedCount : 0;
    const buffered = frames > 0 ? 1000 * (video.jitterBufferDelay - last.jitterBufferDelay) / frames : null;
    last = video;
    if (buffered === null || Math.abs(lag) <= SYNC_DEADBAND_MS) continue;  // > 0: the sound plays behind
    picture.jitterBufferTarget = livedub.pictureHeldMs = Math.round(Math.min(Math.max(buffered + lag, 0), SYNC_MAX_MS));
  }
}

function send(type, fields) {
  const channel = livedub.channel;
  if (!channel || channel.readyState !== "open") return false;
  channel.send(JSON.stringify({ v: PROTOCOL, type, ...fields }));
  return true;
}

function onMessage(data) {
  let msg;
  try { msg = JSON.parse(data); } catch (e) { return; }
  if (msg.v !== PROTOCOL) return;
  msg.received = lastHeard = performance.now();
  livedub.events.push(msg);
  if (livedub.events.length > 2000) livedub.events.splice(0, 1000);
  switch (msg.type) {
    case "word":
      livedub.words.push(msg.text);
      $("committed").textContent = livedub.words.slice(-30).join(" ");
      $("partial").textContent = "";
      break;
    case "partial":
      $("partial").textContent = msg.text;
      break;
    case "sentence":
      livedub.sentences.push(msg);
      $("target-caption").textContent = msg.translation;
      break;
    case "language":
      setStatus(`Heard ${LANGUAGES[msg.language] || msg.language}.`);
      break;
    case "stats":
      livedub.stats = msg;
      showLatency(msg);
      break;
    case "ack":
      if (msg.of === "set_target") $("target-name").textContent = `(${LANGUAGES[msg.target] || msg.target})`;
      break;
    case "error":
      setStatus(`Server: ${msg.text}`);
      break;
    case "going_away":
      moveCall("This server is shutting down.");
      break;
    case "send_less":
    case "send_full":
      sendAt(msg);
      break;
    case "slow":
      behind = msg.behind;
      if (msg.behind) setStatus("Your connection is falling behind: captions are skipped until it catches up.");
      break;
  }
}

// The server at its capacity asks callers to send less (or lifts that): cap the camera's sending frame rate
// and width on the video sender (RTCRtpSender.setParameters on the parameters getParameters gave).
async function sendAt(msg) {
  const pc = livedub.pc;
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === "video");
  if (!sender) return;
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length) return;
  const width = sender.track.getSettings().width || 0;
  const less = msg.type === "send_less";
  for (const encoding of params.encodings) {
    if (less && msg.max_fps) encoding.maxFramerate = msg.max_fps;
    else delete encoding.maxFramerate;
    encoding.scaleResolutionDownBy = less && msg.max_width && width > msg.max_width ? width / msg.max_width : 1;
  }
  try {
    await sender.setParameters(params);
    livedub.sending = { max_fps: less ? msg.max_fps : null, max_width: less ? msg.max_width : null };
    if (less) setStatus(`The server is busy: sending at most ${msg.max_fps} frames a second to make room.`);
  } catch (e) {
    livedub.sending = { error: e.message || e.name };
  }
}

function showLatency(msg) {
  const rows = Object.entries(msg.stages || {}).map(([stage, s]) => {
    const tr = document.createElement("tr");
    for (const v of [stage, `${Math.round(s.p50_ms)} ms`, `${Math.round(s.p95_ms)} ms`]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    return tr;
  });
  $("latency").tBodies[0].replaceChildren(...rows);
  const d = msg.dropped_frames || {};
  $("delay").textContent = `audio held back ${Math.round(msg.audio_delay_ms ?? msg.video_delay_ms ?? 0)} ms to match the lips; ` +
    `frames dropped: ${(d.before_lipsync || 0) + (d.before_encoder || 0)}`;
}

async function stop() {
  const pc = livedub.pc;
  livedub.pc = null;
  livedub.channel = null;
  if (pc) pc.close();
  if (livedub.selfStream) for (const t of livedub.selfStream.getTracks()) t.stop();
  livedub.selfStream = null;
  $("self").srcObject = null;
  $("translated").srcObject = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("mute").disabled = true;
  livedub.state = "idle";
  setStatus("Stopped.");
}

$("start").onclick = () => { cancelMove(); start(); };
$("stop").onclick = () => { cancelMove(); stop(); };
$("retry").onclick = () => { cancelMove(); start(); };
$("to").onchange = () => send("set_target", { language: $("to").value });
$("engine").onchange = () => send("set_engine", { engine: $("engine").value });
$("mute").onchange = () => send("mute", { muted: $("mute").checked });
window.addEventListener("pagehide", () => { if (livedub.pc) livedub.pc.close(); });

loadDefaults().then(listDevices);
