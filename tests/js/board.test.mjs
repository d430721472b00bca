// Unit tests of the readiness board's page helpers (web/static/js/board.js): `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fill } from "../../web/static/js/board.js";

test("placeholders are filled, unknown ones left empty, text kept as text", () => {
  assert.equal(fill("%(person)s đang hỗ trợ", { person: "Đặng Quang Huy" }), "Đặng Quang Huy đang hỗ trợ");
  assert.equal(fill("Kiểm tra lúc %(time)s, %(who)s", { time: "07:05" }), "Kiểm tra lúc 07:05, ");
  assert.equal(fill("%(reason)s", { reason: "<b>%(x)s</b>" }), "<b>%(x)s</b>");
});
