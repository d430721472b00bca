// The test client of tests/netlink (served by tests/netlink/harness.py, never by the app).
//
// Query: id (participant), microphone=1 / camera=1 (publish), simulcast=1 (camera as VP8
// simulcast, rids q/h/f at 1/4, 1/2 and full size, ~100/300/800 kbit/s, as the room page
// publishes it), audio=N / video=N (receiving slots), unnegotiated=RID (that rid is sent but
// left out of the offer the SFU sees). Every 500 ms the getStats() figures of every
// inbound-rtp and outbound-rtp stream are written as JSON into #figures; #state carries the
// connection state. Tests read those, never evaluate script.

const params = new URLSearchParams(location.search);
const id = params.get("id") || "anonymous";
// As the room page (web/static/js/room/call.js): a 960×540 capture (the smallest Chromium sends
// three simulcast layers of) sent at 160, 320 and 640 pixels wide.
const CAPTURE = { width: 960, height: 540 };
const TOP_SCALE = 1.5;
const LAYERS = [
  { rid: "q", scaleResolutionDownBy: 6, maxBitrate: 100_000 },
  { rid: "h", scaleResolutionDownBy: 3, maxBitrate: 300_000 },
  { rid: "f", scaleResolutionDownBy: TOP_SCALE, maxBitrate: 800_000 },
];
const FIELDS = [
  "kind", "mid", "rid", "ssrc", "frameWidth", "frameHeight", "framesDecoded", "framesEncoded",
  "framesPerSecond", "freezeCount", "totalFreezesDuration", "concealedSamples",
  "totalSamplesReceived", "jitterBufferDelay", "jitterBufferEmittedCount", "bytesReceived",
  "bytesSent", "packetsLost", "packetsReceived", "packetsSent", "nackCount", "pliCount",
  "keyFramesDecoded", "active", "qualityLimitationReason",
];

const state = /** @type {HTMLOutputElement} */ (document.getElementById("state"));
const figures = /** @type {HTMLOutputElement} */ (document.getElementById("figures"));
const media = /** @type {HTMLElement} */ (document.getElementById("media"));
const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });

pc.addEventListener("connectionstatechange", () => {
  state.dataset.connection = pc.connectionState;
});
pc.addEventListener("track", (event) => {
  const element = document.createElement(event.track.kind === "audio" ? "audio" : "video");
  element.autoplay = true;
  element.dataset.mid = event.transceiver.mid || "";
  if (element instanceof HTMLVideoElement) {
    element.muted = true;
    element.playsInline = true;
    element.width = 640;
    element.height = 360;
  }
  element.srcObject = new MediaStream([event.track]);
  media.append(element);
});

/** Leave `rid` out of the SDP's simulcast and rid lines (the offer the SFU sees). */
function withoutRid(sdp, rid) {
  return sdp
    .split("\r\n")
    .filter((line) => line !== `a=rid:${rid} send`)
    .map((line) =>
      line.startsWith("a=simulcast:send ")
        ? "a=simulcast:send " + line.slice(17).split(";").filter((r) => r !== rid).join(";")
        : line,
    )
    .join("\r\n");
}

/** Put `rid` back into an answer that accepted simulcast (in the offer's order), so that the browser sends it. */
function withRid(sdp, rid, offered) {
  const order = LAYERS.map((layer) => layer.rid).filter((r) => offered.includes(`a=rid:${r} send`));
  const lines = [];
  for (const line of sdp.split("\r\n")) {
    const accepted = line.startsWith("a=simulcast:recv ") ? line.slice(17).split(";") : null;
    if (accepted && !accepted.includes(rid)) {
      const rids = order.filter((r) => r === rid || accepted.includes(r));
      lines.push(`a=rid:${rid} recv`, "a=simulcast:recv " + rids.join(";"));
    } else {
      lines.push(line);
    }
  }
  return lines.join("\r\n");
}

async function gathered() {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve(undefined);
    });
  });
}

async function report() {
  const rows = [];
  (await pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate !== undefined) {
      rows.push({ type: s.type, availableOutgoingBitrate: s.availableOutgoingBitrate });
      return;
    }
    if (s.type !== "inbound-rtp" && s.type !== "outbound-rtp") return;
    const row = { type: s.type };
    for (const name of FIELDS) if (s[name] !== undefined) row[name] = s[name];
    rows.push(row);
  });
  figures.textContent = JSON.stringify({ t: performance.now(), rows });
  figures.dataset.updates = String(Number(figures.dataset.updates) + 1);
}

async function start() {
  const microphone = params.get("microphone") === "1";
  const camera = params.get("camera") === "1";
  // Always asked for: a granted capture shows the real host addresses (no mDNS names).
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: camera ? { ...CAPTURE, frameRate: 20 } : false,
  });
  if (microphone) pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly" });
  let video = null;
  if (camera) {
    const encodings =
      params.get("simulcast") === "1" ? LAYERS : [{ maxBitrate: 800_000, scaleResolutionDownBy: TOP_SCALE }];
    // The width of the top layer sent (the capture's, scaled), what a receiver gets at best.
    const captured = stream.getVideoTracks()[0].getSettings().width || 0;
    state.dataset.captureWidth = String(Math.round(captured / TOP_SCALE));
    video = pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly", sendEncodings: encodings });
  }
  for (let i = 0; i < Number(params.get("audio") || "0"); i++) pc.addTransceiver("audio", { direction: "recvonly" });
  for (let i = 0; i < Number(params.get("video") || "0"); i++) pc.addTransceiver("video", { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered();
  const dropped = params.get("unnegotiated") || "";
  const offer = dropped ? withoutRid(pc.localDescription.sdp, dropped) : pc.localDescription.sdp;
  const response = await fetch("offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ id, sdp: offer }),
  });
  if (!response.ok) throw new Error(`offer refused: ${response.status} ${await response.text()}`);
  const answer = (await response.json()).sdp;
  const local = pc.localDescription.sdp;
  await pc.setRemoteDescription({ type: "answer", sdp: dropped ? withRid(answer, dropped, local) : answer });
  if (video) {
    // Layers by bandwidth, not by the CPU of a busy test machine: keep each layer's size.
    const parameters = video.sender.getParameters();
    parameters.degradationPreference = "maintain-resolution";
    await video.sender.setParameters(parameters).catch(() => undefined);
  }
  state.dataset.started = "true";
  setInterval(() => void report(), 500);
}

/** Stop (false) or resume (true) sending one simulcast layer, as Chromium does under CPU load. */
async function setLayerActive(rid, active) {
  for (const transceiver of pc.getTransceivers()) {
    const parameters = transceiver.sender.getParameters();
    const encoding = (parameters.encodings || []).find((e) => e.rid === rid);
    if (!encoding) continue;
    encoding.active = active;
    await transceiver.sender.setParameters(parameters);
  }
}

// What the test fills in and clicks (locators, not script): stop sending the layer named.
const layer = document.createElement("input");
layer.id = "layer-rid";
const stop = document.createElement("button");
stop.id = "stop-layer";
stop.textContent = "stop layer";
stop.addEventListener("click", () => {
  setLayerActive(layer.value, false).then(
    () => (stop.dataset.stopped = layer.value),
    (error) => (state.dataset.error = String(error)),
  );
});
document.body.append(layer, stop);

start().catch((error) => {
  state.dataset.error = String(error);
});
