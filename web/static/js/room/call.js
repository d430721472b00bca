// One peer connection to the room's forwarding unit. The client always offers (docs/signaling.md):
// our microphone and camera (send-only publications, kept while muted so unmuting needs no
// renegotiation), a screen share while sharing, and receive slots for the loudest voices and the
// speakers' videos. The first Call is prepared on the pre-join screen (offer made, ICE gathered)
// and its offer goes with `join`. Media lost under a live socket: a new Call on the same socket
// (its offer says `restart`); the SFU (aiortc) cannot restart ICE.
//
// The camera goes out as VP8 simulcast (docs/media.md): three encodings, low to high, so the
// forwarding unit can give each receiver the layer its link and its tile carry; the server says
// which layers someone receives (`layers_wanted`) and the others stop (dynacast). A screen share
// is its own m-section: full resolution, a few frames a second, text kept sharp under pressure.

/**
 * @typedef {import("../signaling.js").Signaling} Signaling
 * @typedef {import("../signaling.js").Sources} Sources
 * @typedef {{local: MediaStream | null, screen: MediaStreamTrack | null, audioOnly: boolean}} Wanted
 */

import { mark, watchConnection, watchTrack } from "./timing.js";

export const AUDIO_SLOTS = 3;
export const VIDEO_SLOTS = 6;

/**
 * The camera's simulcast layers, low to high, by the width each is sent at (docs/media.md: sizes
 * and bitrates measured there). The camera is captured at 960×540 (devices.js): Chromium sends
 * at most two layers of a picture smaller than 960×540, three from there up, so the layers are
 * that capture scaled to 160, 320 and 640 pixels wide.
 */
export const CAMERA_LAYERS = [
  { rid: "q", width: 160, maxBitrate: 100_000 },
  { rid: "h", width: 320, maxBitrate: 300_000 },
  { rid: "f", width: 640, maxBitrate: 800_000 },
];
/** A shared screen: a few frames a second at full resolution. */
export const SCREEN_FRAMERATE = 5;
export const SCREEN_MAX_BITRATE = 1_200_000;

/**
 * Whether this browser's VP8 encoder takes a scalability mode (Chromium lists them per codec).
 * @param {string} mode
 */
function vp8Offers(mode) {
  const caps =
    typeof RTCRtpSender !== "undefined" && typeof RTCRtpSender.getCapabilities === "function"
      ? RTCRtpSender.getCapabilities("video")
      : null;
  return Boolean(
    caps &&
      caps.codecs.some((c) => {
        const modes = /** @type {{scalabilityModes?: string[]}} */ (/** @type {unknown} */ (c)).scalabilityModes;
        return c.mimeType.toLowerCase() === "video/vp8" && Array.isArray(modes) && modes.includes(mode);
      }),
  );
}

/**
 * The camera's send encodings: the three layers, each with three temporal layers where the
 * encoder says it can (Chromium's VP8 simulcast makes temporal layers by itself otherwise).
 * @returns {RTCRtpEncodingParameters[]}
 */
export function cameraEncodings(captureWidth = 960) {
  const temporal = vp8Offers("L1T3");
  return CAMERA_LAYERS.map(({ rid, width, maxBitrate }) => {
    /** @type {RTCRtpEncodingParameters} */
    const encoding = { rid, maxBitrate, scaleResolutionDownBy: Math.max(1, captureWidth / width) };
    if (temporal) /** @type {any} */ (encoding).scalabilityMode = "L1T3";
    return encoding;
  });
}

/**
 * VP8 first for the camera (simulcast layers the forwarding unit can switch between), the
 * browser's other codecs after it.
 * @param {RTCRtpTransceiver} transceiver
 */
function preferVp8(transceiver) {
  if (typeof transceiver.setCodecPreferences !== "function" || typeof RTCRtpReceiver.getCapabilities !== "function") return;
  const caps = RTCRtpReceiver.getCapabilities("video");
  if (!caps) return;
  const vp8 = caps.codecs.filter((c) => c.mimeType.toLowerCase() === "video/vp8");
  if (vp8.length === 0) return;
  try {
    transceiver.setCodecPreferences([...vp8, ...caps.codecs.filter((c) => c.mimeType.toLowerCase() !== "video/vp8")]);
  } catch {
    // A browser that refuses the list keeps its own order: still simulcast, maybe not VP8.
  }
}

/**
 * What an offer offers, beyond the tracks (which change by `replaceTrack`, without a new offer).
 * @param {Wanted} wanted
 */
function offerKey(wanted) {
  return `${wanted.audioOnly}|${wanted.screen ? wanted.screen.id : ""}`;
}

/** @typedef {{sdp: string, sources: Sources, key: string}} Offer */

