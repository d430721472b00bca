// The secretary's live minutes page: keyboard entry, autosave with versions, live updates.
// Protocol (docs/minutes.md): the server sends {type: "state"|"entry"|"order"|"deleted"|"header"|
// "status"|"ack"|"conflict"|"error"}; the client sends {op, ref, ...} with the entry's version.
// An add carries an idempotency key and stays pending until acknowledged: after a reconnect it
// is sent again with the same key, and the server answers with the entry the first one made.

/**
 * @typedef {import("./minutes_types.js").UnitRef} UnitRef
 * @typedef {import("./minutes_types.js").Entry} Entry
 * @typedef {import("./minutes_types.js").Section} Section
 * @typedef {{unit_code: string, unit_name: string, present: string[], late: string[],
 *   left_early: string[], absent: string[], excused: string[]}} UnitAttendance
 * @typedef {{date: string, start: string, end: string, chair: string, secretary: string,
 *   attendance: UnitAttendance[]}} Header
 * @typedef {{minutes_id: number, status: string, header: Header, header_version: number,
 *   sections: Section[], carried: Entry[]}} State
 */

const STATES = /** @type {const} */ (["present", "late", "left_early", "absent", "excused"]);

const SAVE_DELAY_MS = 700;
const SHORT_KINDS = /** @type {Record<string, string>} */ ({
  i: "issue", l: "lesson", p: "adjustment", d: "decision", a: "action", n: "note",
});

/** A fresh idempotency key (crypto.randomUUID needs a secure context; getRandomValues does not). */
export function newKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} id @returns {HTMLElement} */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/**
 * A stored date (2026-12-06) as the record shows it: 06/12/2026.
 * @param {string} iso @returns {string}
 */
export function dayText(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
  return m ? `${m[3]}/${m[2]}/${m[1]}` : iso;
}

/** @param {string} id @returns {any} */
function readJson(id) {
  return JSON.parse(byId(id).textContent || "{}");
}

/**
 * Parse the composer's shortcuts: "/a @VNPT !2030-01-08 text".
 * @param {string} raw
 * @returns {{kind?: string, code?: string, due?: string, text: string}}
 */
export function parseLine(raw) {
  /** @type {{kind?: string, code?: string, due?: string, text: string}} */
  const out = { text: "" };
  const words = raw.trim().split(/\s+/);
  while (words.length) {
    const w = words[0];
    if (/^\/[a-z]$/.test(w) && SHORT_KINDS[w[1]]) out.kind = SHORT_KINDS[w[1]];
    else if (/^@[A-Za-z0-9_.-]+$/.test(w)) out.code = w.slice(1).toUpperCase();
    else if (/^!\d{4}-\d{2}-\d{2}$/.test(w)) out.due = w.slice(1);
    else break;
    words.shift();
  }
  out.text = words.join(" ");
  return out;
}

