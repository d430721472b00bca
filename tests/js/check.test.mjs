// Unit tests of the connection check's helpers (web/static/js/check/probe.js): `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { errorText, median } from "../../web/static/js/check/probe.js";

test("the median round trip", () => {
  assert.equal(median([]), undefined);
  assert.equal(median([30, 10, 20]), 20);
  assert.equal(median([40, 10, 20, 30]), 25);
});

test("the server's words for a refused request: a field's problem first", () => {
  const fields = { error: { status: 422, message: "Dữ liệu không hợp lệ", fields: [{ field: "probe", message: "Kết quả đo đường truyền không hợp lệ." }] } };
  assert.equal(errorText(fields, 422), "Kết quả đo đường truyền không hợp lệ.");
  assert.equal(errorText({ error: { status: 429, message: "Vui lòng thử lại sau một phút." } }, 429), "Vui lòng thử lại sau một phút.");
  assert.equal(errorText({}, 500), "500");
  assert.equal(errorText(null, 502), "502");
});
