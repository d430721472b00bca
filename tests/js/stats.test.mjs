// Unit tests of the stats overlay's figures (web/static/js/room/stats.js): `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatRate, readVideo } from "../../web/static/js/room/stats.js";

/** @param {object[]} stats */
const report = (stats) => ({ forEach: (/** @type {(s: any) => void} */ each) => stats.forEach(each) });

test("each received video's figures, loss and bitrate since the last reading", () => {
  const previous = new Map();
  const first = readVideo(
    report([
      { type: "inbound-rtp", kind: "video", mid: "10", frameWidth: 320, frameHeight: 180, framesPerSecond: 14.6,
        packetsLost: 2, packetsReceived: 98, bytesReceived: 10_000, freezeCount: 1, jitterBufferDelay: 4.5,
        jitterBufferEmittedCount: 50 },
      { type: "inbound-rtp", kind: "audio", mid: "4", packetsLost: 9, packetsReceived: 1 },
      { type: "inbound-rtp", kind: "video", mid: "9" },
      { type: "candidate-pair", currentRoundTripTime: 0.05 },
    ]),
    previous,
    1000,
  );
  assert.deepEqual(first.map((v) => v.mid), ["9", "10"]);
  assert.deepEqual(first[1], { mid: "10", width: 320, height: 180, fps: 15, lossPct: 0, freezes: 1, jitterMs: 90, kbps: 0 });
  const second = readVideo(
    report([
      { type: "inbound-rtp", kind: "video", mid: "10", frameWidth: 640, frameHeight: 360, framesPerSecond: 15,
        packetsLost: 12, packetsReceived: 188, bytesReceived: 60_000, freezeCount: 1 },
    ]),
    previous,
    3000,
  );
  assert.equal(second[0].lossPct, 10); // 10 lost of 100 since the first reading
  assert.equal(second[0].kbps, 200); // 50,000 bytes in 2 s
  assert.equal(second[0].jitterMs, 0);
});

test("bit rates for people", () => {
  assert.equal(formatRate(null), "–");
  assert.equal(formatRate(250_000, "en"), "250 kbit/s");
  assert.equal(formatRate(1_250_000, "en"), "1.3 Mbit/s");
  assert.equal(formatRate(1_200_000, "vi"), "1,2 Mbit/s");
});
