// The join, phase by phase (docs/media.md, bench/join.py): off unless the page was opened with
// `?timing` in its address or something set `window.__giaobanTiming = true` before it ran (the
// benchmark does, from an init script). When on, each phase's first moment is kept once, as
// wall-clock milliseconds (performance.timeOrigin + performance.now(), comparable with the
// server's time.time()), as a `performance.mark`, and in a hidden element any reader can take
// through a locator (the page's CSP forbids evaluating strings):
//   <output id="join-timing" hidden>{"script": 1765000000123.4, "gum-start": …}</output>
// Nothing else changes: when off, `mark` returns at once and nothing is added to the page.

const on =
  typeof window !== "undefined" &&
  (/** @type {any} */ (window).__giaobanTiming === true || new URLSearchParams(location.search).has("timing"));

/** @type {Record<string, number | string>} */
const marks = {};
/** @type {HTMLElement | null} */
let out = null;

/** Whether the join is being timed. */
export function timing() {
  return on;
}

/**
 * The first time `name` happens: its wall-clock time (ms), kept and shown.
 * @param {string} name @param {Record<string, string | number>} [also] values to keep beside it
 */
export function mark(name, also) {
  if (!on || name in marks) return;
  const now = performance.now();
  marks[name] = Math.round((performance.timeOrigin + now) * 10) / 10;
  if (also) Object.assign(marks, also);
  try {
    performance.mark(`giaoban:${name}`);
  } catch {
    // A browser without User Timing still has the element.
  }
  if (!out) {
    out = document.createElement("output");
    out.id = "join-timing";
    out.hidden = true;
    document.body.append(out);
    const nav = /** @type {PerformanceNavigationTiming | undefined} */ (performance.getEntriesByType("navigation")[0]);
    if (nav) {
      // The room page's own load: the request and the parsed document.
      marks["nav-start"] = Math.round(performance.timeOrigin * 10) / 10;
      marks["nav-response"] = Math.round((performance.timeOrigin + nav.responseEnd) * 10) / 10;
    }
  }
  out.textContent = JSON.stringify(marks);
}

/**
 * Mark a peer connection's ICE and DTLS moments (the first of each).
 * @param {RTCPeerConnection} pc
 */
export function watchConnection(pc) {
  if (!on) return;
  mark("pc-created");
  pc.addEventListener("icegatheringstatechange", () => {
    if (pc.iceGatheringState === "complete") mark("ice-gathered");
  });
  pc.addEventListener("iceconnectionstatechange", () => {
    const ice = pc.iceConnectionState;
    if (ice === "checking") mark("ice-checking");
    if (ice === "connected" || ice === "completed") mark("ice-connected");
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected") mark("dtls-connected"); // ICE and DTLS both up
  });
}

/**
 * Mark the first packet on a receive slot: a remote track unmutes when its first RTP arrives.
 * The browser may deliver this before the connection's `connected`, and ICE's events before the
 * answer's promise resolves (other threads): a reader orders them only after `answer`.
 * @param {MediaStreamTrack} track
 */
export function watchTrack(track) {
  if (!on) return;
  track.addEventListener("unmute", () => mark(`${track.kind}-first-packet`), { once: true });
}