export class Call {
  /**
   * @param {Signaling} signaling
   * @param {RTCIceServer[]} iceServers
   * @param {{restart?: boolean}} [options] restart: this call replaces the connection's lost one
   *   (its first offer says so, on the same socket)
   */
  constructor(signaling, iceServers, options = {}) {
    this.signaling = signaling;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    watchConnection(this.pc);
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
    /** @type {Promise<void>} sender parameters change one after the other */
    this._params = Promise.resolve();
    /** @type {string[] | null} the camera layers someone receives (null: all, until told) */
    this.wantedLayers = null;
    /** @type {Offer | null} an offer prepared (gathered) and not sent yet */
    this.ready = null;
    /** @type {string | null} what the offer that went with `join` offered, once answered */
    this.joinAnswered = null;
    this.restart = Boolean(options.restart);
    this.pc.addEventListener("icecandidate", (event) => {
      if (event.candidate && event.candidate.candidate) signaling.candidate(event.candidate);
    });
  }

  /** Whether this call is over (closed by us). */
  get closed() {
    return this.pc.signalingState === "closed";
  }

  /**
   * Before joining (the pre-join screen, or a reconnect while the socket opens): the transceivers,
   * the offer and ICE gathering, so that joining only sends it (docs/signaling.md, "Opening").
   * @param {Wanted} wanted
   * @returns {Promise<void>}
   */
  prepare(wanted) {
    const run = this._chain.then(async () => {
      const offer = await this._describe(wanted);
      if (offer) this.ready = offer;
    });
    this._chain = run.catch(() => {});
    return run;
  }

  /**
   * The prepared offer, taken once, to go with `join`; null when none is ready yet or it offers
   * something else than `wanted` (then the page offers once seated, as without one).
   * @param {Wanted} wanted
   * @returns {Offer | null}
   */
  takeOffer(wanted) {
    const ready = this.ready;
    if (!ready || this.closed || ready.key !== offerKey(wanted)) return null;
    this.ready = null;
    return ready;
  }

  /**
   * A prepared offer that offers something else than `wanted` (audio-only turned on before
   * joining) is made again at once, while `join` goes, so that the page need not make it once
   * seated.
   * @param {Wanted} wanted
   */
  refresh(wanted) {
    const ready = this.ready;
    if (!ready || this.closed || ready.key === offerKey(wanted)) return;
    this.ready = null;
    this.prepare(wanted).catch(() => {});
  }

  /**
   * The answer to the offer that went with `join`; it never comes from the lobby (the page drops
   * it, `Signaling.dropAnswer`, and offers again once admitted).
   * @param {Promise<string>} answer
   * @param {string} key what that offer offered
   */
  expectAnswer(answer, key) {
    const run = this._chain.then(async () => {
      const sdp = await answer;
      mark("answer");
      if (this.closed) return;
      await this._accept(sdp);
      this.joinAnswered = key;
    });
    this._chain = run.catch(() => {});
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
    if (this.closed) return;
    const key = offerKey(wanted);
    const joined = this.joinAnswered;
    this.joinAnswered = null;
    if (joined === key) return; // the offer that went with `join` is answered: nothing new to offer
    const ready = this.ready && this.ready.key === key ? this.ready : await this._describe(wanted);
    this.ready = null;
    if (!ready || this.closed) return;
    mark("offer-sent");
    const restart = this.restart;
    this.restart = false;
    const answer = await this.signaling.offer(ready.sdp, ready.sources, restart);
    mark("answer");
    if (this.closed) return;
    await this._accept(answer);
  }

  /**
   * Set up the transceivers for what is wanted, set the local offer and wait for ICE gathering.
   * @param {Wanted} wanted
   * @returns {Promise<Offer | null>}
   */
  async _describe(wanted) {
    const pc = this.pc;
    if (this.closed) return null;
    if (this.audioSlots.length === 0) this._addTransceivers(wanted.local);
    // Audio-only: no camera sent, no video received; the slots come back when it is turned off.
    if (this.camera) this.camera.direction = wanted.audioOnly ? "inactive" : "sendonly";
    for (const slot of this.videoSlots) slot.direction = wanted.audioOnly ? "inactive" : "recvonly";
    if (wanted.screen) {
      if ("contentHint" in wanted.screen) wanted.screen.contentHint = "text"; // sharp text before smooth motion
      if (!this.screen) {
        this.screen = pc.addTransceiver(wanted.screen, {
          direction: "sendonly",
          sendEncodings: [{ maxFramerate: SCREEN_FRAMERATE, maxBitrate: SCREEN_MAX_BITRATE, scaleResolutionDownBy: 1 }],
        });
        this._keepResolution(this.screen.sender);
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
    mark("offer-created");
    await gathered(pc, 2000);
    const offer = pc.localDescription;
    if (!offer || this.closed) return null;
    return { sdp: offer.sdp, sources: this.sources(), key: offerKey(wanted) };
  }

  /** @param {string} answer */
  async _accept(answer) {
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer });
    mark("answer-applied");
    const camera = this.camera;
    if (camera && camera.mid !== null && !simulcastAccepted(answer, camera.mid)) {
      // A forwarding unit without simulcast keeps the first (lowest) encoding only: send it at
      // the top layer's size and rate rather than a 160-pixel picture to everyone.
      const top = CAMERA_LAYERS[CAMERA_LAYERS.length - 1];
      const captured = (camera.sender.track && camera.sender.track.getSettings().width) || 960;
      await this._setParameters(camera.sender, (params) => {
        if (params.encodings.length !== 1) return;
        params.encodings[0].scaleResolutionDownBy = Math.max(1, captured / top.width);
        params.encodings[0].maxBitrate = top.maxBitrate;
      });
    }
  }

