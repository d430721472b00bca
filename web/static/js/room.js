// The meeting room page: pre-join preview, then tiles, controls, participants and chat.
// Protocol in signaling.js; all text from the server's catalogs (the #i18n JSON block).
import { Signaling } from "./signaling.js";

/**
 * @typedef {{id: string, person_id: number, unit_id: number | null, name: string, role: string,
 *   audio_muted: boolean, video_muted: boolean, hand_raised: boolean, screen_sharing: boolean}} Participant
 * @typedef {{participant_id: string, person_id: number, unit_id: number | null, name: string, since: string,
 *   reason: string}} Waiting
 * @typedef {{occurrence: number, token: string, ws: string, name: string, personId: number, unit: string,
 *   mutedByDefault: boolean, units: Record<string, {name: string, centre: boolean}>}} RoomConfig
 */

const AUDIO_SLOTS = 3;
const VIDEO_SLOTS = 6;

/** @param {string} id @returns {any} */
function data(id) {
  const el = document.getElementById(id);
  return JSON.parse(el ? el.textContent || "{}" : "{}");
}

/** @param {string} id @returns {HTMLElement} */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el;
}

/**
 * A new element with text content and classes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag @param {string} [text] @param {string} [className]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, text = "", className = "") {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** @type {Record<string, string>} */
const t = data("i18n");
/** @type {RoomConfig} */
const config = data("room-config");

const state = {
  /** @type {MediaStream | null} */
  local: null,
  audioMuted: config.mutedByDefault,
  videoMuted: false,
  hand: false,
  /** @type {string} */
  me: "",
  /** @type {Map<number, Participant>} by person id */
  participants: new Map(),
  /** @type {number[]} */
  queue: [],
  /** @type {Map<string, {kind: string, personId: number | null, track: MediaStreamTrack | null}>} by slot mid */
  slots: new Map(),
  /** @type {number | null} */
  speaking: null,
  /** @type {string} "moderator" or "participant", from the `room` event */
  role: "participant",
  locked: false,
  /** @type {Waiting[]} moderators only */
  lobby: [],
};

/** @type {Signaling} */
const signaling = new Signaling(config.ws);
/** @type {RTCPeerConnection | null} */
let pc = null;

// Tests read the peer connection's statistics; nothing else uses this.
/** @type {any} */ (window).__giaoban = { signaling, state, pc: null };

// ---- Pre-join ---------------------------------------------------------------------------------

async function preview() {
  const audioBox = /** @type {HTMLInputElement} */ ($("want-audio"));
  const videoBox = /** @type {HTMLInputElement} */ ($("want-video"));
  audioBox.checked = !config.mutedByDefault;
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
    /** @type {HTMLVideoElement} */ ($("preview")).srcObject = state.local;
  } catch {
    const note = $("device-note");
    note.textContent = t.no_devices;
    note.hidden = false;
  }
  const button = /** @type {HTMLButtonElement} */ ($("join-button"));
  button.disabled = false;
  button.addEventListener("click", () => {
    button.disabled = true;
    button.textContent = t.joining;
    state.audioMuted = !audioBox.checked;
    state.videoMuted = !videoBox.checked;
    join().catch((error) => banner(String(error.message || error)));
  });
}

// ---- Joining and media ------------------------------------------------------------------------

