// The signaling protocol client (docs/signaling.md): one WebSocket, join, offer/answer, events.
// No DOM here: room.js draws the page from the events this dispatches.

/**
 * @typedef {{urls: string | string[], username?: string, credential?: string}} IceServer
 * @typedef {{type: "welcome", participant: string, protocol: number, iceServers: IceServer[]}} Welcome
 * @typedef {{type: string, [field: string]: any}} ServerMessage
 * @typedef {{occurrence: number, token?: string, audio: boolean, video: boolean}} JoinRequest
 * @typedef {{[mid: string]: "microphone" | "camera" | "screen"}} Sources
 */

/** A signaling connection; each server message is dispatched as a CustomEvent named by its type. */
export class Signaling extends EventTarget {
  /** @param {string} path the room's WebSocket path, e.g. /rooms/12/ws */
  constructor(path) {
    super();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    /** @type {string} */
    this.url = `${scheme}//${location.host}${path}`;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {((sdp: string) => void) | null} */
    this._answer = null;
  }

  /**
   * Open the socket and send `join`; resolves with `welcome`, rejects if the socket closes first.
   * @param {JoinRequest} join
   * @returns {Promise<Welcome>}
   */
  join(join) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let welcomed = false;
      ws.addEventListener("open", () => this.send("join", { ...join }));
      ws.addEventListener("message", (event) => {
        /** @type {ServerMessage} */
        let message;
        try {
          message = JSON.parse(String(event.data));
        } catch {
          return;
        }
        if (message.type === "welcome" && !welcomed) {
          welcomed = true;
          resolve(/** @type {Welcome} */ (message));
        }
        if (message.type === "answer" && this._answer) {
          const done = this._answer;
          this._answer = null;
          done(String(message.sdp));
        }
        this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
      });
      ws.addEventListener("close", (event) => {
        if (!welcomed) reject(new Error(event.reason || `closed ${event.code}`));
        this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code, reason: event.reason } }));
      });
    });
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
   * Send an offer; resolves with the server's answer SDP.
   * @param {string} sdp
   * @param {Sources} sources
   * @returns {Promise<string>}
   */
  offer(sdp, sources) {
    return new Promise((resolve) => {
      this._answer = resolve;
      this.send("offer", { sdp, sources });
    });
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
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }
}
