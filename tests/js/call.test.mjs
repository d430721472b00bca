// Unit tests of the camera's simulcast settings (web/static/js/room/call.js): `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CAMERA_LAYERS, Call, cameraEncodings, simulcastAccepted } from "../../web/static/js/room/call.js";

test("three layers low to high, 160, 320 and 640 pixels wide whatever the capture", () => {
  assert.deepEqual(CAMERA_LAYERS.map((l) => l.rid), ["q", "h", "f"]);
  assert.deepEqual(cameraEncodings(960).map((l) => l.scaleResolutionDownBy), [6, 3, 1.5]);
  assert.deepEqual(cameraEncodings(1280).map((l) => l.scaleResolutionDownBy), [8, 4, 2]);
  // A camera that gives less than asked: never scaled up.
  assert.deepEqual(cameraEncodings(480).map((l) => l.scaleResolutionDownBy), [3, 1.5, 1]);
  const rates = CAMERA_LAYERS.map((l) => l.maxBitrate);
  assert.deepEqual([...rates].sort((a, b) => a - b), rates);
});

test("L1T3 only where the VP8 encoder lists it", () => {
  const g = /** @type {any} */ (globalThis);
  const saved = g.RTCRtpSender;
  try {
    g.RTCRtpSender = { getCapabilities: () => ({ codecs: [{ mimeType: "video/VP8", scalabilityModes: ["L1T1", "L1T3"] }] }) };
    assert.deepEqual(cameraEncodings().map((e) => e.scalabilityMode), ["L1T3", "L1T3", "L1T3"]);
    g.RTCRtpSender = { getCapabilities: () => ({ codecs: [{ mimeType: "video/VP8" }, { mimeType: "video/AV1", scalabilityModes: ["L1T3"] }] }) };
    assert.deepEqual(cameraEncodings().map((e) => e.scalabilityMode), [undefined, undefined, undefined]);
  } finally {
    g.RTCRtpSender = saved;
  }
});

test("an answer accepts simulcast for one m-section, by its mid", () => {
  const answer = [
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=recvonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=recvonly", "a=rid:q recv", "a=simulcast:recv q;h;f",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:10", "a=sendonly", "",
  ].join("\r\n");
  assert.equal(simulcastAccepted(answer, "1"), true);
  assert.equal(simulcastAccepted(answer, "10"), false);
  assert.equal(simulcastAccepted(answer, "0"), false);
  assert.equal(simulcastAccepted(answer, "7"), false);
});

// ---- the call prepared before joining (issue #18) ----------------------------------------------

class FakeTrack {
  /** @param {string} kind */
  constructor(kind, id = kind) {
    this.kind = kind;
    this.id = id;
  }
  getSettings() {
    return { width: 960 };
  }
  addEventListener() {}
}

class FakePeerConnection {
  constructor() {
    /** @type {any[]} */
    this.transceivers = [];
    this.offers = 0;
    this.signalingState = "stable";
    this.iceGatheringState = "new";
    /** @type {any} */
    this.localDescription = null;
    /** @type {any} */
    this.remoteDescription = null;
  }
  /** @param {any} what @param {any} init */
  addTransceiver(what, init) {
    const kind = typeof what === "string" ? what : what.kind;
    const sender = {
      track: typeof what === "string" ? null : what,
      /** @param {any} track */
      replaceTrack: async (track) => {
        sender.track = track;
      },
      getParameters: () => ({ encodings: (init.sendEncodings || []).map((/** @type {any} */ e) => ({ ...e })) }),
      setParameters: async () => {},
    };
    const transceiver = { kind, direction: init.direction, mid: String(this.transceivers.length), sender, receiver: { track: new FakeTrack(kind) } };
    this.transceivers.push(transceiver);
    return transceiver;
  }
  async createOffer() {
    this.offers++;
    return { type: "offer", sdp: `v=0 offer ${this.offers} ${this.transceivers.map((t) => t.direction).join(",")}` };
  }
  /** @param {any} description */
  async setLocalDescription(description) {
    this.localDescription = description;
    this.signalingState = "have-local-offer";
    this.iceGatheringState = "complete"; // gathered at once
  }
  /** @param {any} description */
  async setRemoteDescription(description) {
    this.remoteDescription = description;
    this.signalingState = "stable";
  }
  addEventListener() {}
  close() {
    this.signalingState = "closed";
  }
}

function fakeSignaling() {
  return {
    /** @type {{sdp: string, sources: any, restart: boolean}[]} */
    sent: [],
    /** @param {string} sdp @param {any} sources @param {boolean} [restart] */
    offer(sdp, sources, restart = false) {
      this.sent.push({ sdp, sources, restart });
      return Promise.resolve("v=0 answer");
    },
    candidate() {},
  };
}

