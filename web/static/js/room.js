// The meeting room page: pre-join preview, then tiles, controls, participants and chat, and the
// reconnection that keeps the page in the meeting when the network drops.
// Protocol in signaling.js; media in room/call.js; all text from the server's catalogs (#i18n).
//
// Ids and data attributes tests rely on (keep them stable):
//   pre-join   #prejoin, #preview, #prejoin-name, #prejoin-unit, #camera-select, #mic-select,
//              #want-audio, #want-video, #join-button, #device-note
//   room       #room[data-connection="connecting|connected|reconnecting|closed"],
//              #room[data-audio-only="true|false"], #banner (messages),
//              #connection-banner (shown while reconnecting), #quality[data-level="good|fair|poor|unknown"]
//   controls   #toggle-audio, #toggle-video, #toggle-hand, #toggle-screen, #toggle-audio-only,
//              #toggle-layout (each with aria-pressed), #leave, #shortcuts
//   grid       #grid[data-layout="grid|speaker"][data-count], tiles .tile[data-person][data-muted]
//              [data-speaking][data-mid=<video slot>][data-paused] (.speaking, .main = the big tile in
//              speaker view, .no-video with a .tile-placeholder, .tile-paused: "video paused" for
//              bandwidth), screen shares .tile.screen[data-screen=<person id>]
//   weak links #toggle-stats[aria-pressed], #stats-overlay (#stats-link, #stats-videos tr[data-mid]),
//              #participants li[data-layer] (moderators),
//              #quality[title] (the figures), participants' .layer (moderators: "640×360", "audio only")
//   people     #participants li.participant[data-person][data-muted][data-hand][data-camera]
//              [data-screen][data-speaking][data-quality="good|fair|poor|unknown"], #participants-title
//   chair      #chair-panel, #mute-all, #lower-hands, #toggle-lock, #end-meeting, #queue li[data-person],
//              #lobby li[data-person], button[data-action]
//   chat       #chat-log, #chat-form, #chat-text
//   minutes    #minutes-panel, #toggle-minutes (see room/minutes.js)
//   panels     #open-participants|chat|minutes|chair[aria-expanded] (.count: unread chat, hands, lobby),
//              #drawer, #panel-participants|chat|minutes|chair (hidden when closed; Escape closes)
//   chair strip #chair-strip, #rollcall li[data-unit][data-status="present|absent|weak|audio"],
//              #rollcall-summary, #queue (give the floor), #lobby-count
//   stage      #stage, #grid > #stage-main (large tiles) + #filmstrip (the strip, compact tiles)
//   status     #status[data-state="connecting|reconnecting|lobby|not-started"], #status-title,
//              #connection-banner (what is retried, while reconnecting), #status-retry, #status-leave
//   over       #over[data-reason="left|removed|ended|denied|replaced|closed"] (the room and the
//              pre-join screen hidden), #over-title, #over-message, #over-next, #over-rejoin, #over-home
//   timing     #join-timing (hidden; JSON of the join's phases, only with ?timing: room/timing.js)
//   window.__giaoban = {signaling, state, pc, conn}: pc is the current RTCPeerConnection
import { Signaling } from "./signaling.js";
import { Call } from "./room/call.js";
import { backoffDelay, shouldReconnect } from "./room/backoff.js";
import { fillDeviceSelect, openDevices, stopStream } from "./room/devices.js";
import { ConnectionProbe, formatRate, readVideo } from "./room/stats.js";
import { MinutesPanel } from "./room/minutes.js";
import { fitGrid, speakerLayout, splitTiles } from "./room/layout.js";
import { mark as phase } from "./room/timing.js";

phase("script"); // the join timed phase by phase only with ?timing (room/timing.js)

/**
 * @typedef {{id: string, person_id: number, unit_id: number | null, name: string, role: string,
 *   audio_muted: boolean, video_muted: boolean, hand_raised: boolean, screen_sharing: boolean}} Participant
 * @typedef {{participant_id: string, person_id: number, unit_id: number | null, name: string, since: string,
 *   reason: string}} Waiting
 * @typedef {{occurrence: number, token: string, ws: string, name: string, personId: number, unit: string,
 *   mutedByDefault: boolean, units: Record<string, {name: string, centre: boolean}>,
 *   minutes?: {api: string, editor: boolean}, invited?: number[], start?: string,
 *   iceServers?: RTCIceServer[], iceTtl?: number}} RoomConfig
 * @typedef {{kind: string, personId: number | null, source: string, track: MediaStreamTrack | null}} Slot
 * @typedef {{mid: string, spatial: number | null, temporal: number | null, width: number | null,
 *   height: number | null, paused: boolean}} Layer
 * @typedef {{participant: string, person_id: number, downlink_bps: number | null, uplink_bps: number | null,
 *   loss: number | null, rtt_ms: number | null, width: number | null, height: number | null, paused: boolean,
 *   audio_only: boolean}} Link
 */

const STATS_EVERY_MS = 2000;
const PING_EVERY_MS = 10_000;
const SILENCE_MS = 25_000; // a ping unanswered this long: the socket is dead
const MEDIA_GRACE_MS = 2000; // a peer connection "disconnected" this long: is the socket alive?
const MEDIA_RETRY_MS = 1000; // new peer connections on a live socket at most this often
// The pre-join screen prepares the peer connection (room/call.js) unless something set this false
// before the page ran: the benchmark's baseline (bench/join.py), the join as before #18.
const PREPARE = /** @type {any} */ (window).__giaobanPrepare !== false;
const TILES_DEBOUNCE_MS = 300; // tile sizes settle (a resize, a new layout) before the server hears them
// getUserMedia unsettled this long (a permission prompt left open, a camera driver that hangs):
// "Vào họp" is enabled anyway with a note; the devices join the call when they come.
const DEVICES_WAIT_MS = 8000;

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
  /** @type {MediaStreamTrack | null} the screen being shared */
  screen: null,
  audioMuted: config.mutedByDefault,
  videoMuted: false,
  /** @type {boolean} the camera state to restore when audio-only mode ends */
  videoMutedBeforeAudioOnly: false,
  hand: false,
  audioOnly: false,
  /** @type {"grid" | "speaker"} */
  layout: "grid",
  /** @type {string} this connection's participant id (a reconnect gets a new one) */
  me: "",
  /** @type {Map<number, Participant>} by person id */
  participants: new Map(),
  /** @type {number[]} */
  queue: [],
  /** @type {Map<string, Slot>} by slot mid */
  slots: new Map(),
  /** @type {number | null} */
  speaking: null,
  /** @type {number | null} the last person other than us who was the dominant speaker */
  lastSpeaker: null,
  /** @type {Map<number, string>} connection quality level by person id */
  quality: new Map(),
  /** @type {string} "moderator" or "participant", from the `room` event */
  role: "participant",
  locked: false,
  /** @type {Waiting[]} moderators only */
  lobby: [],
  /** @type {Map<string, Layer>} what each of our video slots receives (`layer`), by mid */
  layers: new Map(),
  /** @type {Map<number, Link>} the SFU's view of a connection (`link`) by person id: ours, and everyone's for moderators */
  links: new Map(),
  /** @type {import("./signaling.js").Stats | null} our own last measure (getStats) */
  own: null,
  showStats: false,
};

/** The connection's life: attempts, timers, and whether it is over for good. */
const conn = {
  /** @type {Call | null} */
  call: null,
  attempt: 0,
  /** @type {ReturnType<typeof setTimeout> | null} the pending reconnect */
  timer: null,
  /** @type {ReturnType<typeof setTimeout> | null} media "disconnected" grace, or the next media restart */
  mediaTimer: null,
  /** @type {RTCIceServer[]} STUN and TURN: the page's, then the last `welcome`'s */
  iceServers: config.iceServers || [],
  /** @type {number} Date.now() when the current call was made (its TURN credentials) */
  callAt: 0,
  /** @type {number} Date.now() of the last new peer connection on a live socket */
  mediaRestartAt: 0,
  mediaRestarts: 0,
  /** @type {Call | null} the call whose media is lost, while a ping checks the socket (restartMedia) */
  mediaProbe: null,
  welcomed: false, // a first welcome came: from now on the page reconnects by itself
  seatedOnce: false, // seated at least once: a later `room` is a reconnect
  over: false, // left, ended, removed, denied, replaced: no more reconnects
  reconnects: 0,
  /** @type {number} Date.now() of the last ping sent on the current socket (0: none) */
  pingAt: 0,
  probe: new ConnectionProbe(),
  /** @type {{code: string, message: string} | null} the last `error` the server sent */
  lastError: null,
  /** @type {Map<string, import("./room/stats.js").VideoCounters>} the stats overlay's last reading */
  videoCounters: new Map(),
  /** @type {ReturnType<typeof setTimeout> | null} tile sizes waiting to be sent */
  tilesTimer: null,
  /** the last tile sizes sent on this call (JSON), so only changes go out */
  tilesSent: "",
  joining: false, // "Vào họp" pressed, the first welcome not come yet
  lateDevices: false, // the devices came while joining: a new call once seated
  /** @type {number} the preview being opened (a later device choice supersedes an earlier one) */
  previewAttempt: 0,
};

