// One peer connection to the room's forwarding unit. The client always offers (docs/signaling.md):
// our microphone and camera (send-only publications, kept while muted so unmuting needs no
// renegotiation), a screen share while sharing, and receive slots for the loudest voices and the
// speakers' videos. A reconnect makes a new Call: the SFU (aiortc) cannot restart ICE.

/**
 * @typedef {import("../signaling.js").Signaling} Signaling
 * @typedef {import("../signaling.js").Sources} Sources
 * @typedef {{local: MediaStream | null, screen: MediaStreamTrack | null, audioOnly: boolean}} Wanted
 */

export const AUDIO_SLOTS = 3;
export const VIDEO_SLOTS = 6;

export class Call {
  /**
   * @param {Signaling} signaling
   * @param {RTCIceServer[]} iceServers
   */
  constructor(signaling, iceServers) {
    this.signaling = signaling;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    /** @type {RTCRtpTransceiver | null} */
    this.microphone = null;
    /** @type {RTCRtpTransceiver | null} */
    this.camera = null;
    /** @type {RTCRtpTransceiver | null} */
    this.screen = null;
    /** @type {RTCRtpTransceiver[]} */
    this.audioSlots = [];
    /** @type {RTCRtpTransceiver[]} */
    this.videoSlots = [];
    /** @type {Promise<void>} offers go one after the other */
    this._chain = Promise.resolve();
    this.pc.addEventListener("icecandidate", (event) => {
      if (event.candidate && event.candidate.candidate) signaling.candidate(event.candidate);
    });
  }

  /** Whether this call is over (closed by us). */
  get closed() {
    return this.pc.signalingState === "closed";
  }

  /**
   * Offer what is wanted now; resolves when the answer is applied. Calls queue up.
   * @param {Wanted} wanted
   * @returns {Promise<void>}
   */
  negotiate(wanted) {
    const run = this._chain.then(() => this._negotiate(wanted));
    this._chain = run.catch(() => {});
    return run;
  }

  /** @param {Wanted} wanted */
  async _negotiate(wanted) {
    const pc = this.pc;
    if (this.closed) return;
    if (this.audioSlots.length === 0) this._addTransceivers(wanted.local);
    // Audio-only: no camera sent, no video received; the slots come back when it is turned off.
    if (this.camera) this.camera.direction = wanted.audioOnly ? "inactive" : "sendonly";
    for (const slot of this.videoSlots) slot.direction = wanted.audioOnly ? "inactive" : "recvonly";
    if (wanted.screen) {
      if (!this.screen) {
        this.screen = pc.addTransceiver(wanted.screen, { direction: "sendonly" });
      } else {
        await this.screen.sender.replaceTrack(wanted.screen);
        this.screen.direction = "sendonly";
      }
    } else if (this.screen) {
      // Kept, inactive, for the next share: the m-section cannot be removed.
      this.screen.direction = "inactive";
      await this.screen.sender.replaceTrack(null);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 2000);
    const offer = pc.localDescription;
    if (!offer || this.closed) return;
    const answer = await this.signaling.offer(offer.sdp, this.sources());
    if (this.closed) return;
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  }

  /** @param {MediaStream | null} local */
  _addTransceivers(local) {
    const pc = this.pc;
    if (local) {
      const [audio] = local.getAudioTracks();
      const [video] = local.getVideoTracks();
      if (audio) this.microphone = pc.addTransceiver(audio, { direction: "sendonly", streams: [local] });
      if (video) this.camera = pc.addTransceiver(video, { direction: "sendonly", streams: [local] });
    }
    for (let i = 0; i < AUDIO_SLOTS; i++) this.audioSlots.push(pc.addTransceiver("audio", { direction: "recvonly" }));
    for (let i = 0; i < VIDEO_SLOTS; i++) this.videoSlots.push(pc.addTransceiver("video", { direction: "recvonly" }));
  }

  /**
   * What each m-section we send on carries.
   * @returns {Sources}
   */
  sources() {
    /** @type {Sources} */
    const sources = {};
    /** @type {[RTCRtpTransceiver | null, "microphone" | "camera" | "screen"][]} */
    const ours = [
      [this.microphone, "microphone"],
      [this.camera, "camera"],
      [this.screen, "screen"],
    ];
    for (const [transceiver, source] of ours) {
      if (transceiver && transceiver.mid !== null && transceiver.direction === "sendonly") sources[transceiver.mid] = source;
    }
    return sources;
  }

  /**
   * The receive slots with their mid and track, once negotiated.
   * @returns {{mid: string, kind: string, track: MediaStreamTrack}[]}
   */
  slots() {
    return [...this.audioSlots, ...this.videoSlots]
      .filter((t) => t.mid !== null)
      .map((t) => ({ mid: /** @type {string} */ (t.mid), kind: t.receiver.track.kind, track: t.receiver.track }));
  }

  /** Close the peer connection (safe to call twice). */
  close() {
    if (!this.closed) this.pc.close();
  }
}

/**
 * Wait for ICE gathering (host candidates go in the offer), at most `ms`.
 * @param {RTCPeerConnection} peer @param {number} ms
 * @returns {Promise<void>}
 */
function gathered(peer, ms) {
  return new Promise((resolve) => {
    if (peer.iceGatheringState === "complete") return resolve();
    const timer = setTimeout(resolve, ms);
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}