async function join() {
  applyLocalMute();
  signaling.addEventListener("room", (e) => onRoom(/** @type {CustomEvent} */ (e).detail));
  signaling.addEventListener("waiting", () => banner(t.waiting));
  signaling.addEventListener("joined", (e) => upsert(/** @type {CustomEvent} */ (e).detail.participant));
  signaling.addEventListener("state", (e) => onState(/** @type {CustomEvent} */ (e).detail));
  signaling.addEventListener("left", (e) => {
    const detail = /** @type {CustomEvent} */ (e).detail;
    const p = state.participants.get(detail.person_id);
    if (p && p.id === detail.participant_id) state.participants.delete(detail.person_id);
    draw();
  });
  signaling.addEventListener("queue", (e) => {
    state.queue = /** @type {CustomEvent} */ (e).detail.queue;
    draw();
  });
  signaling.addEventListener("stream", (e) => onStream(/** @type {CustomEvent} */ (e).detail));
  signaling.addEventListener("speaking", (e) => {
    state.speaking = /** @type {CustomEvent} */ (e).detail.person_id;
    drawGrid();
  });
  signaling.addEventListener("lobby", (e) => {
    state.lobby = /** @type {CustomEvent} */ (e).detail.lobby || [];
    drawChair();
  });
  signaling.addEventListener("locked", (e) => {
    state.locked = Boolean(/** @type {CustomEvent} */ (e).detail.locked);
    drawChair();
  });
  signaling.addEventListener("chat", (e) => onChat(/** @type {CustomEvent} */ (e).detail));
  signaling.addEventListener("ended", () => banner(t.ended));
  signaling.addEventListener("error", (e) => banner(/** @type {CustomEvent} */ (e).detail.message));
  signaling.addEventListener("close", (e) => {
    const { code, reason } = /** @type {CustomEvent} */ (e).detail;
    if (code !== 1000) banner(reason || t.closed);
    if (pc) pc.close();
  });
  const welcome = await signaling.join({
    occurrence: config.occurrence,
    token: config.token || undefined,
    audio: !state.audioMuted,
    video: !state.videoMuted,
  });
  state.me = welcome.participant;
  pc = new RTCPeerConnection({ iceServers: welcome.iceServers, bundlePolicy: "max-bundle" });
  /** @type {any} */ (window).__giaoban.pc = pc;
  pc.addEventListener("track", (event) => {
    const mid = event.transceiver.mid;
    if (mid === null) return;
    const slot = state.slots.get(mid) || { kind: event.track.kind, personId: null, track: null };
    slot.track = event.track;
    state.slots.set(mid, slot);
    if (event.track.kind === "audio") playAudio(mid, event.track);
    drawGrid();
  });
  pc.addEventListener("icecandidate", (event) => {
    if (event.candidate && event.candidate.candidate) signaling.candidate(event.candidate);
  });
}

/** @param {any} room the `room` event: seated */
async function onRoom(room) {
  state.participants.clear();
  for (const p of room.participants) state.participants.set(p.person_id, p);
  state.queue = room.queue || [];
  state.role = room.role || "participant";
  state.locked = Boolean(room.locked);
  state.lobby = room.lobby || [];
  $("prejoin").hidden = true;
  $("room").hidden = false;
  $("banner").hidden = true;
  draw();
  await negotiate();
}

/** Offer our microphone and camera and the receive slots; the server answers. */
async function negotiate() {
  if (!pc || pc.getTransceivers().length > 0) return; // once per peer connection; renegotiation: issue 5
  /** @type {import("./signaling.js").Sources} */
  const sources = {};
  /** @type {[RTCRtpTransceiver, "microphone" | "camera"][]} */
  const sending = [];
  const local = state.local;
  if (local) {
    // Send-only publications, even while muted: unmuting then needs no renegotiation.
    const [audio] = local.getAudioTracks();
    const [video] = local.getVideoTracks();
    if (audio) sending.push([pc.addTransceiver(audio, { direction: "sendonly", streams: [local] }), "microphone"]);
    if (video) sending.push([pc.addTransceiver(video, { direction: "sendonly", streams: [local] }), "camera"]);
  }
  for (let i = 0; i < AUDIO_SLOTS; i++) pc.addTransceiver("audio", { direction: "recvonly" });
  for (let i = 0; i < VIDEO_SLOTS; i++) pc.addTransceiver("video", { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, 2000);
  for (const [transceiver, source] of sending) if (transceiver.mid !== null) sources[transceiver.mid] = source;
  const offer = pc.localDescription;
  if (!offer) return;
  const answer = await signaling.offer(offer.sdp, sources);
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
}

/**
 * Wait for ICE gathering (host candidates go in the offer), at most `ms`.
 * @param {RTCPeerConnection} peer @param {number} ms
 */
function gathered(peer, ms) {
  return new Promise((resolve) => {
    if (peer.iceGatheringState === "complete") return resolve(undefined);
    const timer = setTimeout(resolve, ms);
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve(undefined);
      }
    });
  });
}