/** The side panels, and what is waiting in them. */
const panels = {
  /** @type {Set<string>} */
  open: new Set(),
  unreadChat: 0,
  openedOnce: false,
};
const PANELS = ["participants", "chair", "chat", "minutes"];
const phone = window.matchMedia("(max-width: 40rem)");
const wide = window.matchMedia("(min-width: 64rem)");

/** @type {Signaling} */
const signaling = new Signaling(config.ws);
/** The read-only minutes, followed live once seated. */
const minutesPanel = new MinutesPanel(config.minutes || { api: "", editor: false }, t);

// Tests read the peer connection's statistics and the connection state; nothing else uses this.
const debug = /** @type {any} */ (window);
debug.__giaoban = { signaling, state, conn, pc: null };

// ---- Pre-join ---------------------------------------------------------------------------------

/** Open (or reopen, after a device choice) the preview, and list the devices to choose from. */
async function openPreview() {
  const cameraSelect = /** @type {HTMLSelectElement} */ ($("camera-select"));
  const micSelect = /** @type {HTMLSelectElement} */ ($("mic-select"));
  const previous = state.local;
  state.local = null;
  stopStream(previous);
  const attempt = ++conn.previewAttempt;
  phase("gum-start");
  // The chosen devices; if they went away, any will do.
  const opening = openDevices(micSelect.value, cameraSelect.value).catch(() => openDevices("", ""));
  /** @type {Promise<"slow">} */
  const slow = new Promise((resolve) => setTimeout(() => resolve("slow"), DEVICES_WAIT_MS));
  const got = await Promise.race([opening, slow]).catch(() => null);
  if (got === "slow") {
    deviceNote(t.devices_slow);
    opening.then(
      (stream) => lateDevices(attempt, stream),
      () => attempt === conn.previewAttempt && deviceNote(t.no_devices),
    );
  } else if (got) {
    phase("gum-done");
    deviceNote("");
  } else {
    deviceNote(t.no_devices);
  }
  state.local = got === "slow" ? null : got;
  await showDevices();
}

/** The preview and the device lists for `state.local`. */
async function showDevices() {
  /** @type {HTMLVideoElement} */ ($("preview")).srcObject = state.local;
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  const tracks = state.local;
  fillDeviceSelect(/** @type {HTMLSelectElement} */ ($("camera-select")), devices, "videoinput", tracks?.getVideoTracks()[0], t.camera);
  fillDeviceSelect(/** @type {HTMLSelectElement} */ ($("mic-select")), devices, "audioinput", tracks?.getAudioTracks()[0], t.microphone);
}

/** @param {string} text the pre-join screen's note about the devices ("" hides it) */
function deviceNote(text) {
  const note = $("device-note");
  note.textContent = text;
  note.hidden = !text;
}

/**
 * The devices came after the join was let go without them: they join the call. On the pre-join
 * screen the prepared call takes them; seated, a new peer connection on the same socket offers
 * them (the SFU replaces the old one, as after a lost network); joining, once seated.
 * @param {number} attempt @param {MediaStream} stream
 */
async function lateDevices(attempt, stream) {
  if (attempt !== conn.previewAttempt || conn.over) {
    stopStream(stream); // a later choice, or the page is done
    return;
  }
  phase("gum-done");
  state.local = stream;
  deviceNote("");
  applyLocalMute();
  await showDevices();
  if (conn.seatedOnce) restartWithDevices();
  else if (conn.joining || conn.welcomed) conn.lateDevices = true; // in the lobby, or not seated yet
  else if (conn.call && !conn.call.useLocal(stream)) prepareCall();
  drawControls();
}

/** Seated without devices, they came: a new peer connection offers them. */
function restartWithDevices() {
  if (!signaling.open || conn.timer !== null) {
    conn.lateDevices = true; // reconnecting: once seated again
    return;
  }
  conn.lateDevices = false;
  if (conn.over || !conn.call) return;
  newCall({ restart: true });
  negotiate();
}

async function prejoin() {
  const audioBox = /** @type {HTMLInputElement} */ ($("want-audio"));
  const videoBox = /** @type {HTMLInputElement} */ ($("want-video"));
  audioBox.checked = !config.mutedByDefault;
  await openPreview();
  for (const id of ["camera-select", "mic-select"]) {
    $(id).addEventListener("change", async () => {
      await openPreview();
      // The new devices' tracks go on the prepared call; a new call if a kind came or went.
      if (conn.call && !conn.welcomed && !conn.call.useLocal(state.local)) prepareCall();
    });
  }
  // Leaving the pre-join screen: nothing was sent to the server, the peer connection just closes.
  window.addEventListener("pagehide", () => {
    if (!conn.welcomed) closeCall();
  });
  const button = /** @type {HTMLButtonElement} */ ($("join-button"));
  button.disabled = false;
  phase("prejoin-ready");
  button.addEventListener("click", () => {
    phase("click");
    state.audioMuted = !audioBox.checked;
    state.videoMuted = !videoBox.checked;
    applyLocalMute();
    startJoin();
  });
  prepareCall(); // while the person looks at the preview and chooses
}

/** The first join (from the pre-join screen, or "try again" when the meeting had not started). */
function startJoin() {
  const button = /** @type {HTMLButtonElement} */ ($("join-button"));
  button.disabled = true;
  button.textContent = t.joining;
  conn.joining = true;
  conn.lastError = null;
  setConnection("connecting");
  connect().catch((error) => {
    conn.joining = false;
    if (conn.welcomed) return; // the close handler reconnects
    button.disabled = false;
    button.textContent = t.join;
    const refused = conn.lastError;
    const early = config.start ? Date.now() < Date.parse(config.start) : false;
    if (refused && refused.code === "room_closed" && early) {
      showStatus("not-started", refused.message);
    } else if (refused && refused.code === "room_closed") {
      finish("ended", refused.message);
    } else {
      showStatus("");
      banner(refused ? refused.message : String(error.message || error));
    }
  });
}

// ---- Connecting, and coming back --------------------------------------------------------------

/** What the next offer offers: our devices, the screen share, audio-only. */
function wanted() {
  return { local: state.local, screen: state.screen, audioOnly: state.audioOnly };
}

/**
 * A new peer connection, prepared (transceivers, offer, ICE gathering) before it is needed: on the
 * pre-join screen, while a reconnect's socket opens, or to replace a lost one.
 * @param {{restart?: boolean}} [options]
 * @returns {Call}
 */
function newCall(options = {}) {
  closeCall();
  const call = new Call(signaling, conn.iceServers, options);
  conn.call = call;
  conn.callAt = Date.now();
  conn.probe = new ConnectionProbe();
  debug.__giaoban.pc = call.pc;
  call.pc.addEventListener("connectionstatechange", () => onMediaState(call));
  call.prepare(wanted()).catch(() => {});
  return call;
}

/** On the pre-join screen: start the peer connection, so that joining only sends its offer. */
function prepareCall() {
  if (!PREPARE || conn.welcomed || conn.over) return;
  try {
    newCall();
  } catch {
    closeCall(); // no peer connection here (a browser without WebRTC): the join makes one, or says why
  }
}

/**
 * One attempt: a new socket and `join`. With a prepared call its offer goes with `join` (answered
 * once seated); otherwise the call offers once seated (`room`).
 */