class MinutesPage {
  constructor() {
    const form = /** @type {HTMLFormElement} */ (byId("composer"));
    this.form = form;
    this.t = /** @type {Record<string, string>} */ (readJson("minutes-strings"));
    /** @type {State} */
    this.state = readJson("minutes-state");
    /** @type {Map<number, Entry>} */
    this.entries = new Map();
    /** @type {Map<number, number>} */
    this.timers = new Map();
    /** @type {Set<number>} entries with unsaved local text */
    this.dirty = new Set();
    this.nextRef = 1;
    /** @type {number|null} the header save awaiting its answer */
    this.headerRef = null;
    /** a header change made while one was awaiting its answer */
    this.headerAgain = false;
    /** @type {Map<string, Record<string, any>>} adds not yet acknowledged, by idempotency key */
    this.pending = new Map();
    /** @type {Map<number, string>} the key each add's ref carries */
    this.refKeys = new Map();
    /** @type {WebSocket|null} */
    this.ws = null;
    this.retry = 500;
    this.load(this.state);
    this.headerForm = /** @type {HTMLFormElement} */ (byId("header-form"));
    this.headerForm.addEventListener("change", () => this.saveHeader());
    this.headerForm.addEventListener("submit", (ev) => ev.preventDefault());
    byId("h-refresh").addEventListener("click", () =>
      this.send({ op: "attendance", header_version: this.state.header_version }));
    this.renderHeader();
    form.addEventListener("submit", (ev) => { ev.preventDefault(); this.compose(); });
    byId("c-text").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); this.compose(); }
    });
    this.connect();
  }

  /** @param {State} state */
  load(state) {
    this.state = state;
    this.entries.clear();
    for (const s of state.sections) for (const e of s.entries) this.entries.set(e.id, e);
    for (const e of state.carried) this.entries.set(e.id, e);
    this.render();
  }

  connect() {
    const url = new URL(this.form.dataset.ws || "", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.retry = 500;
      this.live(true);
      // Adds that were in flight when the link dropped go again, each with its own key.
      for (const key of this.pending.keys()) this.sendAdd(key);
    });
    ws.addEventListener("message", (ev) => this.receive(JSON.parse(String(ev.data))));
    ws.addEventListener("close", () => {
      this.live(false);
      this.headerRef = null;
      this.refKeys.clear(); // answers on this socket will not come; its adds stay pending
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    });
  }

  /** @param {boolean} on */
  live(on) {
    byId("live-status").textContent = on ? this.t.online : this.t.offline;
  }

  /** @param {Record<string, any>} message */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ ref: this.nextRef++, ...message }));
    byId("save-status").textContent = this.t.saving;
    return true;
  }

  /** Send (or send again) a pending add with its key. @param {string} key */
  sendAdd(key) {
    const message = this.pending.get(key);
    if (!message || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const ref = this.nextRef++;
    this.refKeys.set(ref, key);
    this.ws.send(JSON.stringify({ ...message, ref }));
    byId("save-status").textContent = this.t.saving;
  }

  /**
   * The answer to a pending add: done (acknowledged or refused), or to send again shortly.
   * @param {any} msg @returns {Record<string, any>|undefined} the add, if it was refused
   */
  settle(msg) {
    const key = this.refKeys.get(msg.ref);
    if (key === undefined) return undefined;
    this.refKeys.delete(msg.ref);
    if (msg.type === "error" && msg.retry) {
      setTimeout(() => this.sendAdd(key), 1000); // the server was busy: same key, a second later
      return undefined;
    }
    const message = this.pending.get(key);
    this.pending.delete(key);
    return msg.type === "error" ? message : undefined;
  }

  /** @param {any} msg */
  receive(msg) {
    // The ack comes before the push of the same change (the server answers first) and carries
    // it as `result`: apply it now, so that what follows the ack (the next header change) sees
    // it; the push after it brings the same again.
    if (msg.type === "ack" && msg.result && typeof msg.result.type === "string") this.receive(msg.result);
    if (msg.ref != null && msg.ref === this.headerRef && ["ack", "conflict", "error"].includes(msg.type)) {
      this.headerRef = null;
      if (this.headerAgain) { this.headerAgain = false; this.saveHeader(); }
    }
    const refused = msg.type === "ack" || msg.type === "error" ? this.settle(msg) : undefined;
    const text = /** @type {HTMLInputElement} */ (byId("c-text"));
    if (refused && !text.value) text.value = refused.text; // give the refused line back to fix it
    if (msg.type === "state") this.load(msg.state);
    else if (msg.type === "entry") this.upsert(msg.entry);
    else if (msg.type === "order") { for (const e of msg.entries) this.upsert(e, false); this.render(); }
    else if (msg.type === "deleted") { this.entries.delete(msg.id); this.render(); }
    else if (msg.type === "header") {
      this.state.header = msg.header;
      this.state.header_version = msg.header_version;
      this.renderHeader();
    }
    else if (msg.type === "status") location.reload();
    else if (msg.type === "ack") byId("save-status").textContent = this.t.saved;
    else if (msg.type === "conflict") this.conflict(msg.current, msg.message);
    else if (msg.type === "error") {
      byId("save-status").textContent = this.t.error;
      byId("composer-error").textContent = [msg.message, ...(msg.fields || []).map((/** @type {any} */ f) => f.message)].join(" ");
    }
  }

  renderHeader() {
    const h = this.state.header;
    /** @param {HTMLInputElement} input @param {string} value */
    const put = (input, value) => {
      // The field being typed in keeps the person's text; its change is sent on leaving it.
      // A change waiting to be sent keeps the whole form as the person left it.
      if (document.activeElement !== input && !this.headerAgain) input.value = value;
    };
    put(/** @type {HTMLInputElement} */ (byId("h-chair")), h.chair || "");
    put(/** @type {HTMLInputElement} */ (byId("h-secretary")), h.secretary || "");
    const body = byId("h-attendance");
    const inputs = /** @type {NodeListOf<HTMLInputElement>} */ (body.querySelectorAll("input"));
    const codes = new Set(h.attendance.map((u) => u.unit_code));
    if (inputs.length === h.attendance.length * STATES.length && [...inputs].every((i) => codes.has(i.dataset.unit || ""))) {
      for (const input of inputs) {
        const unit = h.attendance.find((u) => u.unit_code === input.dataset.unit);
        const state = /** @type {typeof STATES[number]} */ (input.dataset.state);
        if (unit) put(input, (unit[state] || []).join(", "));
      }
      return;
    }
    body.replaceChildren();
    for (const unit of h.attendance) {
      const tr = document.createElement("tr");
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = unit.unit_name || unit.unit_code || "—";
      tr.append(name);
      for (const state of STATES) {
        const td = document.createElement("td");
        const input = document.createElement("input");
        input.dataset.unit = unit.unit_code;
        input.dataset.state = state;
        input.value = (unit[state] || []).join(", ");
        input.setAttribute("aria-label", `${name.textContent} ${state}`);
        td.append(input);
        tr.append(td);
      }
      body.append(tr);
    }
  }

  saveHeader() {
    // One header save at a time: a second change made before the first's answer (and its new
    // header_version) arrives would be refused as a conflict, so it waits and goes out then.
    if (this.headerRef !== null) { this.headerAgain = true; return; }
    // Only names moved into a column are sent: each becomes a correction of the room's record
    // (sending every column would turn a stale page into corrections of people who just joined).
    /** @type {Record<string, Record<string, string[]>>} */
    const attendance = {};
    for (const input of /** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll("#h-attendance input"))) {
      const code = input.dataset.unit;
      const state = /** @type {typeof STATES[number]} */ (input.dataset.state);
      if (code === undefined || !state) continue;
      const unit = this.state.header.attendance.find((u) => u.unit_code === code);
      const shown = new Set(unit ? unit[state] || [] : []);
      const added = input.value.split(",").map((n) => n.trim()).filter((n) => n && !shown.has(n));
      if (!added.length) continue;
      attendance[code] = attendance[code] || {};
      attendance[code][state] = added;
    }
    const ref = this.nextRef;
    if (!this.send({
      op: "header", header_version: this.state.header_version,
      chair: /** @type {HTMLInputElement} */ (byId("h-chair")).value,
      secretary: /** @type {HTMLInputElement} */ (byId("h-secretary")).value,
      reason: /** @type {HTMLInputElement} */ (byId("h-reason")).value,
      attendance,
    })) return;
    this.headerRef = ref;
  }

  /**
   * Move an entry past its neighbour in its section. The server's place is the index among
   * all of the minutes' own entries (1 = first), whatever gaps deletions left in positions.
   * @param {Entry} entry @param {number} delta -1 up, 1 down
   */
  move(entry, delta) {
    const ordered = [...this.entries.values()]
      .filter((e) => e.minutes_id === this.state.minutes_id)
      .sort((a, b) => a.position - b.position || a.id - b.id);
    const i = ordered.findIndex((e) => e.id === entry.id);
    let j = i + delta;
    while (j >= 0 && j < ordered.length && ordered[j].section !== entry.section) j += delta;
    if (i < 0 || j < 0 || j >= ordered.length) return;
    this.send({ op: "move", id: entry.id, version: entry.version, position: j + 1 });
  }

  /** @param {Entry} entry @param {boolean} [redraw] */
  upsert(entry, redraw = true) {
    const mine = this.entries.get(entry.id);
    if (mine && this.dirty.has(entry.id)) {
      // Unsaved typing is kept; its save will meet the newer version and show the conflict.
      return;
    }
    const known = this.entries.has(entry.id);
    this.entries.set(entry.id, entry);
    const box = document.querySelector(`#entry-${entry.id} textarea`);
    if (known && redraw && box instanceof HTMLTextAreaElement && document.activeElement === box) {
      box.value = entry.text; // keep the caret's field: only its text follows the others' change
      return;
    }
    if (known && redraw) this.refresh(entry);
    else if (redraw) this.render();
  }

  compose() {
    const data = new FormData(this.form);
    const line = parseLine(String(data.get("text") || ""));
    const kind = line.kind || String(data.get("kind"));
    const unit = line.code && kind !== "action" ? line.code : String(data.get("unit") || "");
    const owner = line.code && kind === "action" ? line.code : String(data.get("owner_unit") || "");
    const link = String(data.get("link_id") || "");
    byId("composer-error").textContent = "";
    const key = newKey();
    this.pending.set(key, {
      op: "add", key, kind, text: line.text, unit,
      category: String(data.get("category") || ""), severity: String(data.get("severity") || ""),
      owner_unit: owner, due_date: line.due || String(data.get("due_date") || ""),
      link_id: link ? Number(link) : null,
    });
    // Kept until the server acknowledges it: sent now if the link is up, else on reconnecting.
    this.sendAdd(key);
    /** @type {HTMLInputElement} */ (byId("c-text")).value = "";
    byId("c-text").focus();
  }

  /** @param {Entry} entry */
  save(entry) {
    const box = /** @type {HTMLTextAreaElement|null} */ (document.querySelector(`#entry-${entry.id} textarea`));
    if (!box) return;
    this.dirty.delete(entry.id);
    this.send({
      op: "save", id: entry.id, version: entry.version, kind: entry.kind, text: box.value,
      section: entry.section, unit: entry.unit ? entry.unit.code : "", category: entry.category || "",
      severity: entry.severity || "", owner_unit: entry.owner_unit ? entry.owner_unit.code : "",
      owner_person: entry.owner_person ? entry.owner_person.email : "", due_date: entry.due_date || "",
      link_id: entry.link_id,
    });
  }

  /** @param {Entry} current @param {string} message */
  conflict(current, message) {
    const row = document.getElementById(`entry-${current.id}`);
    byId("save-status").textContent = message;
    if (!row) return;
    const box = /** @type {HTMLTextAreaElement} */ (row.querySelector("textarea"));
    const mine = box ? box.value : "";
    const note = document.createElement("div");
    note.className = "conflict notice";
    note.setAttribute("role", "alert");
    const p = document.createElement("p");
    p.textContent = `${this.t.conflict} «${current.text}»`;
    const theirs = document.createElement("button");
    theirs.type = "button";
    theirs.textContent = this.t.use_theirs;
    theirs.addEventListener("click", () => { this.dirty.delete(current.id); this.entries.set(current.id, current); this.refresh(current); });
    const keep = document.createElement("button");
    keep.type = "button";
    keep.className = "secondary";
    keep.textContent = this.t.keep_mine;
    keep.addEventListener("click", () => {
      this.entries.set(current.id, current);
      this.refresh(current);
      const fresh = /** @type {HTMLTextAreaElement|null} */ (document.querySelector(`#entry-${current.id} textarea`));
      if (fresh) fresh.value = mine;
      this.save(current);
    });
    note.append(p, theirs, keep);
    row.querySelector(".conflict")?.remove();
    row.append(note);
  }

  render() {
    const holder = byId("entries");
    holder.replaceChildren();
    const link = /** @type {HTMLSelectElement} */ (byId("c-link"));
    link.replaceChildren(new Option("—", ""));
    for (const section of this.state.sections) {
      const h = document.createElement("h2");
      h.textContent = this.t[`section_${section.key}`] || section.title;
      const list = document.createElement("ol");
      list.className = "entries";
      list.dataset.section = section.key;
      const own = [...this.entries.values()]
        .filter((e) => e.minutes_id === this.state.minutes_id && e.section === section.key)
        .sort((a, b) => a.position - b.position || a.id - b.id);
      for (const e of own) list.append(this.row(e, false));
      holder.append(h, list);
    }
    const carried = byId("carried");
    carried.replaceChildren();
    const list = document.createElement("ol");
    list.className = "entries";
    for (const e of this.entries.values()) {
      if (e.minutes_id !== this.state.minutes_id) list.append(this.row(e, true));
      if (e.kind === "issue") link.append(new Option(`#${e.id} ${e.text.slice(0, 60)}`, String(e.id)));
    }
    carried.append(list);
  }

  /** @param {Entry} entry */
  refresh(entry) {
    const row = document.getElementById(`entry-${entry.id}`);
    if (row) row.replaceWith(this.row(entry, entry.minutes_id !== this.state.minutes_id));
    else this.render();
  }

  /** @param {Entry} entry @param {boolean} carried @returns {HTMLLIElement} */
  row(entry, carried) {
    const li = document.createElement("li");
    li.id = `entry-${entry.id}`;
    li.className = `entry entry-${entry.kind}${entry.status === "closed" ? " closed" : ""}`;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = this.t[`kind_${entry.kind}`] || entry.kind;
    li.append(badge);
    if (entry.unit) {
      const unit = document.createElement("span");
      unit.className = "unit";
      unit.textContent = entry.unit.name || entry.unit.code;
      unit.title = entry.unit.code;
      li.append(" ", unit);
    }
    if (carried) {
      const text = document.createElement("span");
      text.textContent = ` ${entry.text} (${dayText(entry.raised_on)}, ${entry.raised_by})`;
      li.append(text);
    } else {
      const box = document.createElement("textarea");
      box.rows = 2;
      box.maxLength = 4000;
      box.value = entry.text;
      box.setAttribute("aria-label", badge.textContent);
      box.addEventListener("input", () => {
        this.dirty.add(entry.id);
        clearTimeout(this.timers.get(entry.id));
        this.timers.set(entry.id, window.setTimeout(() => this.save(this.entries.get(entry.id) || entry), SAVE_DELAY_MS));
      });
      box.addEventListener("blur", () => {
        if (this.dirty.has(entry.id)) { clearTimeout(this.timers.get(entry.id)); this.save(this.entries.get(entry.id) || entry); }
      });
      li.append(" ", box);
    }
    const actions = document.createElement("span");
    actions.className = "actions";
    /** @param {string} label @param {() => void} run */
    const button = (label, run) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.textContent = label;
      b.addEventListener("click", run);
      actions.append(b);
    };
    /** The entry as known now (pushes may have moved its version on since this row was drawn). */
    const now = () => this.entries.get(entry.id) || entry;
    if (entry.kind === "issue" || entry.kind === "action") {
      const closed = entry.status === "closed";
      button(closed ? this.t.reopen : this.t.close, () =>
        this.send({ op: "status", id: entry.id, version: now().version, status: closed ? "open" : "closed" }));
    }
    if (!carried) {
      button(this.t.up, () => this.move(now(), -1));
      button(this.t.down, () => this.move(now(), 1));
      button(this.t.delete, () => this.send({ op: "delete", id: entry.id, version: now().version }));
    }
    const history = document.createElement("a");
    history.href = `${this.form.dataset.history}${entry.id}/history`;
    history.textContent = this.t.history;
    actions.append(history);
    li.append(" ", actions);
    return li;
  }
}

if (typeof document !== "undefined" && document.getElementById("composer")) {
  new MinutesPage();
}