/** @param {string} mid @param {MediaStreamTrack} track */
function playAudio(mid, track) {
  const sink = $("audio-sink");
  let audio = /** @type {HTMLAudioElement | null} */ (sink.querySelector(`audio[data-mid="${CSS.escape(mid)}"]`));
  if (!audio) {
    audio = el("audio");
    audio.dataset.mid = mid;
    audio.autoplay = true;
    sink.append(audio);
  }
  audio.srcObject = new MediaStream([track]);
  audio.play().catch(() => {});
}

/** @param {any} event a `stream` event: what one of our slots now carries */
function onStream(event) {
  const slot = state.slots.get(event.mid) || { kind: event.kind, personId: null, track: null };
  slot.personId = event.participant ? event.person_id : null;
  state.slots.set(event.mid, slot);
  drawGrid();
}

/** @param {any} event a `state` event */
function onState(event) {
  /** @type {Participant} */
  const p = event.participant;
  upsert(p);
  if (p.id === state.me && event.by !== null && event.by !== undefined) {
    // A moderator muted us or gave us the floor: follow the room.
    state.audioMuted = p.audio_muted;
    state.videoMuted = p.video_muted;
    state.hand = p.hand_raised;
    applyLocalMute();
    drawControls();
  }
}

/** @param {Participant} p */
function upsert(p) {
  state.participants.set(p.person_id, p);
  draw();
}

/** Disable our tracks as the mute state says (a muted centre sends almost nothing). */
function applyLocalMute() {
  if (!state.local) return;
  for (const track of state.local.getAudioTracks()) track.enabled = !state.audioMuted;
  for (const track of state.local.getVideoTracks()) track.enabled = !state.videoMuted;
}

function toggleAudio() {
  state.audioMuted = !state.audioMuted;
  applyLocalMute();
  signaling.mute(state.audioMuted, state.videoMuted);
  drawControls();
}

function toggleVideo() {
  state.videoMuted = !state.videoMuted;
  applyLocalMute();
  signaling.mute(state.audioMuted, state.videoMuted);
  drawControls();
}

function toggleHand() {
  state.hand = !state.hand;
  signaling.hand(state.hand);
  drawControls();
}

function leave() {
  signaling.leave();
  if (pc) pc.close();
  if (state.local) for (const track of state.local.getTracks()) track.stop();
  banner(t.left);
  $("chair-panel").hidden = true;
  for (const id of ["toggle-audio", "toggle-video", "toggle-hand", "leave"]) {
    /** @type {HTMLButtonElement} */ ($(id)).disabled = true;
  }
}

// ---- Drawing ----------------------------------------------------------------------------------

/** @param {string} text */
function banner(text) {
  const b = $("banner");
  b.textContent = text;
  b.hidden = false;
  if (!$("prejoin").hidden) {
    const note = $("device-note");
    note.textContent = text;
    note.hidden = false;
  }
}

/** @param {number | null} unitId */
function unitName(unitId) {
  const unit = unitId === null ? undefined : config.units[String(unitId)];
  return unit ? unit.name : t.no_unit;
}

function draw() {
  drawGrid();
  drawParticipants();
  drawControls();
  drawChair();
}

const moderator = () => state.role === "moderator";

/**
 * A small button sending one moderator action.
 * @param {string} text @param {string} action @param {number} [target] @param {string} [className]
 */
function actionButton(text, action, target, className = "secondary small") {
  const button = el("button", text, className);
  button.type = "button";
  button.dataset.action = action;
  button.addEventListener("click", () => signaling.moderate(action, target));
  return button;
}