async function connect() {
  const ttl = (config.iceTtl || 43_200) * 1000;
  let call = conn.call && !conn.call.closed ? conn.call : null;
  // TURN credentials half way to expiring (a pre-join screen left open for hours): a new call.
  if (call && Date.now() - conn.callAt > ttl / 2) call = null;
  if (!call && PREPARE) call = newCall(); // a reconnect: prepared while the socket opens
  const offer = call ? call.takeOffer(wanted()) : null;
  if (call && !offer) call.refresh(wanted());
  phase("join-sent");
  const joining = signaling.join({
    occurrence: config.occurrence,
    token: config.token || undefined,
    audio: !state.audioMuted,
    video: !state.videoMuted,
    audioOnly: state.audioOnly,
    offer: offer ? { sdp: offer.sdp, sources: offer.sources } : undefined,
  });
  if (call && offer) {
    phase("offer-sent");
    call.expectAnswer(signaling.expectAnswer(), offer.key);
  }
  const welcome = await joining;
  phase("welcome", { participant: welcome.participant });
  conn.welcomed = true;
  conn.joining = false;
  conn.pingAt = 0;
  conn.iceServers = welcome.iceServers;
  state.me = welcome.participant;
  if (!call) newCallAfterWelcome();
}

/** The join as before #18 (the benchmark's baseline): the peer connection made once welcomed. */
function newCallAfterWelcome() {
  closeCall();
  const call = new Call(signaling, conn.iceServers);
  conn.call = call;
  conn.callAt = Date.now();
  conn.probe = new ConnectionProbe();
  debug.__giaoban.pc = call.pc;
  call.pc.addEventListener("connectionstatechange", () => onMediaState(call));
}

/**
 * The media is lost and the socket is not: a new peer connection on the same socket, offered at
 * once (its offer says `restart`: the SFU replaces the old one). No new socket, no new join, the
 * same devices; again at most every MEDIA_RETRY_MS while the network is still away.
 */
function restartMedia() {
  if (conn.over || !conn.welcomed || conn.timer !== null) return;
  if (!signaling.open) {
    lost("media");
    return;
  }
  if (conn.mediaTimer !== null) clearTimeout(conn.mediaTimer);
  conn.mediaTimer = null;
  const wait = conn.mediaRestartAt + MEDIA_RETRY_MS - Date.now();
  if (wait > 0) {
    conn.mediaTimer = setTimeout(restartMedia, wait);
    return;
  }
  conn.mediaRestartAt = Date.now();
  conn.mediaRestarts++;
  setConnection("reconnecting", "media");
  newCall({ restart: true });
  negotiate();
}

/**
 * The peer connection's state: failed, or disconnected for a moment, means a new one (on the same
 * socket when it is alive: restartMedia). "disconnected" may come back by itself first.
 * @param {Call} call
 */
function onMediaState(call) {
  if (call !== conn.call) return;
  const now = call.pc.connectionState;
  if (now === "connected") {
    if (conn.mediaTimer !== null) clearTimeout(conn.mediaTimer);
    conn.mediaTimer = null;
    conn.attempt = 0;
    setConnection("connected");
  } else if (!PREPARE && now === "failed") {
    lost("media"); // the baseline: a fresh join
  } else if (now === "failed") {
    restartMedia();
  } else if (now === "disconnected" && conn.mediaTimer === null) {
    conn.mediaTimer = setTimeout(() => {
      conn.mediaTimer = null;
      if (call !== conn.call || call.pc.connectionState === "connected") return;
      if (!PREPARE) {
        lost("media"); // the baseline: a fresh join after 4 s
        return;
      }
      // The network may be gone altogether: then this peer connection comes back by itself the
      // moment it returns (its checks go on, the SFU keeps it ~30 s), faster than any new one.
      // If the socket answers while the media does not, only the media path is broken: a new
      // peer connection on the same socket (restartMedia, from the `pong`).
      setConnection("reconnecting", "media");
      conn.mediaProbe = call;
      signaling.ping();
    }, PREPARE ? MEDIA_GRACE_MS : 4000);
  }
}

/** A `pong`: the socket is alive; if the media is still lost, a new peer connection on it. */
function onPong() {
  const call = conn.mediaProbe;
  conn.mediaProbe = null;
  if (call && call === conn.call && call.pc.connectionState !== "connected") restartMedia();
}

/**
 * The connection is lost: say so (and what is retried), and try again after a growing, jittered wait.
 * @param {"server" | "media"} [what] the signaling socket, or the sound and picture (peer connection)
 */
function lost(what = "server") {
  if (conn.over || conn.timer !== null) return;
  setConnection("reconnecting", what);
  conn.timer = setTimeout(reconnect, backoffDelay(conn.attempt++));
}

/**
 * A fresh join: new socket, new peer connection (the SFU cannot restart ICE), same mute state,
 * same hand; the server merges the attendance.
 */
async function reconnect() {
  conn.timer = null;
  if (conn.over) return;
  conn.reconnects++;
  signaling.forget();
  closeCall();
  try {
    await connect();
  } catch {
    lost(); // nothing if the close handler already scheduled the next attempt or gave up
  }
}

/** Drop the current peer connection and everything received on it. */
function closeCall() {
  if (conn.mediaTimer !== null) clearTimeout(conn.mediaTimer);
  conn.mediaTimer = null;
  if (conn.call) conn.call.close();
  conn.call = null;
  state.slots.clear();
  state.layers.clear();
  conn.tilesSent = "";
  conn.videoCounters.clear();
  $("audio-sink").replaceChildren();
}

/** @typedef {"left" | "removed" | "ended" | "denied" | "replaced" | "closed"} OverReason */

/** @type {Map<number, OverReason>} the room's final close codes (docs/signaling.md) */
const OVER_BY_CODE = new Map([[4100, "ended"], [4101, "removed"], [4102, "denied"], [4103, "replaced"]]);

/** @param {{code: number, reason: string}} detail the current socket closed */
function onClose({ code, reason }) {
  if (!conn.welcomed) return; // the first join failed: prejoin() says why and lets one try again
  if (!conn.over && shouldReconnect(code)) {
    lost();
    return;
  }
  const why = OVER_BY_CODE.get(code) || "closed";
  // The title says "ended" already; a removal's reason says who removed.
  finish(why, why === "ended" || code === 1000 ? "" : reason || t.closed);
}

/**
 * The meeting is over for this page (left, ended, removed, refused): no more reconnects, the
 * camera and microphone released, and a screen that says so in place of the room.
 * @param {OverReason} why @param {string} message
 */
function finish(why, message) {
  conn.over = true;
  if (conn.timer !== null) clearTimeout(conn.timer);
  conn.timer = null;
  minutesPanel.stop();
  closeCall();
  setConnection("closed");
  if (state.screen) state.screen.stop();
  stopStream(state.local);
  showOver(why, message);
}

/**
 * The end screen: what happened, what to do next, and a way back in where there is one
 * (after a removal, asking again means waiting in the lobby). The first reason shown stays.
 * @param {OverReason} why @param {string} message
 */
function showOver(why, message) {
  const over = $("over");
  if (!over.hidden) return;
  showStatus("");
  $("room").hidden = true;
  $("prejoin").hidden = true;
  over.dataset.reason = why;
  $("over-title").textContent = t[`over_${why}`];
  const said = $("over-message");
  said.textContent = message;
  said.hidden = !message;
  said.classList.toggle("warning", why === "removed" || why === "denied" || why === "closed");
  $("over-next").textContent = t[`over_${why}_next`];
  const rejoin = /** @type {HTMLAnchorElement} */ ($("over-rejoin"));
  const label = why === "removed" ? t.rejoin_lobby : why === "ended" || why === "denied" ? "" : t.rejoin;
  rejoin.textContent = label;
  rejoin.href = location.href;
  rejoin.hidden = !label;
  over.hidden = false;
  $("over-title").focus();
}

/**
 * @param {"connecting" | "connected" | "reconnecting" | "closed"} status
 * @param {"server" | "media"} [what] while reconnecting: what is retried
 */
function setConnection(status, what = "server") {
  $("room").dataset.connection = status;
  const shown = $("status").dataset.state;
  if (status === "connecting" && $("room").hidden) showStatus("connecting");
  else if (status === "reconnecting") {
    showStatus("reconnecting", `${what === "media" ? t.retry_media : t.retry_server} (${t.attempt} ${conn.attempt + 1})…`);
  } else if (status === "connected" || status === "closed") {
    if (shown === "reconnecting" || shown === "connecting") showStatus("");
  }
}