  /**
   * Send other devices' tracks (a choice on the pre-join screen) without a new offer. False when
   * the stream has a kind of track the call has no m-section for, or lacks one it has: the page
   * then prepares a new call.
   * @param {MediaStream | null} local
   * @returns {boolean}
   */
  useLocal(local) {
    const audio = local ? local.getAudioTracks()[0] || null : null;
    const video = local ? local.getVideoTracks()[0] || null : null;
    if (Boolean(audio) !== Boolean(this.microphone) || Boolean(video) !== Boolean(this.camera)) return false;
    if (this.microphone) this.microphone.sender.replaceTrack(audio).catch(() => {});
    const camera = this.camera;
    if (camera && video) {
      camera.sender.replaceTrack(video).catch(() => {});
      const captured = video.getSettings().width || 960;
      this._setParameters(camera.sender, (params) => {
        params.encodings.forEach((encoding, i) => {
          const layer = CAMERA_LAYERS[i];
          if (layer && params.encodings.length > 1) encoding.scaleResolutionDownBy = Math.max(1, captured / layer.width);
        });
      }).catch(() => {});
    }
    return true;
  }

  /** @param {MediaStream | null} local */
  _addTransceivers(local) {
    const pc = this.pc;
    if (local) {
      const [audio] = local.getAudioTracks();
      const [video] = local.getVideoTracks();
      if (audio) this.microphone = pc.addTransceiver(audio, { direction: "sendonly", streams: [local] });
      if (video) {
        const captured = video.getSettings().width || 960;
        this.camera = pc.addTransceiver(video, { direction: "sendonly", streams: [local], sendEncodings: cameraEncodings(captured) });
        preferVp8(this.camera);
      }
    }
    for (let i = 0; i < AUDIO_SLOTS; i++) this.audioSlots.push(pc.addTransceiver("audio", { direction: "recvonly" }));
    for (let i = 0; i < VIDEO_SLOTS; i++) this.videoSlots.push(pc.addTransceiver("video", { direction: "recvonly" }));
    for (const slot of [...this.audioSlots, ...this.videoSlots]) watchTrack(slot.receiver.track);
  }

  /**
   * Under pressure a shared screen loses frames, never sharpness.
   * @param {RTCRtpSender} sender
   */
  _keepResolution(sender) {
    this._setParameters(sender, (params) => {
      /** @type {any} */ (params).degradationPreference = "maintain-resolution";
    });
  }

  /**
   * Encode only the camera layers someone receives (`layers_wanted`); a mid that is not our
   * camera, or rids it does not have, change nothing.
   * @param {string} mid @param {string[]} rids
   * @returns {Promise<boolean>} whether the mid was our camera
   */
  async setLayers(mid, rids) {
    const camera = this.camera;
    if (!camera || camera.mid === null || camera.mid !== mid || this.closed) return false;
    this.wantedLayers = rids.slice();
    await this._setParameters(camera.sender, (params) => {
      for (const encoding of params.encodings) {
        if (encoding.rid) encoding.active = rids.includes(encoding.rid);
      }
    });
    return true;
  }

  /**
   * Change a sender's parameters (one change at a time: getParameters and setParameters are a
   * pair, and a second pair in between makes the first fail).
   * @param {RTCRtpSender} sender @param {(params: RTCRtpSendParameters) => void} change
   * @returns {Promise<void>}
   */
  _setParameters(sender, change) {
    const run = this._params.then(async () => {
      if (this.closed) return;
      const params = sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) return;
      change(params);
      await sender.setParameters(params);
    });
    this._params = run.catch(() => {});
    return run;
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
 * Whether an answer receives the m-section `mid` as simulcast (`a=simulcast:recv`).
 * @param {string} sdp @param {string} mid
 */
export function simulcastAccepted(sdp, mid) {
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const lines = section.split(/\r?\n/);
    if (lines.includes(`a=mid:${mid}`)) return lines.some((line) => line.startsWith("a=simulcast:recv"));
  }
  return false;
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