/** The chair's panel (moderators only): the speakers' queue, room actions and the lobby. */
function drawChair() {
  const panel = $("chair-panel");
  panel.hidden = !moderator() || $("room").hidden;
  if (panel.hidden) return;
  $("chair-title").textContent = t.chair_panel;
  $("mute-all").textContent = t.mute_all;
  $("lower-hands").textContent = t.lower_hands;
  $("toggle-lock").textContent = state.locked ? t.unlock : t.lock;
  $("toggle-lock").setAttribute("aria-pressed", String(state.locked));
  $("end-meeting").textContent = t.end;
  const note = $("locked-note");
  note.textContent = t.locked;
  note.hidden = !state.locked;

  $("queue-title").textContent = `${t.queue} (${state.queue.length})`;
  const queue = state.queue.map((personId) => {
    const p = state.participants.get(personId);
    const item = el("li");
    item.dataset.person = String(personId);
    item.append(el("span", p ? p.name : String(personId), "queue-name"), " ");
    item.append(actionButton(t.give_floor, "give_floor", personId, "small"));
    return item;
  });
  if (queue.length === 0) queue.push(el("li", t.queue_empty, "help"));
  $("queue").replaceChildren(...queue);

  $("lobby-title").textContent = `${t.lobby} (${state.lobby.length})`;
  const lobby = state.lobby.map((w) => {
    const item = el("li");
    item.dataset.person = String(w.person_id);
    item.append(el("span", `${w.name} · ${unitName(w.unit_id)}`, "lobby-name"));
    item.append(actionButton(t.admit, "admit", w.person_id, "small"), actionButton(t.deny, "deny", w.person_id));
    return item;
  });
  if (lobby.length === 0) lobby.push(el("li", t.lobby_empty, "help"));
  $("lobby").replaceChildren(...lobby);
}

/** One tile per participant in the room; a video slot carrying them fills it. */
function drawGrid() {
  const grid = $("grid");
  /** @type {Map<number, MediaStreamTrack>} */
  const videoOf = new Map();
  for (const slot of state.slots.values()) {
    if (slot.kind === "video" && slot.personId !== null && slot.track) videoOf.set(slot.personId, slot.track);
  }
  const seen = new Set();
  for (const p of state.participants.values()) {
    const key = String(p.person_id);
    seen.add(key);
    let tile = /** @type {HTMLElement | null} */ (grid.querySelector(`[data-person="${key}"]`));
    if (!tile) {
      tile = el("figure", "", "tile");
      tile.dataset.person = key;
      const video = el("video");
      video.autoplay = true;
      video.muted = true; // sound comes from the audio slots
      video.playsInline = true;
      const caption = el("figcaption");
      caption.append(el("strong", "", "tile-name"), el("span", "", "tile-unit"), el("span", "", "tile-state"));
      tile.append(video, caption);
      grid.append(tile);
    }
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector("video"));
    const mine = p.id === state.me;
    /** @type {MediaStreamTrack | undefined} */
    const track = mine ? (state.local ? state.local.getVideoTracks()[0] : undefined) : videoOf.get(p.person_id);
    const current = video.srcObject instanceof MediaStream ? video.srcObject.getVideoTracks()[0] : undefined;
    if (track !== current) video.srcObject = track ? new MediaStream([track]) : null;
    video.hidden = !track || p.video_muted;
    /** @type {HTMLElement} */ (tile.querySelector(".tile-name")).textContent = mine ? `${p.name} (${t.you})` : p.name;
    /** @type {HTMLElement} */ (tile.querySelector(".tile-unit")).textContent = unitName(p.unit_id);
    const marks = [p.audio_muted ? t.muted : "", p.hand_raised ? t.hand_raised : ""].filter(Boolean);
    /** @type {HTMLElement} */ (tile.querySelector(".tile-state")).textContent = marks.join(" · ");
    tile.classList.toggle("speaking", state.speaking === p.person_id);
    tile.dataset.muted = String(p.audio_muted);
  }
  for (const tile of Array.from(grid.querySelectorAll("[data-person]"))) {
    const key = /** @type {HTMLElement} */ (tile).dataset.person;
    if (!seen.has(key)) tile.remove();
  }
  grid.dataset.count = String(seen.size);
}

