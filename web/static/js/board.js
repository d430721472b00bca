// The readiness board (docs/readiness/board.md): the server sends {type: "board", board} first and
// again whenever the board changes (a unit joins or leaves, a check, an action by anyone); this page
// redraws the counts and the rows in the order given (problems first). The actions are plain forms
// sent with fetch; their answer carries the board too, so the page does not wait for the socket.

/**
 * @typedef {{at: string, verdict: string, rtt_ms: number|null, loss_pct: number|null,
 *   up_kbps: number|null, down_kbps: number|null, person: string}} Check
 * @typedef {{unit_id: number, code: string, name: string, status: string, connected: string[],
 *   phone: string, contacts: {name: string, phone: string}[], operator: string, check: Check|null,
 *   excused: boolean,
 *   excuse_reason: string, excused_by: string, helper_id: number|null, helper: string,
 *   help_note: string, help_at: string|null}} Row
 * @typedef {{occurrence_id: number, title: string, start: string, end: string, opens_at: string,
 *   counts: Record<string, number>, rows: Row[]}} Board
 * @typedef {{texts: Record<string, string>, statuses: Record<string, string>,
 *   verdicts: Record<string, string>, language: string, timezone: string}} Page
 */

/** @param {string} id @returns {HTMLElement} */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/**
 * "%(name)s" placeholders filled in.
 * @param {string} text @param {Record<string, string>} values @returns {string}
 */
export function fill(text, values) {
  return text.replace(/%\((\w+)\)s/g, (_m, key) => values[key] ?? "");
}

/**
 * @param {string} tag @param {string} [text] @param {string} [className]
 * @returns {HTMLElement}
 */
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** @param {string} phone @param {string} text @returns {HTMLAnchorElement} */
function telLink(phone, text) {
  const a = /** @type {HTMLAnchorElement} */ (el("a", text));
  a.href = `tel:${phone.replace(/\s+/g, "")}`;
  return a;
}

class BoardPage {
  /** @param {Page} page */
  constructor(page) {
    this.page = page;
    this.t = page.texts;
    this.list = /** @type {HTMLOListElement} */ (byId("board-rows"));
    this.retry = 500;
    this.number = new Intl.NumberFormat(page.language, { maximumFractionDigits: 1 });
    this.time = new Intl.DateTimeFormat(page.language, {
      timeZone: page.timezone, hour: "2-digit", minute: "2-digit", hour12: false,
    });
    this.list.addEventListener("submit", (ev) => this.submit(ev));
  }

