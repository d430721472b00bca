// Unit tests of the stage's layout (web/static/js/room/layout.js): `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { coverage, fitGrid, speakerLayout, splitTiles } from "../../web/static/js/room/layout.js";

const STAGES = [
  [1366, 690],
  [1920, 1000],
  [390, 660],
  [768, 860],
];

test("the grid stays inside the stage, its tiles between 4:3 and 16:9", () => {
  for (const [w, h] of STAGES) {
    for (const n of [1, 2, 3, 4, 6, 9, 12, 16, 40]) {
      const g = fitGrid(w, h, n);
      assert.ok(g.cols * g.rows >= n, `${n} tiles in ${g.cols}×${g.rows}`);
      assert.ok(g.cols * g.width + 8 * (g.cols - 1) <= w + 0.01, `width ${w} ${n}`);
      assert.ok(g.rows * g.height + 8 * (g.rows - 1) <= h + 0.01, `height ${h} ${n}`);
      const shape = g.width / g.height;
      assert.ok(shape > 4 / 3 - 0.02 && shape < 16 / 9 + 0.02, `aspect ${g.width}x${g.height}`);
    }
  }
});

test("the tiles cover at least 70 % of a landscape stage", () => {
  for (const [w, h] of [[1366, 650], [1366, 690], [1920, 960], [1920, 1000]]) {
    for (const n of [1, 2, 4, 6, 9, 12, 16]) {
      const g = fitGrid(w, h, n);
      assert.ok(coverage(g, n, w, h) >= 0.7, `${n} on ${w}×${h}: ${coverage(g, n, w, h)}`);
    }
  }
});

test("known shapes: one fills, two side by side, four 2×2, six 3×2, nine 3×3", () => {
  assert.deepEqual([fitGrid(1366, 690, 1).cols, fitGrid(1366, 690, 1).rows], [1, 1]);
  assert.equal(fitGrid(1366, 690, 1).height, 690);
  assert.deepEqual([fitGrid(1366, 690, 2).cols, fitGrid(1366, 690, 2).rows], [2, 1]);
  assert.deepEqual([fitGrid(1366, 690, 4).cols, fitGrid(1366, 690, 4).rows], [2, 2]);
  assert.deepEqual([fitGrid(1366, 690, 6).cols, fitGrid(1366, 690, 6).rows], [3, 2]);
  assert.deepEqual([fitGrid(1366, 690, 9).cols, fitGrid(1366, 690, 9).rows], [3, 3]);
  // A phone stands up: three people one above the other.
  assert.deepEqual([fitGrid(390, 660, 3).cols, fitGrid(390, 660, 3).rows], [1, 3]);
});

test("forty participants: the videos large, the others compact", () => {
  assert.deepEqual(splitTiles(6, 6, 1366, 690), { large: 6, compact: 0 });
  assert.deepEqual(splitTiles(40, 6, 1366, 690), { large: 6, compact: 34 });
  assert.deepEqual(splitTiles(16, 6, 1920, 1000), { large: 16, compact: 0 });
});

test("speaker view: the big tile beside a strip on a wide stage, above it on a phone", () => {
  const wide = speakerLayout(1366, 690, 5);
  assert.equal(wide.stripSide, "right");
  assert.ok(wide.main.width > 3 * wide.strip.width);
  const tall = speakerLayout(390, 660, 2);
  assert.equal(tall.stripSide, "bottom");
  assert.ok(tall.main.width > tall.strip.width);
  assert.equal(speakerLayout(800, 450, 0).main.width, 800);
});

test("degenerate sizes give empty tiles, not errors", () => {
  assert.deepEqual(fitGrid(0, 0, 3), { cols: 1, rows: 3, width: 0, height: 0 });
  assert.equal(fitGrid(300, 200, 0).cols, 1);
});
