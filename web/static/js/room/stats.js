// This page's measure of its own connection, from RTCPeerConnection.getStats(), every few
// seconds: round-trip time of the selected candidate pair, loss on what it receives, and the
// bitrate both ways. The server turns it into a level (good, fair, poor) for everyone.

/** @typedef {import("../signaling.js").Stats} Stats */

/** Differences between two getStats() readings. */
export class ConnectionProbe {
  constructor() {
    /** @type {{at: number, bytes: number, lost: number, received: number} | null} */
    this.last = null;
  }

  /**
   * Read the peer connection's statistics; null on the first call (nothing to compare with yet).
   * @param {RTCPeerConnection} pc
   * @returns {Promise<Stats | null>}
   */
  async sample(pc) {
    const report = await pc.getStats();
    let rtt = 0;
    let bytes = 0;
    let lost = 0;
    let received = 0;
    /** @type {string | undefined} */
    let selected;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) selected = s.selectedCandidatePairId;
    });
    report.forEach((s) => {
      if (s.type === "candidate-pair" && (s.id === selected || (!selected && s.nominated && s.state === "succeeded"))) {
        rtt = s.currentRoundTripTime || rtt;
      } else if (s.type === "inbound-rtp") {
        bytes += s.bytesReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
      } else if (s.type === "outbound-rtp") {
        bytes += s.bytesSent || 0;
      }
    });
    const now = performance.now();
    const previous = this.last;
    this.last = { at: now, bytes, lost, received };
    if (!previous || now <= previous.at) return null;
    const newLost = Math.max(0, lost - previous.lost);
    const newReceived = Math.max(0, received - previous.received);
    const seconds = (now - previous.at) / 1000;
    return {
      rttMs: Math.min(60_000, Math.round(rtt * 1000)),
      lossPct: newLost + newReceived > 0 ? Math.min(100, (100 * newLost) / (newLost + newReceived)) : 0,
      bitrateKbps: Math.min(1_000_000, Math.max(0, Math.round(((bytes - previous.bytes) * 8) / seconds / 1000))),
    };
  }
}

/**
 * @typedef {{mid: string, width: number, height: number, fps: number, lossPct: number, freezes: number,
 *   jitterMs: number, kbps: number}} VideoFigures
 * @typedef {{at: number, lost: number, received: number, bytes: number}} VideoCounters
 */

/**
 * What each received video gives now (for the stats overlay), from one getStats() report and
 * the counters of the previous reading (updated in place): size, frames per second, loss and
 * bitrate since then, freezes so far (`freezeCount`), mean jitter buffer delay.
 * Pure: takes anything with forEach over stats objects, so node tests feed it plain objects.
 * @param {{forEach: (each: (s: any) => void) => void}} report
 * @param {Map<string, VideoCounters>} previous
 * @param {number} now milliseconds
 * @returns {VideoFigures[]}
 */
export function readVideo(report, previous, now) {
  /** @type {VideoFigures[]} */
  const out = [];
  report.forEach((s) => {
    if (s.type !== "inbound-rtp" || s.kind !== "video" || typeof s.mid !== "string") return;
    const lost = Math.max(0, s.packetsLost || 0);
    const received = s.packetsReceived || 0;
    const bytes = s.bytesReceived || 0;
    const last = previous.get(s.mid);
    previous.set(s.mid, { at: now, lost, received, bytes });
    const newLost = last ? Math.max(0, lost - last.lost) : 0;
    const newReceived = last ? Math.max(0, received - last.received) : 0;
    const seconds = last && now > last.at ? (now - last.at) / 1000 : 0;
    const emitted = s.jitterBufferEmittedCount || 0;
    out.push({
      mid: s.mid,
      width: s.frameWidth || 0,
      height: s.frameHeight || 0,
      fps: Math.round(s.framesPerSecond || 0),
      lossPct: newLost + newReceived > 0 ? Math.round((1000 * newLost) / (newLost + newReceived)) / 10 : 0,
      freezes: s.freezeCount || 0,
      jitterMs: emitted > 0 ? Math.round((1000 * (s.jitterBufferDelay || 0)) / emitted) : 0,
      kbps: seconds > 0 ? Math.max(0, Math.round(((bytes - (last ? last.bytes : 0)) * 8) / seconds / 1000)) : 0,
    });
  });
  out.sort((a, b) => Number(a.mid) - Number(b.mid) || a.mid.localeCompare(b.mid));
  return out;
}

/**
 * A bit rate for people: "850 kbit/s", "1,2 Mbit/s" (in the page's language).
 * @param {number | null | undefined} bps @param {string} [lang]
 */
export function formatRate(bps, lang = "vi") {
  if (bps === null || bps === undefined || !Number.isFinite(bps)) return "–";
  if (bps >= 1_000_000) return `${(bps / 1_000_000).toLocaleString(lang, { maximumFractionDigits: 1 })} Mbit/s`;
  return `${Math.round(bps / 1000).toLocaleString(lang)} kbit/s`;
}