/** The participants panel, grouped by unit (committee and departments first, centres last). */
function drawParticipants() {
  const panel = $("participants");
  /** @type {Map<string, Participant[]>} */
  const groups = new Map();
  const people = Array.from(state.participants.values());
  people.sort((a, b) => {
    const ca = a.unit_id !== null && config.units[String(a.unit_id)]?.centre ? 1 : 0;
    const cb = b.unit_id !== null && config.units[String(b.unit_id)]?.centre ? 1 : 0;
    return ca - cb || unitName(a.unit_id).localeCompare(unitName(b.unit_id), "vi") || a.name.localeCompare(b.name, "vi");
  });
  for (const p of people) {
    const name = unitName(p.unit_id);
    const list = groups.get(name) || [];
    list.push(p);
    groups.set(name, list);
  }
  /** @type {HTMLElement[]} */
  const sections = [];
  for (const [unit, members] of groups) {
    const section = el("section", "", "unit-group");
    section.append(el("h3", unit));
    const list = el("ul");
    for (const p of members) {
      const item = el("li", "", "participant");
      item.dataset.person = String(p.person_id);
      item.dataset.muted = String(p.audio_muted);
      item.dataset.hand = String(p.hand_raised);
      item.append(el("span", p.id === state.me ? `${p.name} (${t.you})` : p.name, "participant-name"));
      if (p.audio_muted) item.append(el("span", t.muted, "badge"));
      if (p.hand_raised) {
        const place = state.queue.indexOf(p.person_id);
        item.append(el("span", place >= 0 ? `${t.hand_raised} #${place + 1}` : t.hand_raised, "badge hand"));
      }
      if (moderator() && p.id !== state.me) {
        const mute = actionButton(t.mute_person, "mute", p.person_id);
        mute.disabled = p.audio_muted;
        item.append(mute, actionButton(t.remove, "remove", p.person_id));
      }
      list.append(item);
    }
    section.append(list);
    sections.push(section);
  }
  panel.replaceChildren(...sections);
  $("participants-title").textContent = `${t.participants} (${people.length})`;
}

function drawControls() {
  $("toggle-audio").textContent = state.audioMuted ? t.unmute : t.mute;
  $("toggle-audio").setAttribute("aria-pressed", String(state.audioMuted));
  $("toggle-video").textContent = state.videoMuted ? t.camera_on : t.camera_off;
  $("toggle-video").setAttribute("aria-pressed", String(state.videoMuted));
  $("toggle-hand").textContent = state.hand ? t.lower_hand : t.raise_hand;
  $("toggle-hand").setAttribute("aria-pressed", String(state.hand));
  $("leave").textContent = t.leave;
}

/** @param {any} message a `chat` event */
function onChat(message) {
  const item = el("li");
  const at = new Date(message.at);
  item.append(
    el("strong", message.name),
    el("time", at.toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" })),
    el("p", message.text),
  );
  const log = $("chat-log");
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

// ---- Wiring -----------------------------------------------------------------------------------

$("toggle-audio").addEventListener("click", toggleAudio);
$("toggle-video").addEventListener("click", toggleVideo);
$("toggle-hand").addEventListener("click", toggleHand);
$("leave").addEventListener("click", leave);
$("mute-all").addEventListener("click", () => signaling.moderate("mute_all"));
$("lower-hands").addEventListener("click", () => signaling.moderate("lower_hands"));
$("toggle-lock").addEventListener("click", () => signaling.moderate(state.locked ? "unlock" : "lock"));
$("end-meeting").addEventListener("click", () => {
  if (window.confirm(t.end_confirm)) signaling.moderate("end");
});
$("shortcuts").textContent = t.shortcuts;
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($("chat-text"));
  const text = input.value.trim();
  if (text) signaling.chat(text);
  input.value = "";
});
document.addEventListener("keydown", (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  if ($("room").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  if (target.closest("input, textarea, select")) return;
  const key = event.key.toLowerCase();
  if (key === "m") toggleAudio();
  else if (key === "v") toggleVideo();
  else if (key === "h") toggleHand();
  else return;
  event.preventDefault();
});
drawControls();
preview();
