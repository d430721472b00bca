// Unit tests of the camera's simulcast settings (web/static/js/room/call.js): `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CAMERA_LAYERS, cameraEncodings, simulcastAccepted } from "../../web/static/js/room/call.js";

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