/** @param {() => Promise<void>} body */
async function withFakePeerConnection(body) {
  const g = /** @type {any} */ (globalThis);
  const saved = g.RTCPeerConnection;
  g.RTCPeerConnection = FakePeerConnection;
  try {
    await body();
  } finally {
    g.RTCPeerConnection = saved;
  }
}

function local() {
  const tracks = [new FakeTrack("audio", "mic-1"), new FakeTrack("video", "cam-1")];
  return /** @type {any} */ ({
    getAudioTracks: () => tracks.filter((t) => t.kind === "audio"),
    getVideoTracks: () => tracks.filter((t) => t.kind === "video"),
  });
}

test("a prepared call's offer goes with join once, and the first negotiation then sends nothing", async () => {
  await withFakePeerConnection(async () => {
    const signaling = fakeSignaling();
    const call = new Call(/** @type {any} */ (signaling), []);
    const wanted = { local: local(), screen: null, audioOnly: false };
    await call.prepare(wanted);
    // Audio-only wanted at the click: the prepared offer does not offer that.
    assert.equal(call.takeOffer({ ...wanted, audioOnly: true }), null);
    const offer = call.takeOffer(wanted);
    assert.ok(offer && offer.sdp.startsWith("v=0 offer 1"));
    assert.deepEqual(offer.sources, { 0: "microphone", 1: "camera" });
    assert.equal(call.takeOffer(wanted), null); // taken once
    call.refresh({ ...wanted, audioOnly: true }); // nothing ready any more: nothing to do
    assert.equal(/** @type {any} */ (call.pc).offers, 1);
    call.expectAnswer(Promise.resolve("v=0 answer"), offer.key);
    await call.negotiate(wanted); // seated: the answer to the join's offer is applied, no new offer
    assert.equal(signaling.sent.length, 0);
    assert.equal(/** @type {any} */ (call.pc).remoteDescription.sdp, "v=0 answer");
    await call.negotiate({ ...wanted, audioOnly: true }); // a later change offers again
    assert.equal(signaling.sent.length, 1);
    assert.equal(signaling.sent[0].restart, false);
  });
});

test("an offer sent with join from the lobby is dropped: the call offers again when seated", async () => {
  await withFakePeerConnection(async () => {
    const signaling = fakeSignaling();
    const call = new Call(/** @type {any} */ (signaling), []);
    const wanted = { local: local(), screen: null, audioOnly: false };
    await call.prepare(wanted);
    const offer = call.takeOffer(wanted);
    assert.ok(offer);
    call.expectAnswer(Promise.reject(new Error("dropped")), offer.key);
    await call.negotiate(wanted);
    assert.equal(signaling.sent.length, 1);
  });
});

test("a call replacing a lost one says restart on its first offer only", async () => {
  await withFakePeerConnection(async () => {
    const signaling = fakeSignaling();
    const call = new Call(/** @type {any} */ (signaling), [], { restart: true });
    const wanted = { local: local(), screen: null, audioOnly: false };
    call.prepare(wanted);
    await call.negotiate(wanted); // the prepared offer, not a second one
    await call.negotiate({ ...wanted, audioOnly: true });
    assert.deepEqual(signaling.sent.map((s) => s.restart), [true, false]);
    assert.equal(/** @type {any} */ (call.pc).offers, 2);
  });
});

test("other devices chosen before joining go on the prepared transceivers; a kind that comes or goes does not", async () => {
  await withFakePeerConnection(async () => {
    const call = new Call(/** @type {any} */ (fakeSignaling()), []);
    await call.prepare({ local: local(), screen: null, audioOnly: false });
    const camera = new FakeTrack("video", "cam-2");
    const other = /** @type {any} */ ({ getAudioTracks: () => [new FakeTrack("audio", "mic-2")], getVideoTracks: () => [camera] });
    assert.equal(call.useLocal(other), true);
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(/** @type {any} */ (call.camera).sender.track, camera);
    const noCamera = /** @type {any} */ ({ getAudioTracks: () => [new FakeTrack("audio")], getVideoTracks: () => [] });
    assert.equal(call.useLocal(noCamera), false);
  });
});

test("audio-only chosen before joining: the prepared offer is made again at once", async () => {
  await withFakePeerConnection(async () => {
    const signaling = fakeSignaling();
    const call = new Call(/** @type {any} */ (signaling), []);
    const wanted = { local: local(), screen: null, audioOnly: false };
    await call.prepare(wanted);
    const audioOnly = { ...wanted, audioOnly: true };
    assert.equal(call.takeOffer(audioOnly), null);
    call.refresh(audioOnly);
    await call.negotiate(audioOnly); // seated: sends the one made at the click
    assert.equal(/** @type {any} */ (call.pc).offers, 2);
    assert.equal(signaling.sent.length, 1);
    assert.ok(signaling.sent[0].sdp.includes("inactive"));
  });
});
