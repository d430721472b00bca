// The stage's tile layout: pure functions of the stage's size and the tile count (no DOM), so
// they are unit-tested with `node --test tests/js/` (make typecheck). room.js measures the stage
// with a ResizeObserver and applies the result as CSS custom properties.

/**
 * @typedef {{cols: number, rows: number, width: number, height: number}} Grid
 *   `width` × `height`: one tile's size in CSS pixels
 * @typedef {{main: {width: number, height: number}, strip: Grid, stripSide: "bottom" | "right"}} Speaker
 */

/** Tiles are 16:9 pictures. */
export const ASPECT = 16 / 9;
/** The squarest a tile gets when its cell is tall (the picture cropped at its sides). */
export const MIN_ASPECT = 4 / 3;

/**
 * The grid of `count` equal tiles that fills a `width` × `height` area best: every column count
 * is tried, the one giving the largest total tile area wins (ties: fewer empty cells). A tile's
 * shape follows its cell between 4:3 and 16:9 (the video is cropped at its edges, never the
 * face in the middle), so two people on a wide screen are not two letterboxed bands.
 * The whole grid is inside the area: nothing scrolls.
 * @param {number} width @param {number} height @param {number} count
 * @param {{gap?: number, aspect?: number, minAspect?: number}} [options]
 * @returns {Grid}
 */
export function fitGrid(width, height, count, options = {}) {
  const gap = options.gap ?? 8;
  const maxAspect = options.aspect ?? ASPECT;
  const minAspect = Math.min(options.minAspect ?? MIN_ASPECT, maxAspect);
  const n = Math.max(1, Math.floor(count));
  if (!(width > 0) || !(height > 0)) return { cols: 1, rows: n, width: 0, height: 0 };
  /** @type {Grid} */
  let best = { cols: 1, rows: n, width: 0, height: 0 };
  let bestArea = 0;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cellW = (width - gap * (cols - 1)) / cols;
    const cellH = (height - gap * (rows - 1)) / rows;
    if (cellW <= 0 || cellH <= 0) continue;
    const shape = Math.min(maxAspect, Math.max(minAspect, cellW / cellH));
    const tileW = Math.min(cellW, cellH * shape);
    const tileH = Math.min(cellH, tileW / shape);
    const area = tileW * tileH;
    if (area > bestArea * 1.001 || (area >= bestArea * 0.999 && cols * rows < best.cols * best.rows)) {
      bestArea = area;
      best = { cols, rows, width: Math.floor(tileW), height: Math.floor(tileH) };
    }
  }
  return best;
}

/**
 * Speaker view: one large tile (the speaker, the pinned chair or a screen share) and a strip of
 * the others, beside it on a wide stage, under it on a tall one.
 * @param {number} width @param {number} height @param {number} others tiles in the strip
 * @param {{gap?: number, aspect?: number}} [options]
 * @returns {Speaker}
 */
export function speakerLayout(width, height, others, options = {}) {
  const gap = options.gap ?? 8;
  const aspect = options.aspect ?? ASPECT;
  const fixed = { gap, aspect, minAspect: aspect };
  if (others <= 0) {
    const only = fitGrid(width, height, 1, fixed);
    return { main: { width: only.width, height: only.height }, strip: { cols: 0, rows: 0, width: 0, height: 0 }, stripSide: "bottom" };
  }
  const wide = width / Math.max(1, height) > aspect;
  if (wide) {
    const stripW = Math.max(120, Math.round(width * 0.2));
    const strip = fitGrid(stripW, height, others, fixed);
    const main = fitGrid(width - stripW - gap, height, 1, fixed);
    return { main: { width: main.width, height: main.height }, strip, stripSide: "right" };
  }
  const stripH = Math.max(68, Math.round(height * 0.22));
  const strip = fitGrid(width, stripH, others, fixed);
  const main = fitGrid(width, height - stripH - gap, 1, fixed);
  return { main: { width: main.width, height: main.height }, strip, stripSide: "bottom" };
}

/**
 * How many participants get a video tile in grid view; the rest are compact tiles (initials,
 * unit, microphone, hand). The server forwards at most `videos` cameras, so beyond that a large
 * tile would only show initials; compact ones are used once the large ones would get too small.
 * @param {number} count participants @param {number} videos tiles with a forwarded camera
 * @param {number} width @param {number} height the stage
 * @returns {{large: number, compact: number}}
 */
export function splitTiles(count, videos, width, height) {
  if (count <= 9) return { large: count, compact: 0 };
  const large = Math.max(1, Math.min(count, Math.max(videos, 6)));
  // Everyone large when the tiles stay readable (at least 200 px wide).
  if (fitGrid(width, height, count).width >= 200) return { large: count, compact: 0 };
  return { large, compact: count - large };
}

/**
 * The share of the area the tiles cover (0–1): what the layout aims to keep high.
 * @param {Grid} grid @param {number} count @param {number} width @param {number} height
 */
export function coverage(grid, count, width, height) {
  if (!(width > 0) || !(height > 0)) return 0;
  return (grid.width * grid.height * count) / (width * height);
}
