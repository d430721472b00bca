// The connection check page (web/templates/readiness/check.html): camera, microphone, speaker,
// and the network measured against the meeting server (check/probe.js); then the verdict, stored
// by the server. All text from the server's catalogs (#i18n).
//
// Ids tests rely on: #check-start, #step-camera|microphone|speaker|network[data-state=
// "waiting|running|ok|bad"], #check-preview, #mic-level, #play-sound, #heard-yes, #heard-no,
// #fig-rtt|loss|down|up, #check-result[data-verdict="video|audio|failed"][data-check=<id>],
// #result-headline, #result-advice.
import { errorText, runProbe } from "./check/probe.js";

/**
 * @typedef {{probe: string, result: string, csrf: string, occurrence: number | null,
 *   iceServers: RTCIceServer[]}} CheckConfig
 * @typedef {{id: number, verdict: string, headline: string, advice: string[], phone: string,
 *   rtt_ms: number | null, loss_pct: number | null, down_kbps: number | null, up_kbps: number | null}} CheckResult
 * @typedef {import("./check/probe.js").ClientFigures} ClientFigures
 */

/** @param {string} id */
function json(id) {
  const el = document.getElementById(id);
  return JSON.parse(el ? el.textContent || "{}" : "{}");
}

/** @type {CheckConfig} */
const config = json("check-config");
/** @type {Record<string, string>} */
const strings = json("i18n");
/** @param {string} key */
const t = (key) => strings[key] || key;

