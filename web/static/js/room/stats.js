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
