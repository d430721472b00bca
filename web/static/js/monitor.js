// The live connection monitoring page (docs/readiness/monitor.md): the server sends
// {type: "state"} after every sample (every unit and its connections) and {type: "alert"} when a
// unit drops out or stays on audio only. The page only listens. It draws the same markup as
// web/templates/readiness/_monitor_unit.html.

/**
 * @typedef {{participant: string, person_id: number, name: string, downlink_kbps: number|null,
 *   uplink_kbps: number|null, loss_pct: number|null, rtt_ms: number|null, layer: string|null,
 *   paused: boolean, audio_only: boolean, below_wanted: boolean, reconnects: number,
 *   claim_rtt_ms: number|null, claim_loss_pct: number|null, claim_flags: string[]}} ParticipantView
 * @typedef {{unit_id: number|null, code: string, name: string, invited: boolean, status: string,
 *   dropouts: number, reconnects: number, limited: boolean, participants: ParticipantView[]}} UnitView
 * @typedef {{kind: string, unit_id: number, unit: string, since: string}} AlertView
 * @typedef {{type: "state", occurrence: number, at: string, units: UnitView[], alerts: AlertView[]}} StateMessage
 * @typedef {{type: "alert", alert: AlertView}} AlertMessage
 */

/** @param {string} id @returns {HTMLElement} */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/** @type {Record<string, string>} */
const strings = JSON.parse(byId("monitor-strings").textContent || "{}");
const numbers = new Intl.NumberFormat(document.documentElement.lang || "vi", { maximumFractionDigits: 1 });

/** @param {string} template @param {Record<string, string>} values */
function fill(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, name) => values[name] ?? "");
}

/** @param {number|null} value */
function num(value) {
  return value === null ? "—" : numbers.format(value);
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

/** A figure: a label, the value in a span named by `field`, a unit. */
function figure(/** @type {string} */ before, /** @type {string} */ field, /** @type {string} */ value, /** @type {string} */ after) {
  const span = el("span", before);
  const inner = el("span", value);
  inner.dataset.field = field;
  span.append(inner, after);
  return span;
}

/** @param {ParticipantView} p */
function participantItem(p) {
  const li = el("li");
  li.dataset.participant = p.participant;
  li.dataset.person = String(p.person_id);
  li.append(el("strong", p.name), " ");
  const figures = el("span", undefined, "monitor-figures");
  const layer = p.audio_only ? strings.audio_only_label : p.paused ? strings.paused : p.layer || "—";
  const layerSpan = el("span", layer);
  layerSpan.dataset.field = "layer";
  figures.append(
    figure("↓ ", "down", num(p.downlink_kbps), " kbit/s"), " · ",
    figure("↑ ", "up", num(p.uplink_kbps), " kbit/s"), " · ",
    figure(`${strings.loss || ""} `, "loss", num(p.loss_pct), " %"), " · ",
    figure(`${strings.rtt || ""} `, "rtt", num(p.rtt_ms), " ms"), " · ",
    layerSpan,
  );
  if (p.below_wanted) figures.append(" · ", el("span", strings.below, "badge"));
  if (p.reconnects) figures.append(" · ", el("span", `${strings.reconnects}: ${p.reconnects}`));
  if (p.claim_flags.length) {
    const claim = el("span", strings.claim_differs, "badge status-open");
    claim.dataset.field = "claim";
    figures.append(" · ", claim);
  }
  li.append(figures);
  return li;
}

/** @param {UnitView} unit */
function unitSection(unit) {
  const section = el("section", undefined, `card monitor-unit status-${unit.status}`);
  section.dataset.unit = unit.unit_id === null ? "" : String(unit.unit_id);
  section.dataset.status = unit.status;
  const title = el("h2", `${unit.name || strings.no_unit} `);
  const badge = el("span", strings[`status_${unit.status}`] || unit.status, "badge");
  badge.dataset.field = "status";
  title.append(badge);
  const counts = el("p", undefined, "muted");
  counts.append(figure(`${strings.dropouts}: `, "dropouts", String(unit.dropouts), ""), " · ",
    figure(`${strings.reconnects}: `, "reconnects", String(unit.reconnects), ""));
  section.append(title, counts);
  if (unit.participants.length) {
    const list = el("ul", undefined, "monitor-participants");
    list.append(...unit.participants.map(participantItem));
    section.append(list);
  }
  return section;
}

/** @param {AlertView} alert */
function alertText(alert) {
  return fill(strings[alert.kind] || alert.kind, { unit: alert.unit, minutes: strings.minutes || "" });
}

/** @param {AlertView} alert */
function alertNode(alert) {
  const p = el("p", alertText(alert), "notice warning monitor-alert");
  p.setAttribute("role", "alert");
  p.dataset.kind = alert.kind;
  p.dataset.unit = String(alert.unit_id);
  return p;
}

/** @param {StateMessage} state */
function draw(state) {
  const units = byId("monitor-units");
  if (state.units.length) units.replaceChildren(...state.units.map(unitSection));
  byId("monitor-alerts").replaceChildren(...state.alerts.map(alertNode));
}

function connect() {
  const live = byId("monitor-live");
  const url = new URL(live.dataset.socket || "", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  socket.addEventListener("open", () => { live.textContent = strings.live; });
  socket.addEventListener("message", (event) => {
    /** @type {StateMessage|AlertMessage} */
    const message = JSON.parse(String(event.data));
    if (message.type === "state") draw(message);
    else if (message.type === "alert") byId("monitor-alerts").append(alertNode(message.alert));
  });
  socket.addEventListener("close", () => {
    live.textContent = strings.offline;
    window.setTimeout(connect, 3000 + Math.random() * 2000);
  });
}

connect();