/** @param {string} id */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing`);
  return el;
}

/** @param {string} step @param {"waiting" | "running" | "ok" | "bad"} state @param {string} text */
function setStep(step, state, text) {
  $(`step-${step}`).dataset.state = state;
  $(`${step}-status`).textContent = text;
}

/** @param {number | null | undefined} value @param {string} unit @param {number} digits */
function figure(value, unit, digits = 0) {
  if (value === null || value === undefined) return "–";
  return `${value.toLocaleString(document.documentElement.lang || "vi", { maximumFractionDigits: digits })} ${unit}`;
}

/** @param {{rtt_ms?: number | null, loss_pct?: number | null, down_kbps?: number | null, up_kbps?: number | null}} f */
function showFigures(f) {
  if (f.rtt_ms !== undefined) $("fig-rtt").textContent = figure(f.rtt_ms, "ms");
  if (f.loss_pct !== undefined) $("fig-loss").textContent = figure(f.loss_pct, "%", 1);
  if (f.down_kbps !== undefined) $("fig-down").textContent = figure(f.down_kbps, "kbit/s");
  if (f.up_kbps !== undefined) $("fig-up").textContent = figure(f.up_kbps, "kbit/s");
}

/** @type {AudioContext | null} */
let audio = null;
/** @type {MediaStream[]} */
let streams = [];

/** Open the camera and the microphone, together or, if refused, each alone. */
async function openStreams() {
  try {
    return [await navigator.mediaDevices.getUserMedia({ audio: true, video: true })];
  } catch {
    const found = [];
    for (const constraints of [{ video: true }, { audio: true }]) {
      try {
        found.push(await navigator.mediaDevices.getUserMedia(constraints));
      } catch {
        /* that device is missing or refused: its step says so */
      }
    }
    return found;
  }
}

/** @param {HTMLVideoElement} video @returns {Promise<boolean>} frames arrive within 6 s */
function framesArrive(video) {
  return new Promise((resolve) => {
    const start = performance.now();
    let first = -1;
    const timer = setInterval(() => {
      if (video.videoWidth > 0 && first < 0) first = video.currentTime;
      if (first >= 0 && video.currentTime > first + 0.2) {
        clearInterval(timer);
        resolve(true);
      } else if (performance.now() - start > 6000) {
        clearInterval(timer);
        resolve(false);
      }
    }, 100);
  });
}

/** @param {MediaStreamTrack} track @param {AudioContext} ctx @returns {Promise<boolean>} sound within 8 s */
function soundHeard(track, ctx) {
  const meter = /** @type {HTMLMeterElement} */ ($("mic-level"));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  return new Promise((resolve) => {
    const start = performance.now();
    let decided = false;
    // The meter stays live while the track lives; the verdict is given once.
    const timer = setInterval(() => {
      if (track.readyState !== "live") {
        clearInterval(timer);
        meter.value = 0;
        if (!decided) resolve(false);
        return;
      }
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      meter.value = Math.min(1, rms * 4);
      if (!decided && rms > 0.01) {
        decided = true;
        resolve(true);
      } else if (!decided && performance.now() - start > 8000) {
        decided = true;
        resolve(false);
      }
    }, 100);
  });
}

/** @returns {Promise<{camera: boolean | null, microphone: boolean | null}>} */
async function testDevices() {
  setStep("camera", "running", t("camera_wait"));
  setStep("microphone", "running", t("mic_wait"));
  for (const s of streams) for (const track of s.getTracks()) track.stop();
  streams = await openStreams();
  const videoTrack = streams.flatMap((s) => s.getVideoTracks())[0];
  const audioTrack = streams.flatMap((s) => s.getAudioTracks())[0];
  if (!videoTrack && !audioTrack) {
    setStep("camera", "bad", t("devices_denied"));
    setStep("microphone", "bad", t("devices_denied"));
    return { camera: false, microphone: false };
  }
  const preview = /** @type {HTMLVideoElement} */ ($("check-preview"));
  const camera = videoTrack ? (preview.srcObject = new MediaStream([videoTrack]), framesArrive(preview)) : Promise.resolve(false);
  const microphone = audioTrack && audio ? soundHeard(audioTrack, audio) : Promise.resolve(false);
  const [cameraOk, microphoneOk] = await Promise.all([camera, microphone]);
  setStep("camera", cameraOk ? "ok" : "bad", t(cameraOk ? "camera_ok" : "camera_bad"));
  setStep("microphone", microphoneOk ? "ok" : "bad", t(microphoneOk ? "mic_ok" : "mic_bad"));
  return { camera: cameraOk, microphone: microphoneOk };
}

/** A one-second tone through the speakers, then the person says whether they heard it. */
function testSpeaker() {
  const play = /** @type {HTMLButtonElement} */ ($("play-sound"));
  const yes = /** @type {HTMLButtonElement} */ ($("heard-yes"));
  const no = /** @type {HTMLButtonElement} */ ($("heard-no"));
  setStep("speaker", "running", t("speaker_ask"));
  play.disabled = false;
  yes.disabled = no.disabled = true;
  /** @type {Promise<boolean>} */
  const answer = new Promise((resolve) => {
    const heard = (/** @type {boolean} */ ok) => () => {
      yes.disabled = no.disabled = true;
      setStep("speaker", ok ? "ok" : "bad", t(ok ? "speaker_ok" : "speaker_bad"));
      resolve(ok);
    };
    yes.onclick = heard(true);
    no.onclick = heard(false);
  });
  play.onclick = () => {
    if (!audio) return;
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 660;
    gain.gain.value = 0.2;
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 1);
    yes.disabled = no.disabled = false;
  };
  return answer;
}

/** @returns {Promise<{seal: string, client: ClientFigures, error: string}>} */
async function testNetwork() {
  const phases = { connect: "net_connect", ping: "net_ping", down: "net_down", up: "net_up" };
  setStep("network", "running", t("net_connect"));
  try {
    const outcome = await runProbe(config.probe, config.csrf, config.iceServers || [], (phase, client) => {
      setStep("network", "running", t(phases[phase]));
      showFigures(client);
    });
    showFigures(outcome.server);
    const ok = outcome.server.rtt_ms !== null;
    setStep("network", ok ? "ok" : "bad", t(ok ? "net_done" : "net_failed"));
    return { seal: outcome.server.seal, client: outcome.client, error: "" };
  } catch (error) {
    setStep("network", "bad", `${t("net_failed")} (${error instanceof Error ? error.message : String(error)})`);
    return { seal: "", client: {}, error: error instanceof Error ? error.message : String(error) };
  }
}

/** @param {CheckResult} result */
function showResult(result) {
  const section = $("check-result");
  section.dataset.verdict = result.verdict;
  section.dataset.check = String(result.id);
  $("result-headline").textContent = result.headline;
  const list = $("result-advice");
  list.replaceChildren(
    ...result.advice.map((tip) => {
      const item = document.createElement("li");
      item.textContent = tip;
      return item;
    }),
  );
  showFigures(result);
  section.hidden = false;
  $("result-headline").focus();
}

async function run() {
  const start = /** @type {HTMLButtonElement} */ ($("check-start"));
  start.disabled = true;
  $("check-result").hidden = true;
  // Made on the click, so that the browser lets it play and listen.
  audio = audio || new AudioContext();
  if (audio.state === "suspended") await audio.resume();
  const [devices, speaker, network] = await Promise.all([testDevices(), testSpeaker(), testNetwork()]);
  const body = {
    probe: network.seal,
    client: network.client,
    error: network.error,
    camera_ok: devices.camera,
    microphone_ok: devices.microphone,
    speaker_ok: speaker,
    occurrence: config.occurrence,
  };
  const section = $("check-result");
  delete section.dataset.verdict;
  delete section.dataset.check;
  $("result-headline").textContent = t("saving");
  $("result-advice").replaceChildren();
  section.hidden = false;
  try {
    const response = await fetch(config.result, {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": config.csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(errorText(data, response.status));
    showResult(data);
  } catch (error) {
    showResult({
      id: 0, verdict: "failed", headline: `${t("save_failed")}: ${error instanceof Error ? error.message : String(error)}`,
      advice: [], phone: "", rtt_ms: null, loss_pct: null, down_kbps: null, up_kbps: null,
    });
  }
  start.textContent = t("again");
  start.disabled = false;
}

$("check-start").addEventListener("click", () => {
  run().catch((error) => console.error(error));
});
