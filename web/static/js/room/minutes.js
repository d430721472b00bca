// The room's read-only minutes panel: loads GET /api/occurrences/{id}/minutes once seated, then
// follows the minutes' live socket (docs/minutes.md, "Live socket") and applies each change.
// Read-only: nothing is sent on the socket. Every text goes in with textContent.
//
// Ids tests rely on: #toggle-minutes[aria-expanded], #minutes-panel, #minutes-body,
// #minutes-note, #minutes-editor (secretary and chair), #minutes-sections
// li.minutes-entry[data-id][data-kind][data-status].

/**
 * @typedef {import("../minutes_types.js").Entry} Entry
 * @typedef {import("../minutes_types.js").Section} Section
 * @typedef {{minutes_id?: number, status: string, sections: Section[], carried?: Entry[], ws?: string}} MinutesData
 * @typedef {{api: string, editor: boolean}} MinutesConfig
 */

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;
const LOAD_TRIES = 5; // the minutes are created as the room opens; a member may ask a moment early
const REFUSED_MAX = 5; // sockets refused in a row (no longer readable): stop following

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag @param {string} [text] @param {string} [className]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, text = "", className = "") {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** @param {string} id @returns {HTMLElement} */
function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} missing`);
  return node;
}

export class MinutesPanel {
  /**
   * @param {MinutesConfig} config @param {Record<string, string>} t the room's strings
   */
  constructor(config, t) {
    this.config = config;
    this.t = t;
    /** @type {Section[]} */
    this.sections = [];
    /** @type {Entry[]} */
    this.carried = [];
    this.minutesId = 0;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.retry = RETRY_FIRST_MS;
    this.refused = 0;
    this.started = false;
    this.stopped = false;
    const toggle = byId("toggle-minutes");
    toggle.textContent = t.minutes;
    toggle.addEventListener("click", () => this.show(toggle.getAttribute("aria-expanded") !== "true"));
    this.show(false);
  }

  /** Open or fold the panel (the entries keep arriving while folded). @param {boolean} open */
  show(open) {
    const toggle = byId("toggle-minutes");
    toggle.setAttribute("aria-expanded", String(open));
    toggle.title = open ? this.t.minutes_hide : this.t.minutes_show;
    byId("minutes-body").hidden = !open;
  }

  /** Seated: load the minutes and follow them (once; a reconnect of the room changes nothing). */
  start() {
    if (this.started) return;
    this.started = true;
    byId("minutes-panel").hidden = false;
    if (!this.config.api) {
      this.note(this.t.minutes_sign_in);
      return;
    }
    this.load(LOAD_TRIES);
  }

  /** The meeting is over for this page: stop following. */
  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close();
  }

  /** @param {string} text a short note instead of the minutes (never an error box) */
  note(text) {
    const note = byId("minutes-note");
    note.textContent = text;
    note.hidden = !text;
  }

  /** @param {number} tries */
  async load(tries) {
    /** @type {Response | null} */
    let response = null;
    try {
      response = await fetch(this.config.api, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch {
      response = null;
    }
    const json = response && response.ok && (response.headers.get("Content-Type") || "").includes("json");
    if (!json || !response) {
      // Not yet created (404) or not readable (403): try a few times, then a short note.
      if (tries > 1 && !this.stopped && (!response || response.status === 404)) {
        setTimeout(() => this.load(tries - 1), RETRY_FIRST_MS);
      } else {
        this.sections = [];
        this.carried = [];
        byId("minutes-editor").hidden = true;
        this.draw();
        this.note(this.t.minutes_unavailable);
      }
      return;
    }
    /** @type {MinutesData} */
    const data = await response.json();
    this.apply(data);
    if (data.ws && !this.ws) this.connect(data.ws);
  }

  /** @param {MinutesData} data the whole minutes (the API answer, or the socket's `state`) */
  apply(data) {
    this.minutesId = data.minutes_id || this.minutesId;
    this.sections = data.sections || [];
    this.carried = data.carried || [];
    this.note("");
    const editor = /** @type {HTMLAnchorElement} */ (byId("minutes-editor"));
    const editable = data.status === "draft" || data.status === "submitted";
    editor.hidden = !(this.config.editor && this.minutesId && editable);
    if (!editor.hidden) {
      editor.href = `/minutes/${this.minutesId}/edit`;
      editor.textContent = this.t.minutes_editor;
    }
    this.draw();
  }

  /** @param {string} address the minutes' socket path */
  connect(address) {
    if (this.stopped) return;
    const url = new URL(address, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      this.retry = RETRY_FIRST_MS;
      this.refused = 0;
    });
    ws.addEventListener("message", (event) => {
      try {
        this.receive(JSON.parse(String(event.data)));
      } catch {
        // a message we cannot read changes nothing
      }
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws || this.stopped) return;
      this.refused = opened ? 0 : this.refused + 1;
      if (this.refused >= REFUSED_MAX) return;
      setTimeout(() => this.connect(address), this.retry);
      this.retry = Math.min(this.retry * 2, RETRY_MAX_MS);
    });
  }

  /** @param {any} message one pushed change */
  receive(message) {
    if (message.type === "state") this.apply(message.state);
    else if (message.type === "entry") this.upsert(message.entry);
    else if (message.type === "order") {
      for (const entry of message.entries) this.upsert(entry, false);
      this.draw();
    } else if (message.type === "deleted") {
      for (const section of this.sections) section.entries = section.entries.filter((e) => e.id !== message.id);
      this.carried = this.carried.filter((e) => e.id !== message.id);
      this.draw();
    } else if (message.type === "status" && this.config.api) {
      this.load(1); // submitted, approved, corrected: what this person reads may change
    }
  }

  /** @param {Entry} entry @param {boolean} [redraw] */
  upsert(entry, redraw = true) {
    const carried = this.minutesId !== 0 && entry.minutes_id !== this.minutesId;
    if (carried) {
      const at = this.carried.findIndex((e) => e.id === entry.id);
      if (at >= 0) this.carried[at] = entry;
    } else {
      for (const section of this.sections) section.entries = section.entries.filter((e) => e.id !== entry.id);
      const home = this.sections.find((s) => s.key === entry.section) || this.sections[this.sections.length - 1];
      if (home) {
        home.entries.push(entry);
        home.entries.sort((a, b) => a.position - b.position || a.id - b.id);
      }
    }
    if (redraw) this.draw();
  }

  /** @param {Entry} entry @returns {HTMLLIElement} */
  entryItem(entry) {
    const item = el("li", "", "minutes-entry");
    item.dataset.id = String(entry.id);
    item.dataset.kind = entry.kind;
    item.dataset.status = entry.status;
    if (entry.status === "closed") item.classList.add("closed");
    item.append(el("span", this.t[`kind_${entry.kind}`] || entry.kind, "badge"));
    if (entry.unit) item.append(" ", el("span", entry.unit.code, "code"));
    item.append(" ", el("span", entry.text, "entry-text"));
    const extra = [];
    if (entry.due_date) extra.push(entry.due_date);
    if (entry.kind === "issue" || entry.kind === "action") extra.push(this.t[`entry_${entry.status}`] || entry.status);
    if (extra.length) item.append(" ", el("span", `· ${extra.join(" · ")}`, "muted"));
    return item;
  }

  /** Every section with its entries, then what was carried over. */
  draw() {
    /** @type {HTMLElement[]} */
    const parts = [];
    for (const section of this.sections) {
      const block = el("section", "", "minutes-section");
      block.dataset.section = section.key;
      block.append(el("h3", section.title));
      if (section.entries.length) {
        const list = el("ul", "", "minutes-entries");
        list.append(...section.entries.map((e) => this.entryItem(e)));
        block.append(list);
      } else {
        block.append(el("p", this.t.minutes_empty, "help"));
      }
      parts.push(block);
    }
    if (this.carried.length) {
      const block = el("section", "", "minutes-section");
      block.append(el("h3", this.t.carried));
      const list = el("ul", "", "minutes-entries");
      list.append(...this.carried.map((e) => this.entryItem(e)));
      block.append(list);
      parts.push(block);
    }
    byId("minutes-sections").replaceChildren(...parts);
  }
}
