// The connection check's network probe, the browser side of meetings/rtc/probe.py: a peer
// connection with three data channels to the meeting server, and the timeline the server drives
// (docs/readiness/check.md, "The probe"). No UI here: progress goes to a callback.

/**
 * @typedef {{probe: string, rtt_ms: number | null, loss_pct: number | null, down_kbps: number | null,
 *   up_kbps: number | null, complete: boolean, seal: string}} ServerResult
 * @typedef {{rtt_ms?: number, loss_pct?: number, down_kbps?: number, up_kbps?: number}} ClientFigures
 * @typedef {{server: ServerResult, client: ClientFigures}} ProbeOutcome
 * @typedef {"connect" | "ping" | "down" | "up"} Phase
 */

const CHUNK = 1100; // bytes per uplink message unless the server says: one SCTP chunk, as it sends
const HIGH_WATER = 65536; // the most queued on the uplink at once
const GATHER_MS = 3000; // the longest wait for the browser's own candidates
const LIMIT_MS = 45000; // the whole probe, whatever happens

/** @param {number[]} values */
export function median(values) {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The server's words for a refused request: the first field's problem, else the message.
 * @param {any} body @param {number} status
 */
export function errorText(body, status) {
  const error = body && body.error;
  if (!error) return String(status);
  const field = Array.isArray(error.fields) && error.fields.length ? error.fields[0].message : "";
  return String(field || error.message || status);
}

/** @param {RTCPeerConnection} pc */
function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve(undefined);
    const timer = setTimeout(resolve, GATHER_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve(undefined);
      }
    });
  });
}

/**
 * Run the probe: post the offer to `url` (JSON, with the CSRF header), then follow the server.
 * @param {string} url @param {string} csrf @param {RTCIceServer[]} iceServers
 * @param {(phase: Phase, figures: ClientFigures) => void} progress
 * @returns {Promise<ProbeOutcome>}
 */
export async function runProbe(url, csrf, iceServers, progress) {
  const pc = new RTCPeerConnection({ iceServers });
  const control = pc.createDataChannel("control");
  const ping = pc.createDataChannel("ping", { ordered: false, maxRetransmits: 0 });
  const bulk = pc.createDataChannel("bulk");
  bulk.binaryType = "arraybuffer";
  const up = pc.createDataChannel("up", { ordered: false, maxRetransmits: 0 });
  /** @type {ClientFigures} */
  const client = {};
  /** @type {Map<number, number>} */
  const pingSent = new Map();
  /** @type {number[]} */
  const rtts = [];
  // Counted after the warm-up (the slow start), as the server counts the uplink.
  const down = { bytes: 0, first: -1, start: -1, startBytes: 0, last: 0, open: false, warmup: 0.5 };
  let uploading = false;
  try {
    progress("connect", client);
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const local = pc.localDescription;
    if (!local) throw new Error("no offer");
    const response = await fetch(url, {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ offer: local.sdp }),
      credentials: "same-origin",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(errorText(body, response.status));
    await pc.setRemoteDescription({ type: "answer", sdp: body.answer });

    return await new Promise((resolve, reject) => {
      const limit = setTimeout(() => reject(new Error("timeout")), LIMIT_MS);
      pc.addEventListener("connectionstatechange", () => {
        if (pc.connectionState === "failed") {
          clearTimeout(limit);
          reject(new Error("failed"));
        }
      });
      ping.addEventListener("message", (event) => {
        const data = JSON.parse(String(event.data));
        if (data.t === "ping") ping.send(JSON.stringify({ t: "pong", n: data.n }));
        else if (data.t === "pong" && pingSent.has(data.n)) {
          rtts.push(performance.now() - /** @type {number} */ (pingSent.get(data.n)));
          pingSent.delete(data.n);
        }
      });
      bulk.addEventListener("message", (event) => {
        if (!down.open || !(event.data instanceof ArrayBuffer)) return;
        const now = performance.now();
        if (down.first < 0) down.first = now;
        down.bytes += event.data.byteLength;
        down.last = now;
        if (down.start < 0 && now - down.first >= down.warmup * 1000) {
          down.start = now;
          down.startBytes = down.bytes;
        }
      });
      control.addEventListener("message", (event) => {
        const data = JSON.parse(String(event.data));
        if (data.t === "ping") {
          progress("ping", client);
          pingAlong(data.seconds, data.interval);
        } else if (data.t === "down") {
          down.open = true;
          down.warmup = Number(data.warmup) || 0.5;
          progress("down", client);
        } else if (data.t === "down-end") {
          down.open = false;
          if (down.start < 0 || down.last - down.start < 250) {
            down.start = down.first; // too short to leave the warm-up out
            down.startBytes = Math.min(down.bytes, CHUNK);
          }
          const ms = down.last - down.start;
          const counted = down.bytes - down.startBytes;
          if (ms > 0 && counted > 0) client.down_kbps = Math.round((counted * 8) / ms * 10) / 10;
          control.send(JSON.stringify({ t: "down-got", bytes: counted, ms }));
        } else if (data.t === "up") {
          progress("up", client);
          upload(data.seconds, data.max, Number(data.chunk) || CHUNK);
        } else if (data.t === "result") {
          clearTimeout(limit);
          resolve({ server: data, client });
        }
      });

      /** Our own pings, for our own figures (the server's are the ones kept). */
      function pingAlong(/** @type {number} */ seconds, /** @type {number} */ interval) {
        let n = 0;
        const start = performance.now();
        const timer = setInterval(() => {
          if (performance.now() - start > seconds * 1000 || ping.readyState !== "open") {
            clearInterval(timer);
            setTimeout(() => {
              const sent = n;
              const rtt = median(rtts);
              if (rtt !== undefined) client.rtt_ms = Math.round(rtt * 10) / 10;
              if (sent) client.loss_pct = Math.round((1000 * pingSent.size) / sent) / 10;
              progress("ping", client);
            }, 600);
            return;
          }
          pingSent.set(n, performance.now());
          ping.send(JSON.stringify({ t: "ping", n }));
          n += 1;
        }, interval * 1000);
      }

      /** Send as fast as the link takes it, for `seconds` or `max` bytes. */
      function upload(/** @type {number} */ seconds, /** @type {number} */ max, /** @type {number} */ chunk) {
        if (uploading) return;
        uploading = true;
        const payload = new Uint8Array(chunk);
        crypto.getRandomValues(payload);
        const start = performance.now();
        let sent = 0;
        let finished = false;
        const finish = () => {
          if (finished) return;
          finished = true;
          up.removeEventListener("bufferedamountlow", pump);
          const ms = performance.now() - start;
          if (ms > 0) client.up_kbps = Math.round((((sent - up.bufferedAmount) * 8) / ms) * 10) / 10;
          control.send(JSON.stringify({ t: "up-end", bytes: sent }));
        };
        const pump = () => {
          while (!finished && up.readyState === "open" && up.bufferedAmount < HIGH_WATER) {
            if (performance.now() - start > seconds * 1000 || sent >= max) return finish();
            up.send(payload);
            sent += chunk;
          }
        };
        up.bufferedAmountLowThreshold = HIGH_WATER / 2;
        up.addEventListener("bufferedamountlow", pump);
        // The timer ends the phase on a link too slow to drain below the mark in time.
        const timer = setInterval(() => {
          if (performance.now() - start > seconds * 1000 + 200 || up.readyState !== "open") {
            clearInterval(timer);
            finish();
          }
        }, 250);
        pump();
      }
    });
  } finally {
    // The server closes its side after the result; ours goes now.
    setTimeout(() => pc.close(), 500);
  }
}
