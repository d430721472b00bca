// The signaling protocol client (docs/signaling.md): one WebSocket at a time, join, offer/answer,
// events. No DOM here: room.js draws the page from the events this dispatches.
//
// The same Signaling object lives through reconnects: `join()` opens a new socket and forgets
// the previous one, whose messages and close are ignored from then on (the server closes it
// with 4103 "replaced", or it is already gone).

/**
 * @typedef {{urls: string | string[], username?: string, credential?: string}} IceServer
 * @typedef {{type: "welcome", participant: string, protocol: number, iceServers: IceServer[]}} Welcome
 * @typedef {{type: string, [field: string]: any}} ServerMessage
 * @typedef {{[mid: string]: "microphone" | "camera" | "screen"}} Sources
 * @typedef {{occurrence: number, token?: string, audio: boolean, video: boolean, audioOnly?: boolean,
 *   offer?: {sdp: string, sources: Sources}}} JoinRequest
 * @typedef {{rttMs: number, lossPct: number, bitrateKbps: number}} Stats
 */

const JOIN_TIMEOUT_MS = 15_000;
const ANSWER_TIMEOUT_MS = 15_000;

/** A signaling connection; each server message is dispatched as a CustomEvent named by its type. */
export class Signaling extends EventTarget {
  /** @param {string} path the room's WebSocket path, e.g. /rooms/12/ws */
  constructor(path) {
    super();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    /** @type {string} */
    this.url = `${scheme}//${location.host}${path}`;
    /** @type {WebSocket | null} the current socket; any other is stale */
    this.ws = null;
    /** @type {{resolve: (sdp: string) => void, reject: (error: Error) => void} | null} */
    this._answer = null;
    /** @type {number} Date.now() of the last message from the server */
    this.lastHeard = 0;
  }

  /**
   * Open a new socket (dropping the current one) and send `join`; resolves with `welcome`,
   * rejects if the socket closes or stays silent first.
   * @param {JoinRequest} join
   * @returns {Promise<Welcome>}
   */
  join(join) {
    this.forget();
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let welcomed = false;
      const timer = setTimeout(() => {
        if (welcomed || this.ws !== ws) return;
        this.forget();
        reject(new Error("no answer from the server"));
      }, JOIN_TIMEOUT_MS);
      ws.addEventListener("open", () => {
        if (this.ws === ws) this.send("join", { ...join });
      });
      ws.addEventListener("message", (event) => {
        if (this.ws !== ws) return;
        this.lastHeard = Date.now();
        /** @type {ServerMessage} */
        let message;
        try {
          message = JSON.parse(String(event.data));
        } catch {
          return;
        }
        if (message.type === "welcome" && !welcomed) {
          welcomed = true;
          clearTimeout(timer);
          resolve(/** @type {Welcome} */ (message));
        }
        if (message.type === "answer" && this._answer) {
          const pending = this._answer;
          this._answer = null;
          pending.resolve(String(message.sdp));
        }
        this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
      });
      ws.addEventListener("close", (event) => {
        clearTimeout(timer);
        if (this.ws !== ws) return; // a socket we replaced or dropped on purpose
        this.ws = null;
        this._failAnswer();
        if (!welcomed) reject(new Error(event.reason || `closed ${event.code}`));
        this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code, reason: event.reason } }));
      });
    });
  }

  /** Drop the current socket without a `close` event (before a reconnect); safe to call twice. */
  forget() {
    const ws = this.ws;
    this.ws = null;
    this._failAnswer();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  _failAnswer() {
    if (this._answer) {
      const pending = this._answer;
      this._answer = null;
      pending.reject(new Error("the connection closed before the answer"));
    }
  }

  /** Whether the current socket is open. */
  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Send one message.
   * @param {string} type
   * @param {Record<string, unknown>} [fields]
   */
  send(type, fields = {}) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type, ...fields }));
    }
  }

  /**
   * Send an offer; resolves with the server's answer SDP (one offer at a time).
   * @param {string} sdp
   * @param {Sources} sources
   * @param {boolean} [restart] a new peer connection replacing the lost one (same socket)
   * @returns {Promise<string>}
   */
  offer(sdp, sources, restart = false) {
    const answer = this.expectAnswer();
    this.send("offer", restart ? { sdp, sources, restart } : { sdp, sources });
    return answer;
  }

  /**
   * The answer to the offer in flight (sent with `join`, or by `offer`); rejects when the socket
   * closes, after 15 s, or when dropped (`dropAnswer`).
   * @returns {Promise<string>}
   */
  expectAnswer() {
    this._failAnswer();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this._answer && this._answer.resolve === done) {
          this._answer = null;
          reject(new Error("no answer to the offer"));
        }
      }, ANSWER_TIMEOUT_MS);
      /** @param {string} answer */
      const done = (answer) => {
        clearTimeout(timer);
        resolve(answer);
      };
      this._answer = {
        resolve: done,
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  /** No answer will come (an offer sent with `join` from the lobby is dropped by the server). */
  dropAnswer() {
    this._failAnswer();
  }

  /** @param {RTCIceCandidate} candidate */
  candidate(candidate) {
    this.send("candidate", {
      candidate: candidate.candidate,
      sdpMid: candidate.sdpMid,
      sdpMLineIndex: candidate.sdpMLineIndex,
    });
  }

  /** @param {boolean} audioMuted @param {boolean} videoMuted */
  mute(audioMuted, videoMuted) {
    this.send("mute", { audio: audioMuted, video: videoMuted });
  }

  /** @param {boolean} raised */
  hand(raised) {
    this.send("hand", { raised });
  }

  /** @param {boolean} enabled stop (true) or resume receiving video */
  audioOnly(enabled) {
    this.send("audio_only", { enabled });
  }

  /** @param {Stats} stats this page's measure of its connection */
  stats(stats) {
    this.send("stats", { ...stats });
  }

  /**
   * The rendered size of the tile showing each of our video slots, in device pixels.
   * @param {Record<string, [number, number]>} sizes by mid
   */
  tiles(sizes) {
    this.send("tiles", { tiles: sizes });
  }

  /** Keep-alive; the server answers `pong`. */
  ping() {
    this.send("ping");
  }

  /**
   * A moderator's action on the room, or on one person (`target`: a person id).
   * @param {string} action @param {number} [target]
   */
  moderate(action, target) {
    this.send("moderate", target === undefined ? { action } : { action, target: String(target) });
  }

  /** @param {string} text */
  chat(text) {
    this.send("chat", { text });
  }

  /** Leave the room; the server closes the socket with 1000. */
  leave() {
    this.send("leave");
  }

  /** Close without leaving politely (safe to call twice). */
  close() {
    this.forget();
  }
}