/** @typedef {"" | "connecting" | "reconnecting" | "lobby" | "not-started"} StatusScreen */

/**
 * A screen of its own over the page while not in the live room (or while coming back): what is
 * happening, what to do next, a way out. "" hides it.
 * @param {StatusScreen} what @param {string} [message]
 */
function showStatus(what, message = "") {
  const screen = $("status");
  const before = screen.dataset.state;
  screen.dataset.state = what;
  screen.hidden = !what;
  const banner = $("connection-banner");
  banner.textContent = t.reconnecting;
  banner.hidden = what !== "reconnecting";
  // The pre-join screen again only when a first join failed.
  $("prejoin").hidden = Boolean(what) || !$("room").hidden || !$("over").hidden;
  if (!what) return;
  $("status-title").textContent = t[`status_${what}`];
  $("status-message").textContent = message;
  $("status-next").textContent = t[`status_${what}_next`];
  const retry = $("status-retry");
  retry.textContent = t.try_again;
  retry.hidden = what !== "not-started";
  $("status-leave").textContent = what === "not-started" ? t.back_home : what === "connecting" ? t.cancel : t.leave;
  if (before !== what) (what === "not-started" ? retry : $("status-title")).focus();
}

/** Every few seconds: measure the connection and tell the server; check the socket is alive. */
async function measure() {
  const call = conn.call;
  if (!call || call.closed || call.pc.connectionState !== "connected" || !signaling.open) return;
  const stats = await conn.probe.sample(call.pc).catch(() => null);
  if (stats && call === conn.call) {
    signaling.stats(stats);
    state.own = stats;
    drawControls();
  }
  if (state.showStats) await drawStats();
}

/** A `ping` unanswered for SILENCE_MS means the network is gone without the socket noticing. */
function keepAlive() {
  if (conn.over || !conn.welcomed || !signaling.open) return;
  // Measured from our own ping, not from the last message: a background tab's timers are
  // throttled to one a minute, and a quiet room sends nothing for minutes.
  const unanswered = conn.pingAt > 0 && signaling.lastHeard < conn.pingAt;
  if (unanswered && Date.now() - conn.pingAt > SILENCE_MS) {
    signaling.forget();
    lost("server");
  } else if (!unanswered) {
    conn.pingAt = Date.now();
    signaling.ping();
  }
}

// ---- Room events ------------------------------------------------------------------------------

/** @param {any} room the `room` event: seated (first time, admitted from the lobby, or back) */
async function onRoom(room) {
  phase("room");
  const back = conn.seatedOnce;
  conn.seatedOnce = true;
  state.participants.clear();
  for (const p of room.participants) state.participants.set(p.person_id, p);
  state.queue = room.queue || [];
  state.role = room.role || "participant";
  state.locked = Boolean(room.locked);
  state.lobby = room.lobby || [];
  $("prejoin").hidden = true;
  $("room").hidden = false;
  $("banner").hidden = true;
  if ($("status").dataset.state !== "reconnecting") showStatus("");
  if (!panels.openedOnce) {
    panels.openedOnce = true;
    // The chair's panel beside the stage on a wide screen; everything else on demand.
    if (state.role === "moderator" && wide.matches) setPanel("chair", true, false);
  }
  minutesPanel.start();
  if (back) {
    // The room kept our state if we were away briefly; after a server restart it did not.
    signaling.mute(state.audioMuted, state.videoMuted);
    const me = state.participants.get(config.personId);
    if (!me || me.hand_raised !== state.hand) signaling.hand(state.hand);
    if (state.audioOnly) signaling.audioOnly(true);
  }
  draw();
  await negotiate();
  if (conn.lateDevices) restartWithDevices(); // they came while we were joining
}

/** Offer what we want now on the current call (first offer or renegotiation). */
async function negotiate() {
  const call = conn.call;
  if (!call) return;
  try {
    await call.negotiate({ local: state.local, screen: state.screen, audioOnly: state.audioOnly });
  } catch (error) {
    if (call === conn.call && !conn.over) lost("media");
    return;
  }
  if (call !== conn.call) return;
  for (const { mid, kind, track } of call.slots()) {
    const slot = state.slots.get(mid) || { kind, personId: null, source: "", track: null };
    slot.track = track;
    state.slots.set(mid, slot);
    if (kind === "audio") playAudio(mid, track);
  }
  drawGrid();
  conn.tilesSent = ""; // the server hears every size again after an answer (new slots, a new call)
  scheduleTiles();
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
  const current = audio.srcObject instanceof MediaStream ? audio.srcObject.getAudioTracks()[0] : undefined;
  if (current !== track) audio.srcObject = new MediaStream([track]);
  audio.play().catch(() => {});
}

/** @param {any} event a `stream` event: what one of our slots now carries */
function onStream(event) {
  const slot = state.slots.get(event.mid) || { kind: event.kind, personId: null, source: "", track: null };
  slot.personId = event.participant ? event.person_id : null;
  if (slot.personId === null) state.layers.delete(event.mid); // an empty slot receives nothing
  slot.source = event.source || "";
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

// ---- Our own microphone, camera, hand, screen and mode ----------------------------------------

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
  if (state.audioOnly) return; // no camera in audio-only mode
  state.videoMuted = !state.videoMuted;
  applyLocalMute();
  signaling.mute(state.audioMuted, state.videoMuted);
  drawControls();
  drawGrid();
}

function toggleHand() {
  state.hand = !state.hand;
  signaling.hand(state.hand);
  drawControls();
}

async function toggleScreen() {
  if (state.screen) {
    stopScreen();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const [track] = stream.getVideoTracks();
    if (!track) return;
    track.addEventListener("ended", () => {
      if (state.screen === track) stopScreen();
    });
    state.screen = track;
  } catch {
    banner(t.screen_failed);
    return;
  }
  drawControls();
  drawGrid();
  await negotiate();
}

function stopScreen() {
  const track = state.screen;
  state.screen = null;
  if (track) track.stop();
  drawControls();
  drawGrid();
  negotiate();
}

/** Audio-only: no incoming video, camera off; off again: the video slots and the camera come back. */
async function toggleAudioOnly() {
  state.audioOnly = !state.audioOnly;
  if (state.audioOnly) {
    state.videoMutedBeforeAudioOnly = state.videoMuted;
    state.videoMuted = true;
  } else {
    state.videoMuted = state.videoMutedBeforeAudioOnly;
  }
  applyLocalMute();
  signaling.audioOnly(state.audioOnly);
  signaling.mute(state.audioMuted, state.videoMuted);
  drawControls();
  drawGrid();
  await negotiate();
}

function toggleLayout() {
  state.layout = state.layout === "grid" ? "speaker" : "grid";
  drawControls();
  drawGrid();
}

function leave() {
  conn.over = true;
  signaling.leave();
  finish("left", "");
}

// ---- The side panels --------------------------------------------------------------------------

/**
 * Open or close one side panel (on a phone, one at a time: a full-height sheet). Opening moves
 * the focus into it, closing back to its button in the control bar.
 * @param {string} name @param {boolean} open @param {boolean} [focus]
 */
function setPanel(name, open, focus = true) {
  if (open && phone.matches) for (const other of panels.open) if (other !== name) setPanel(other, false, false);
  $(`panel-${name}`).hidden = !open;
  if (open) panels.open.add(name);
  else panels.open.delete(name);
  $(`open-${name}`).setAttribute("aria-expanded", String(open));
  $("drawer").hidden = panels.open.size === 0;
  if (open && name === "chat") panels.unreadChat = 0;
  drawCounts();
  if (!focus) return;
  if (!open) $(`open-${name}`).focus();
  else if (name === "chat") $("chat-text").focus();
  else $(`${name}-title`).focus();
}