  connect() {
    const url = new URL(this.list.dataset.ws || "", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    ws.addEventListener("open", () => {
      this.retry = 500;
      this.live(true);
    });
    ws.addEventListener("message", (ev) => {
      const message = JSON.parse(String(ev.data));
      if (message && message.type === "board") this.draw(/** @type {Board} */ (message.board));
    });
    ws.addEventListener("close", () => {
      this.live(false);
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    });
  }

  /** @param {boolean} on */
  live(on) {
    const badge = byId("board-live");
    badge.dataset.state = on ? "on" : "off";
    badge.textContent = on ? this.t.live : this.t.offline;
  }

  /** @param {Board} board */
  draw(board) {
    for (const [status, count] of Object.entries(board.counts)) {
      const cell = document.querySelector(`[data-count="${status}"]`);
      if (cell) cell.textContent = String(count);
    }
    /** @type {Map<string, HTMLElement>} */
    const existing = new Map();
    for (const li of Array.from(this.list.children)) {
      if (li instanceof HTMLElement && li.dataset.unit) existing.set(li.dataset.unit, li);
    }
    const wanted = board.rows.map((row) => {
      const li = existing.get(String(row.unit_id)) || this.newRow(row);
      existing.delete(String(row.unit_id));
      this.fillRow(li, row);
      return li;
    });
    for (const gone of existing.values()) gone.remove();
    // Reorder only when the order changed: moving the row being typed in would lose the focus.
    const current = Array.from(this.list.children);
    if (wanted.some((li, i) => current[i] !== li)) {
      for (const li of wanted) this.list.appendChild(li);
    }
  }

  /** @param {Row} row @returns {HTMLElement} */
  newRow(row) {
    const li = el("li", undefined, "board-row");
    li.id = `unit-${row.unit_id}`;
    li.dataset.unit = String(row.unit_id);
    const head = el("div", undefined, "board-head");
    head.append(el("strong", row.name, "board-unit"), el("span", "", "board-status"));
    /** @type {HTMLElement} */ (head.lastChild).dataset.part = "status";
    li.append(head);
    for (const part of ["connected", "check", "phone", "mark"]) {
      const p = el("p", undefined, `board-${part}`);
      p.dataset.part = part;
      li.append(p);
    }
    const template = document.getElementById("board-actions-template");
    if (template instanceof HTMLTemplateElement) {
      const actions = /** @type {DocumentFragment} */ (template.content.cloneNode(true));
      for (const form of Array.from(actions.querySelectorAll("form"))) {
        // The attribute, not the property: a template's content has no base address to resolve against.
        const action = form.getAttribute("action") || "";
        form.setAttribute("action", action.replace("/units/0/", `/units/${row.unit_id}/`));
      }
      for (const labelled of Array.from(actions.querySelectorAll("[id]"))) {
        labelled.id = labelled.id.replace(/-0$/, `-${row.unit_id}`);
      }
      for (const label of Array.from(actions.querySelectorAll("label"))) {
        label.htmlFor = label.htmlFor.replace(/-0$/, `-${row.unit_id}`);
      }
      li.append(actions);
    }
    return li;
  }

  /** @param {HTMLElement} li @param {string} part @returns {HTMLElement} */
  part(li, part) {
    const node = li.querySelector(`[data-part="${part}"]`);
    if (!(node instanceof HTMLElement)) throw new Error(`missing part ${part}`);
    return node;
  }

  /** @param {number|null} value @param {string} label @param {string} unit @returns {string} */
  figure(value, label, unit) {
    return value === null || value === undefined ? "" : ` · ${label} ${this.number.format(value)} ${unit}`;
  }

  /** @param {HTMLElement} li @param {Row} row */
  fillRow(li, row) {
    const t = this.t;
    li.dataset.status = row.status;
    this.part(li, "status").textContent = this.page.statuses[row.status] || row.status;

    const connected = this.part(li, "connected");
    connected.hidden = row.connected.length === 0;
    connected.textContent = row.connected.length ? `${t.connected}: ${row.connected.join(", ")}` : "";

    const check = this.part(li, "check");
    check.replaceChildren();
    if (row.check) {
      const c = row.check;
      const verdict = el("span", this.page.verdicts[c.verdict] || c.verdict, "verdict");
      verdict.dataset.verdict = c.verdict;
      const figures = this.figure(c.rtt_ms, t.rtt, "ms") + this.figure(c.loss_pct, t.loss, "%")
        + this.figure(c.up_kbps, t.up, "kbit/s") + this.figure(c.down_kbps, t.down, "kbit/s");
      const when = fill(t.check_at, { time: this.time.format(new Date(c.at)), person: c.person || "—" });
      check.append(verdict, document.createTextNode(`${figures} `), el("span", `(${when})`, "muted"));
    } else {
      check.append(el("span", t.no_check, "muted"));
    }

    const phone = this.part(li, "phone");
    phone.replaceChildren();
    if (row.phone) {
      phone.append(telLink(row.phone, `${t.call} ${row.phone}`));
    } else if (row.contacts.length) {
      row.contacts.forEach((c, i) => {
        if (i) phone.append(document.createTextNode(" · "));
        phone.append(telLink(c.phone, `${c.name} ${c.phone}`));
      });
    } else {
      phone.append(el("span", t.no_phone, "muted"));
    }
    if (row.operator) phone.append(document.createTextNode(" "), el("span", `· ${t.operator}: ${row.operator}`, "muted"));

    const mark = this.part(li, "mark");
    const notes = [];
    if (row.excused) notes.push(fill(t.excused_by, { person: row.excused_by || "—", reason: row.excuse_reason }));
    if (row.helper) {
      notes.push(fill(t.helped_by, { person: row.helper }) + (row.help_note ? `: ${row.help_note}` : ""));
    }
    mark.hidden = notes.length === 0;
    mark.textContent = notes.join(" · ");

    /** @param {string} action @param {boolean} shown */
    const show = (action, shown) => {
      const form = li.querySelector(`form[data-board-action="${action}"]`);
      if (form instanceof HTMLFormElement) form.hidden = !shown;
    };
    show("excuse", !row.excused);
    show("unexcuse", row.excused);
    show("unhelp", row.helper_id !== null);
  }

  /** @param {SubmitEvent} ev */
  async submit(ev) {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.boardAction) return;
    ev.preventDefault();
    const error = byId("board-error");
    error.hidden = true;
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const body = new URLSearchParams();
      for (const [name, value] of new FormData(form)) body.append(name, String(value));
      const response = await fetch(form.action, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const answer = await response.json().catch(() => null);
      if (!response.ok) {
        error.textContent = (answer && answer.error && answer.error.message) || this.t.failed;
        error.hidden = false;
        return;
      }
      for (const input of Array.from(form.querySelectorAll("input:not([type=hidden])"))) {
        /** @type {HTMLInputElement} */ (input).value = "";
      }
      if (answer && answer.board) this.draw(/** @type {Board} */ (answer.board));
    } catch {
      error.textContent = this.t.failed;
      error.hidden = false;
    } finally {
      if (button) button.disabled = false;
    }
  }
}

if (typeof document !== "undefined" && document.getElementById("board-rows")) {
  const page = /** @type {Page} */ (JSON.parse(byId("board-texts").textContent || "{}"));
  new BoardPage(page).connect();
}