/** The control bar's counts: unread chat, hands raised, people waiting in the lobby. */
function drawCounts() {
  /** @param {string} name @param {number} count @param {string} what */
  const count = (name, count, what) => {
    const badge = /** @type {HTMLElement} */ ($(`open-${name}`).querySelector(".count"));
    badge.textContent = count > 0 ? String(count) : "";
    badge.hidden = count === 0;
    badge.title = `${count} ${what}`;
    $(`open-${name}`).setAttribute("aria-description", count > 0 ? `${count} ${what}` : "");
  };
  count("chat", panels.unreadChat, t.unread);
  count("participants", state.queue.length, t.hands_count);
  count("chair", state.lobby.length, t.lobby_waiting);
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
  panel.hidden = !moderator() || $("room").hidden || conn.over;
  $("open-chair").hidden = !moderator();
  $("chair-strip").hidden = panel.hidden;
  if (!moderator() && panels.open.has("chair")) setPanel("chair", false, false);
  drawCounts();
  if (panel.hidden) return;
  drawRollcall();
  const lobbyCount = $("lobby-count");
  lobbyCount.textContent = `${t.lobby}: ${state.lobby.length}`;
  lobbyCount.dataset.waiting = String(state.lobby.length > 0);
  lobbyCount.setAttribute("aria-expanded", String(panels.open.has("chair")));
  $("chair-title").textContent = t.chair_panel;
  $("mute-all").textContent = t.mute_all;
  $("lower-hands").textContent = t.lower_hands;
  $("toggle-lock").textContent = state.locked ? t.unlock : t.lock;
  $("toggle-lock").setAttribute("aria-pressed", String(state.locked));
  $("end-meeting").textContent = t.end;
  const note = $("locked-note");
  note.textContent = t.locked;
  note.hidden = !state.locked;

  $("queue-title").textContent = `${t.queue} (${state.queue.length}):`;
  const queue = state.queue.map((personId) => {
    const p = state.participants.get(personId);
    const item = el("li");
    item.dataset.person = String(personId);
    item.append(el("span", `${state.queue.indexOf(personId) + 1}. ${p ? p.name : String(personId)}`, "queue-name"), " ");
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

/** The roll call by invited unit: present, not yet, on a weak link, audio only (camera off). */
function drawRollcall() {
  /** @type {Map<number, Participant[]>} */
  const byUnit = new Map();
  for (const p of state.participants.values()) {
    if (p.unit_id === null) continue;
    const list = byUnit.get(p.unit_id) || [];
    list.push(p);
    byUnit.set(p.unit_id, list);
  }
  const counts = { present: 0, absent: 0, weak: 0, audio: 0 };
  const items = (config.invited || []).map((unitId) => {
    const members = byUnit.get(unitId) || [];
    /** @type {"present" | "absent" | "weak" | "audio"} */
    let status = "present";
    if (members.length === 0) status = "absent";
    else if (members.some((p) => state.quality.get(p.person_id) === "poor")) status = "weak";
    else if (members.every((p) => p.video_muted)) status = "audio";
    counts[status]++;
    const item = el("li", unitName(unitId));
    item.dataset.unit = String(unitId);
    item.dataset.status = status;
    item.title = `${unitName(unitId)}: ${t[`rollcall_${status}`]}`;
    item.setAttribute("aria-label", item.title);
    return item;
  });
  // Not yet here first: that is what the chair looks for.
  items.sort((a, b) => Number(b.dataset.status === "absent") - Number(a.dataset.status === "absent"));
  $("rollcall").replaceChildren(...items);
  const here = counts.present + counts.weak + counts.audio;
  $("rollcall-summary").textContent =
    `${t.rollcall}: ${here}/${items.length} ${t.rollcall_present} · ${counts.absent} ${t.rollcall_absent}` +
    ` · ${counts.weak} ${t.rollcall_weak} · ${counts.audio} ${t.rollcall_audio}`;
}

/**
 * An icon from the page's sprite (#i-mic, …).
 * @param {string} name @param {string} [className]
 */
function icon(name, className = "") {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", `icon ${className}`.trim());
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(ns, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

/**
 * A small mark on a tile: an icon with a tooltip.
 * @param {string} name @param {string} className @param {string} text
 */
function mark(name, className, text) {
  const node = el("span", "", className);
  node.title = text;
  node.append(icon(name));
  return node;
}

/** Initials for a tile without video ("Nguyễn Văn An" → "NA"). @param {string} name */
function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return "?";
  const first = words[0][0];
  const last = words.length > 1 ? words[words.length - 1][0] : "";
  return (first + last).toUpperCase();
}

/**
 * A tile, made on first use: video, placeholder (large initials), a one-line caption.
 * @param {HTMLElement} grid @param {string} selector @param {(tile: HTMLElement) => void} mark
 * @returns {HTMLElement}
 */
function tileFor(grid, selector, mark) {
  let tile = /** @type {HTMLElement | null} */ (grid.querySelector(selector));
  if (tile) return tile;
  tile = el("figure", "", "tile");
  mark(tile);
  const video = el("video");
  video.autoplay = true;
  video.muted = true; // sound comes from the audio slots
  video.playsInline = true;
  const placeholder = el("div", "", "tile-placeholder");
  placeholder.setAttribute("aria-hidden", "true");
  placeholder.append(el("span", "", "tile-initials"));
  const caption = el("figcaption");
  const label = el("span", "", "tile-label");
  label.append(el("strong", "", "tile-name"), el("span", "", "tile-unit"));
  caption.append(label, el("span", "", "tile-icons"), el("span", "", "tile-state"));
  const paused = el("p", "", "tile-paused");
  paused.setAttribute("role", "status");
  tile.append(video, placeholder, paused, caption);
  $("stage-main").append(tile);
  tileObserver.observe(tile);
  return tile;
}

/**
 * Show a track (or nothing) in a tile.
 * @param {HTMLElement} tile @param {MediaStreamTrack | undefined} track @param {boolean} show
 */
function showVideo(tile, track, show) {
  const video = /** @type {HTMLVideoElement} */ (tile.querySelector("video"));
  const current = video.srcObject instanceof MediaStream ? video.srcObject.getVideoTracks()[0] : undefined;
  if (track !== current) video.srcObject = track ? new MediaStream([track]) : null;
  video.hidden = !track || !show;
  tile.classList.toggle("no-video", video.hidden);
}

/**
 * Put a tile in a box of the stage (the big area or the strip), keeping its video playing.
 * @param {HTMLElement} box @param {HTMLElement} tile
 */
function place(box, tile) {
  box.append(tile); // at the end: the order asked for
  const video = /** @type {HTMLVideoElement} */ (tile.querySelector("video"));
  if (video.srcObject && video.paused) video.play().catch(() => {});
}

/** @param {HTMLElement} tile @param {string} selector @param {string} text */
function setText(tile, selector, text) {
  /** @type {HTMLElement} */ (tile.querySelector(selector)).textContent = text;
}

/**
 * One tile per participant, one per screen share, laid out to fill the stage: a grid (the
 * videos large, the others compact once the room is crowded), the speaker view (the speaker or
 * the chair large, a strip of the others), or a screen share on the stage with the speaker in
 * its corner. The sizes come from the stage's own size (room/layout.js), redrawn on resize.
 */
function drawGrid() {
  const grid = $("grid");
  /** @type {Map<number, MediaStreamTrack>} */
  const cameraOf = new Map();
  /** @type {Map<number, MediaStreamTrack>} */
  const screenOf = new Map();
  /** @type {Map<string, string>} the video slot (mid) carrying each tile's picture, by "p<person>"/"s<person>" */
  const midOf = new Map();
  if (!state.audioOnly) {
    for (const [mid, slot] of state.slots) {
      if (slot.kind !== "video" || slot.personId === null || !slot.track) continue;
      (slot.source === "screen" ? screenOf : cameraOf).set(slot.personId, slot.track);
      midOf.set(`${slot.source === "screen" ? "s" : "p"}${slot.personId}`, mid);
    }
  }
  if (state.screen) screenOf.set(config.personId, state.screen);
  const seen = new Set();
  for (const p of state.participants.values()) {
    const key = String(p.person_id);
    seen.add(`p${key}`);
    const tile = tileFor(grid, `.tile[data-person="${key}"]`, (tile) => (tile.dataset.person = key));
    const mine = p.id === state.me;
    const track = mine ? state.local?.getVideoTracks()[0] : cameraOf.get(p.person_id);
    const paused = markLayer(tile, mine ? undefined : midOf.get(`p${key}`)) && !p.video_muted;
    showVideo(tile, state.audioOnly ? undefined : track, !(mine ? state.videoMuted : p.video_muted) && !paused);
    const speaking = state.speaking === p.person_id;
    setText(tile, ".tile-initials", initials(p.name));
    setText(tile, ".tile-name", mine ? `${p.name} (${t.you})` : p.name);
    setText(tile, ".tile-unit", unitName(p.unit_id));
    const level = state.quality.get(p.person_id);
    const icons = [];
    if (p.audio_muted) icons.push(mark("mic-off", "muted-mic", t.muted));
    if (p.hand_raised) icons.push(mark("hand", "hand", t.hand_raised));
    if (level) {
      const dot = el("span", "", "quality-dot");
      dot.dataset.level = level;
      dot.title = qualityText(level);
      icons.push(dot);
    }
    /** @type {HTMLElement} */ (tile.querySelector(".tile-icons")).replaceChildren(...icons);
    const marks = [p.audio_muted ? t.muted : "", p.hand_raised ? t.hand_raised : "", speaking ? t.speaking : ""];
    setText(tile, ".tile-state", marks.filter(Boolean).join(" · "));
    tile.classList.toggle("speaking", speaking);
    tile.dataset.speaking = String(speaking);
    tile.dataset.muted = String(p.audio_muted);
    tile.dataset.hand = String(p.hand_raised);
  }
  for (const [personId, track] of screenOf) {
    const key = String(personId);
    seen.add(`s${key}`);
    const tile = tileFor(grid, `.tile[data-screen="${key}"]`, (tile) => {
      tile.dataset.screen = key;
      tile.classList.add("screen");
    });
    const paused = personId !== config.personId && markLayer(tile, midOf.get(`s${key}`));
    showVideo(tile, track, !paused);
    const p = state.participants.get(personId);
    setText(tile, ".tile-name", `${t.screen}: ${p ? p.name : ""}`);
  }
  // A tile in a shared screen's corner goes back to the stage first (the screen may be going).
  for (const node of Array.from(grid.querySelectorAll(".tile .tile"))) place($("stage-main"), /** @type {HTMLElement} */ (node));
  for (const node of Array.from(grid.querySelectorAll(".tile"))) {
    const tile = /** @type {HTMLElement} */ (node);
    const key = tile.dataset.screen !== undefined ? `s${tile.dataset.screen}` : `p${tile.dataset.person}`;
    if (!seen.has(key)) {
      tileObserver.unobserve(tile);
      tile.remove();
    }
  }
  // Speaker view: a screen share first, else the one speaking (or who spoke last) other than us,
  // else the chair, else anyone but us: one's own picture is in the strip.
  if (state.speaking !== null && state.speaking !== config.personId) state.lastSpeaker = state.speaking;
  const chair = Array.from(state.participants.values()).find((p) => p.role === "moderator" && p.id !== state.me);
  const speakerTile = /** @type {HTMLElement | null} */ (
    (state.lastSpeaker !== null ? grid.querySelector(`.tile[data-person="${state.lastSpeaker}"]`) : null) ||
    (chair ? grid.querySelector(`.tile[data-person="${chair.person_id}"]`) : null) ||
    grid.querySelector(`.tile[data-person]:not([data-person="${config.personId}"])`));
  const screenTile = screenOf.size > 0 ? grid.querySelector(".tile.screen") : null;
  const main = /** @type {HTMLElement | null} */ (screenTile || speakerTile || grid.querySelector(".tile"));
  const arrangement = screenTile ? "share" : state.layout;
  const tiles = /** @type {HTMLElement[]} */ (Array.from(grid.querySelectorAll(".tile")));
  for (const tile of tiles) tile.classList.remove("main", "pip", "compact");
  const box = { main: $("stage-main"), strip: $("filmstrip") };
  const { width, height } = stageSize();
  if (arrangement === "grid") {
    // The pictures first (ours, then those the server forwards), then the others.
    const ordered = tiles.slice().sort((a, b) => Number(a.classList.contains("no-video")) - Number(b.classList.contains("no-video")));
    const videos = ordered.filter((tile) => !tile.classList.contains("no-video")).length;
    const split = splitTiles(ordered.length, videos, width, height);
    ordered.forEach((tile, i) => {
      tile.classList.toggle("compact", i >= split.large);
      place(i < split.large ? box.main : box.strip, tile);
    });
    grid.dataset.strip = "bottom";
    const band = compactBand(split.compact, width, height);
    const fit = fitGrid(width, height - band - (band > 0 ? GAP : 0), split.large, { gap: GAP });
    grid.style.setProperty("--tile-w", `${fit.width}px`);
    grid.style.setProperty("--tile-h", `${fit.height}px`);
  } else {
    const others = tiles.filter((tile) => tile !== main && !(arrangement === "share" && tile === speakerTile));
    if (main) {
      main.classList.add("main");
      place(box.main, main);
    }
    if (arrangement === "share" && main && speakerTile && speakerTile !== main) {
      speakerTile.classList.add("pip"); // in the shared screen's corner
      place(main, speakerTile);
    }
    const fit = speakerLayout(width, height, others.length, { gap: GAP });
    const compact = fit.strip.width < 140;
    for (const tile of others) {
      tile.classList.toggle("compact", compact);
      place(box.strip, tile);
    }
    grid.dataset.strip = fit.stripSide;
    grid.style.setProperty("--main-w", `${fit.main.width}px`);
    grid.style.setProperty("--main-h", `${fit.main.height}px`);
    grid.style.setProperty("--strip-tile-w", `${fit.strip.width}px`);
    grid.style.setProperty("--strip-tile-h", `${fit.strip.height}px`);
    grid.style.setProperty("--strip-w", `${compact ? 180 : Math.max(120, Math.round(width * 0.2))}px`);
  }
  grid.dataset.layout = state.layout;
  grid.dataset.arrangement = arrangement;
  grid.classList.toggle("speaker-view", arrangement !== "grid");
  grid.dataset.count = String(state.participants.size);
  scheduleTiles();
}

/**
 * Which slot a tile shows, and whether the forwarding unit paused it for bandwidth (the label
 * over the initials says so until it resumes).
 * @param {HTMLElement} tile @param {string | undefined} mid
 * @returns {boolean} paused
 */
function markLayer(tile, mid) {
  const layer = mid === undefined ? undefined : state.layers.get(mid);
  const paused = Boolean(layer && layer.paused);
  if (mid === undefined) delete tile.dataset.mid;
  else tile.dataset.mid = mid;
  tile.dataset.paused = String(paused);
  setText(tile, ".tile-paused", paused ? t.video_paused : "");
  return paused;
}

/** Tell the server the tile sizes soon (once they settle), if they changed. */
function scheduleTiles() {
  if (conn.tilesTimer !== null) return;
  conn.tilesTimer = setTimeout(() => {
    conn.tilesTimer = null;
    sendTiles();
  }, TILES_DEBOUNCE_MS);
}

function sendTiles() {
  if (!conn.call || conn.call.closed || !signaling.open) return;
  const sizes = tileSizes();
  const json = JSON.stringify(sizes);
  if (Object.keys(sizes).length === 0 || json === conn.tilesSent) return;
  conn.tilesSent = json;
  signaling.tiles(sizes);
}

/**
 * The rendered size of the tile showing each video slot, in device pixels: a compact tile, an
 * empty slot, audio-only mode or a hidden page are 0×0 (no picture needed). A paused tile keeps
 * its size: that is what it will show when the link allows.
 * @returns {Record<string, [number, number]>}
 */
function tileSizes() {
  const grid = $("grid");
  const ratio = window.devicePixelRatio || 1;
  /** @type {Record<string, [number, number]>} */
  const sizes = {};
  for (const [mid, slot] of state.slots) {
    if (slot.kind !== "video") continue;
    let size = /** @type {[number, number]} */ ([0, 0]);
    if (!document.hidden && !state.audioOnly && slot.personId !== null) {
      const selector = slot.source === "screen" ? `.tile[data-screen="${slot.personId}"]` : `.tile[data-person="${slot.personId}"]`;
      const tile = /** @type {HTMLElement | null} */ (grid.querySelector(selector));
      if (tile && !tile.classList.contains("compact")) {
        const box = tile.getBoundingClientRect();
        size = [Math.min(100_000, Math.round(box.width * ratio)), Math.min(100_000, Math.round(box.height * ratio))];
      }
    }
    sizes[mid] = size;
  }
  return sizes;
}

/** A tile's size changed (a resize, a new layout): the server hears it once it settles. */
const tileObserver = new ResizeObserver(() => scheduleTiles());

/**
 * The stats overlay: the connection as the forwarding unit sees it, and per received video
 * its layer, frames per second, loss, freezes and jitter buffer delay (getStats, every 2 s).
 */
async function drawStats() {
  const overlay = $("stats-overlay");
  overlay.hidden = !state.showStats;
  if (!state.showStats) return;
  $("stats-title").textContent = t.stats_title;
  const call = conn.call;
  const link = state.links.get(config.personId);
  const own = state.own;
  const loss = link && link.loss !== null ? link.loss : own ? own.lossPct : null;
  const rtt = link && link.rtt_ms !== null ? link.rtt_ms : own ? own.rttMs : null;
  const lang = document.documentElement.lang || "vi";
  $("stats-link").textContent =
    `${t.stats_estimate}: ${t.stats_receive} ${formatRate(link ? link.downlink_bps : null, lang)}, ` +
    `${t.stats_send} ${formatRate(link ? link.uplink_bps : null, lang)} · ${t.stats_loss} ` +
    `${loss === null ? "–" : `${loss.toLocaleString(lang, { maximumFractionDigits: 1 })} %`} · ${t.stats_rtt} ${rtt === null ? "–" : `${rtt} ms`}`;
  /** @type {import("./room/stats.js").VideoFigures[]} */
  let figures = [];
  /** @type {Map<string, string>} what each camera layer sends now, by rid */
  const sent = new Map();
  if (call && !call.closed) {
    const report = await call.pc.getStats().catch(() => null);
    if (report && call === conn.call) {
      figures = readVideo(report, conn.videoCounters, performance.now());
      report.forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video" && s.rid && call.camera && s.mid === call.camera.mid) {
          sent.set(s.rid, s.frameWidth ? `${s.frameWidth}×${s.frameHeight}` : "–");
        }
      });
    }
  }
  // Our camera's simulcast layers: those the server asked for (`layers_wanted`), the others off.
  const encodings = call && call.camera ? call.camera.sender.getParameters().encodings || [] : [];
  const layers = encodings
    .filter((e) => e.rid)
    .map((e) => `${e.rid} ${e.active === false ? t.stats_off : sent.get(/** @type {string} */ (e.rid)) || "–"}`);
  const send = $("stats-send");
  send.textContent = layers.length > 0 ? `${t.stats_sending}: ${layers.join(" · ")}` : "";
  send.hidden = layers.length === 0;
  const head = el("tr");
  for (const name of ["", t.stats_layer, t.stats_fps, t.stats_loss, t.stats_freezes, t.stats_jitter]) head.append(el("th", name));
  const rows = [head];
  for (const video of figures) {
    const slot = state.slots.get(video.mid);
    if (!slot || slot.personId === null) continue;
    const person = state.participants.get(slot.personId);
    const layer = state.layers.get(video.mid);
    const row = el("tr");
    row.dataset.mid = video.mid;
    const name = `${slot.source === "screen" ? `${t.screen}: ` : ""}${person ? person.name : slot.personId}`;
    let shown = video.width > 0 ? `${video.width}×${video.height}` : "–";
    if (layer && layer.paused) shown = t.video_paused;
    else if (layer && layer.spatial !== null) shown += ` (S${layer.spatial}${layer.temporal !== null ? ` T${layer.temporal}` : ""})`;
    for (const text of [name, shown, String(video.fps), `${video.lossPct} %`, String(video.freezes), `${video.jitterMs} ms`]) {
      row.append(el("td", text));
    }
    rows.push(row);
  }
  if (rows.length === 1) {
    const row = el("tr");
    const cell = el("td", t.stats_no_video);
    cell.colSpan = 6;
    row.append(cell);
    rows.push(row);
  }
  /** @type {HTMLElement} */ ($("stats-videos").querySelector("tbody")).replaceChildren(...rows);
}

function toggleStats() {
  state.showStats = !state.showStats;
  drawControls();
  drawStats();
}

const GAP = 8;
const COMPACT = { width: 176, height: 56, gap: 6 };

/** The stage's inner size in CSS pixels (the grid's box). */
function stageSize() {
  const grid = $("grid");
  return { width: grid.clientWidth, height: grid.clientHeight };
}

/**
 * The height the compact tiles' band takes under the large tiles (it scrolls beyond 40 %).
 * @param {number} count @param {number} width @param {number} height
 */
function compactBand(count, width, height) {
  if (count <= 0) return 0;
  const cols = Math.max(1, Math.floor((width + COMPACT.gap) / (COMPACT.width + COMPACT.gap)));
  const rows = Math.ceil(count / cols);
  return Math.min(rows * COMPACT.height + (rows - 1) * COMPACT.gap, Math.floor(height * 0.4));
}

/**
 * What a connection receives, for the chair's panel: its largest video ("640×360"), or "audio
 * only" (its own choice, or paused for bandwidth); "" while unknown.
 * @param {Link | undefined} link
 */
function layerText(link) {
  if (!link) return "";
  if (link.audio_only || link.paused) return t.layer_audio_only;
  return link.width && link.height ? `${link.width}×${link.height}` : "";
}

/**
 * The participants panel's badge of what a connection receives (moderators), after its name.
 * @param {HTMLElement} item @param {Link | undefined} link
 */
function markReceives(item, link) {
  const text = layerText(link);
  let badge = /** @type {HTMLElement | null} */ (item.querySelector(".layer"));
  if (!badge) {
    badge = el("span", "", "badge layer");
    /** @type {HTMLElement} */ (item.querySelector(".participant-name")).after(badge);
  }
  badge.textContent = text;
  badge.title = `${t.layer_receives}: ${text}`;
  badge.hidden = !text;
  item.dataset.layer = text;
}

/** @param {string | undefined} level */
function qualityText(level) {
  return level ? t[`quality_${level}`] || level : t.quality_unknown;
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
      const level = state.quality.get(p.person_id);
      item.dataset.person = String(p.person_id);
      item.dataset.muted = String(p.audio_muted);
      item.dataset.hand = String(p.hand_raised);
      item.dataset.camera = String(!p.video_muted);
      item.dataset.screen = String(p.screen_sharing);
      item.dataset.speaking = String(state.speaking === p.person_id);
      item.dataset.quality = level || "unknown";
      const dot = el("span", "", "quality-dot");
      dot.dataset.level = level || "unknown";
      dot.title = qualityText(level);
      dot.setAttribute("role", "img");
      dot.setAttribute("aria-label", qualityText(level));
      item.append(dot, el("span", p.id === state.me ? `${p.name} (${t.you})` : p.name, "participant-name"));
      if (p.audio_muted) item.append(el("span", t.muted, "badge"));
      if (p.video_muted) item.append(el("span", t.camera_is_off, "badge"));
      if (p.screen_sharing) item.append(el("span", t.sharing, "badge"));
      if (moderator()) markReceives(item, state.links.get(p.person_id));
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

/**
 * A toggle button's text and pressed state.
 * @param {string} id @param {boolean} pressed @param {string} text
 */
function setToggle(id, pressed, text) {
  const button = $(id);
  setLabel(id, text);
  button.setAttribute("aria-pressed", String(pressed));
}

/**
 * A control bar button's label (shown under its icon, as a tooltip, and read out).
 * @param {string} id @param {string} text
 */
function setLabel(id, text) {
  const button = $(id);
  /** @type {HTMLElement} */ (button.querySelector(".ctl-label")).textContent = text;
  button.title = text;
}

function drawControls() {
  setToggle("toggle-audio", state.audioMuted, state.audioMuted ? t.unmute : t.mute);
  setToggle("toggle-video", state.videoMuted, state.videoMuted ? t.camera_on : t.camera_off);
  /** @type {HTMLButtonElement} */ ($("toggle-video")).disabled = state.audioOnly || conn.over;
  setToggle("toggle-hand", state.hand, state.hand ? t.lower_hand : t.raise_hand);
  setToggle("toggle-screen", state.screen !== null, state.screen ? t.stop_share : t.share_screen);
  setToggle("toggle-audio-only", state.audioOnly, state.audioOnly ? t.audio_only_off : t.audio_only_on);
  setToggle("toggle-layout", state.layout === "speaker", state.layout === "speaker" ? t.grid_view : t.speaker_view);
  setToggle("toggle-stats", state.showStats, t.stats);
  setLabel("leave", t.leave);
  setLabel("open-participants", t.participants);
  setLabel("open-chat", t.chat);
  setLabel("open-minutes", t.minutes);
  setLabel("open-chair", t.chair_short);
  for (const name of PANELS) {
    /** @type {HTMLElement} */ ($(`panel-${name}`).querySelector(".panel-close") || $("open-chair")).title = t.close;
  }
  $("room").dataset.audioOnly = String(state.audioOnly);
  const level = state.quality.get(config.personId);
  const quality = $("quality");
  quality.dataset.level = level || "unknown";
  quality.textContent = qualityText(level);
  // The figures behind the level: the forwarding unit's estimate, loss and round trip, else our own.
  const link = state.links.get(config.personId);
  const own = state.own;
  const lang = document.documentElement.lang || "vi";
  const figures = [];
  if (link && link.downlink_bps !== null) figures.push(`↓ ${formatRate(link.downlink_bps, lang)}`);
  const loss = link && link.loss !== null ? link.loss : own ? own.lossPct : null;
  const rtt = link && link.rtt_ms !== null ? link.rtt_ms : own ? own.rttMs : null;
  if (loss !== null) figures.push(`${t.stats_loss} ${loss.toLocaleString(lang, { maximumFractionDigits: 1 })} %`);
  if (rtt !== null) figures.push(`${Math.round(rtt)} ms`);
  // The figures alone while the level is still being measured ("Measuring… · 45 ms" reads oddly).
  if (!level && figures.length > 0) quality.textContent = "";
  if (figures.length > 0) quality.append(el("span", `${level ? " · " : ""}${figures.join(" · ")}`, "quality-figures"));
  quality.title = [qualityText(level), ...figures].join(" · ");
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
  if (!panels.open.has("chat")) {
    panels.unreadChat++;
    drawCounts();
  }
}

// ---- Wiring -----------------------------------------------------------------------------------

/**
 * Listen to one server event.
 * @param {string} type @param {(detail: any) => void} handler
 */
function on(type, handler) {
  signaling.addEventListener(type, (event) => handler(/** @type {CustomEvent} */ (event).detail));
}

on("room", (room) => onRoom(room));
on("pong", onPong);
on("waiting", () => {
  signaling.dropAnswer(); // an offer sent with `join` is not answered from the lobby
  showStatus("lobby", t.waiting);
});
on("joined", (detail) => upsert(detail.participant));
on("state", onState);
on("left", (detail) => {
  const p = state.participants.get(detail.person_id);
  if (p && p.id === detail.participant_id) state.participants.delete(detail.person_id);
  draw();
});
on("queue", (detail) => {
  state.queue = detail.queue;
  draw();
});
on("stream", onStream);
on("speaking", (detail) => {
  state.speaking = detail.person_id;
  drawGrid();
  // Only the marks: redrawing the list at each change of speaker would move buttons under the pointer.
  for (const item of Array.from($("participants").querySelectorAll("li[data-person]"))) {
    const li = /** @type {HTMLElement} */ (item);
    li.dataset.speaking = String(li.dataset.person === String(state.speaking));
  }
});
on("quality", (detail) => {
  if (detail.level) state.quality.set(detail.person_id, detail.level);
  else state.quality.delete(detail.person_id);
  drawParticipants();
  drawControls();
  drawGrid();
  if (moderator()) drawRollcall();
});
on("layer", (detail) => {
  const mid = String(detail.mid);
  const slot = state.slots.get(mid);
  if (!slot || slot.kind !== "video") return; // not one of our video slots
  /** @param {unknown} n */
  const int = (n) => (typeof n === "number" && Number.isFinite(n) ? n : null);
  state.layers.set(mid, {
    mid,
    spatial: int(detail.spatial),
    temporal: int(detail.temporal),
    width: int(detail.width),
    height: int(detail.height),
    paused: detail.paused === true,
  });
  drawGrid();
  if (state.showStats) drawStats();
});
on("layers_wanted", (detail) => {
  const call = conn.call;
  if (!call || !Array.isArray(detail.rids)) return;
  const rids = detail.rids.filter((/** @type {unknown} */ rid) => typeof rid === "string");
  call.setLayers(String(detail.mid), rids).catch(() => {}); // an unknown mid changes nothing
});
on("link", (detail) => {
  if (typeof detail.person_id !== "number") return;
  state.links.set(detail.person_id, /** @type {Link} */ (detail));
  drawControls();
  // Only the badge: redrawing the list at each new estimate would move buttons under the pointer.
  const item = $("participants").querySelector(`li[data-person="${detail.person_id}"]`);
  if (item && moderator()) markReceives(/** @type {HTMLElement} */ (item), state.links.get(detail.person_id));
  if (state.showStats) drawStats();
});
on("lobby", (detail) => {
  state.lobby = detail.lobby || [];
  drawChair();
});
on("locked", (detail) => {
  state.locked = Boolean(detail.locked);
  drawChair();
});
on("chat", onChat);
on("ended", () => {
  conn.over = true;
  banner(t.ended);
});
on("error", (detail) => {
  conn.lastError = { code: String(detail.code || ""), message: String(detail.message || "") };
  banner(detail.message);
});
on("close", onClose);

$("toggle-audio").addEventListener("click", toggleAudio);
$("toggle-video").addEventListener("click", toggleVideo);
$("toggle-hand").addEventListener("click", toggleHand);
$("toggle-screen").addEventListener("click", () => toggleScreen());
$("toggle-audio-only").addEventListener("click", () => toggleAudioOnly());
$("toggle-layout").addEventListener("click", toggleLayout);
$("toggle-stats").addEventListener("click", toggleStats);
document.addEventListener("visibilitychange", () => scheduleTiles()); // a hidden page needs no picture
$("leave").addEventListener("click", leave);
$("mute-all").addEventListener("click", () => signaling.moderate("mute_all"));
$("lower-hands").addEventListener("click", () => signaling.moderate("lower_hands"));
$("toggle-lock").addEventListener("click", () => signaling.moderate(state.locked ? "unlock" : "lock"));
$("end-meeting").addEventListener("click", () => {
  if (window.confirm(t.end_confirm)) signaling.moderate("end");
});
$("shortcuts").textContent = t.shortcuts;
for (const name of PANELS) {
  $(`open-${name}`).addEventListener("click", () => setPanel(name, !panels.open.has(name)));
  const close = $(`panel-${name}`).querySelector(".panel-close");
  if (close) {
    close.textContent = t.close;
    close.addEventListener("click", () => setPanel(name, false));
  }
}
$("lobby-count").addEventListener("click", () => setPanel("chair", true));
$("drawer").addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const panel = /** @type {HTMLElement | null} */ (/** @type {HTMLElement} */ (event.target).closest(".panel"));
  if (panel && panel.dataset.panel) setPanel(panel.dataset.panel, false);
});
$("status-retry").addEventListener("click", () => startJoin());
$("status-leave").addEventListener("click", () => {
  const what = $("status").dataset.state;
  if (what === "not-started") location.assign(/** @type {HTMLAnchorElement} */ ($("over-home")).href);
  else if (conn.welcomed) leave();
  else location.reload(); // still connecting: back to the pre-join screen
});
new ResizeObserver(() => {
  if (!$("room").hidden) drawGrid();
}).observe($("stage"));
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($("chat-text"));
  const text = input.value.trim();
  if (text) signaling.chat(text);
  input.value = "";
});
document.addEventListener("keydown", (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  if ($("room").hidden || conn.over || event.ctrlKey || event.metaKey || event.altKey) return;
  if (target.closest("input, textarea, select")) return;
  const key = event.key.toLowerCase();
  if (key === "m") toggleAudio();
  else if (key === "v") toggleVideo();
  else if (key === "h") toggleHand();
  else if (key === "s") toggleStats();
  else return;
  event.preventDefault();
});
setInterval(measure, STATS_EVERY_MS);
setInterval(keepAlive, PING_EVERY_MS);
if (!navigator.mediaDevices || !("getDisplayMedia" in navigator.mediaDevices)) $("toggle-screen").hidden = true;
drawControls();
prejoin();
