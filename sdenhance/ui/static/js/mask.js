// The mask painter: a canvas at the image's own pixel size laid over it, painted with the
// mouse (brush or eraser, size in image pixels), with undo, clear and mask upload. The mask
// is sent as a black-and-white PNG of the image's size: painted (alpha >= 50 %) = white.

const PAINT = [255, 40, 90];
const UNDO_BYTES = 256 * 2 ** 20; // snapshots kept for undo, at most this much memory

export class MaskPainter {
  constructor(wrap, imageCanvas, maskCanvas, cursor) {
    this.wrap = wrap;
    this.imageCanvas = imageCanvas;
    this.canvas = maskCanvas;
    this.ctx = maskCanvas.getContext("2d", { willReadFrequently: true });
    this.cursor = cursor;
    this.tool = "brush";
    this.size = 32;
    this.undoStack = [];
    this.enabled = false;
    this.onChange = () => {};
    maskCanvas.addEventListener("pointerdown", (e) => this.down(e));
    maskCanvas.addEventListener("pointermove", (e) => this.move(e));
    maskCanvas.addEventListener("pointerup", (e) => this.up(e));
    maskCanvas.addEventListener("pointercancel", (e) => this.up(e));
    maskCanvas.addEventListener("pointerleave", () => (this.cursor.hidden = true));
  }

  // A new input: both canvases take its size; the mask and its undo history start empty.
  setImage(bitmap) {
    for (const c of [this.imageCanvas, this.canvas]) {
      c.width = bitmap.width;
      c.height = bitmap.height;
    }
    this.imageCanvas.getContext("2d").drawImage(bitmap, 0, 0);
    this.undoStack = [];
    this.onChange();
  }

  setEnabled(on) {
    this.enabled = on;
    this.canvas.classList.toggle("painting", on);
    this.canvas.hidden = !on || !this.visible();
  }

  visible() {
    return !this.wrap.classList.contains("mask-hidden");
  }

  setVisible(on) {
    this.wrap.classList.toggle("mask-hidden", !on);
    this.canvas.hidden = !on || !this.enabled;
  }

  point(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [
      ((e.clientX - rect.left) * this.canvas.width) / rect.width,
      ((e.clientY - rect.top) * this.canvas.height) / rect.height,
    ];
  }

  snapshot() {
    const bytes = this.canvas.width * this.canvas.height * 4;
    const keep = Math.max(2, Math.floor(UNDO_BYTES / Math.max(bytes, 1)));
    this.undoStack.push(this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height));
    while (this.undoStack.length > keep) this.undoStack.shift();
  }

  style() {
    const ctx = this.ctx;
    ctx.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = `rgb(${PAINT.join(",")})`;
    ctx.lineWidth = this.size;
    ctx.lineCap = ctx.lineJoin = "round";
  }

  down(e) {
    if (!this.enabled || e.button !== 0 || !this.canvas.width) return;
    this.canvas.setPointerCapture(e.pointerId);
    this.snapshot();
    this.last = this.point(e);
    this.style();
    this.ctx.beginPath();
    this.ctx.arc(this.last[0], this.last[1], this.size / 2, 0, 2 * Math.PI);
    this.ctx.fill();
    e.preventDefault();
  }

  move(e) {
    this.showCursor(e);
    if (!this.last) return;
    const next = this.point(e);
    this.style();
    this.ctx.beginPath();
    this.ctx.moveTo(...this.last);
    this.ctx.lineTo(...next);
    this.ctx.stroke();
    this.last = next;
  }

  up(e) {
    if (!this.last) return;
    this.last = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    this.onChange();
  }

  showCursor(e) {
    if (!this.enabled || !this.canvas.width) return;
    const rect = this.canvas.getBoundingClientRect();
    const wrapRect = this.wrap.getBoundingClientRect();
    const d = (this.size * rect.width) / this.canvas.width;
    Object.assign(this.cursor.style, {
      width: `${d}px`,
      height: `${d}px`,
      left: `${e.clientX - wrapRect.left - d / 2}px`,
      top: `${e.clientY - wrapRect.top - d / 2}px`,
    });
    this.cursor.hidden = false;
  }

  undo() {
    const previous = this.undoStack.pop();
    if (previous) this.ctx.putImageData(previous, 0, 0);
    this.onChange();
  }

  clear() {
    this.snapshot();
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.onChange();
  }

  // A mask file: white (>= 50 %) = painted; stretched to the image if its size differs.
  async upload(file) {
    const bitmap = await createImageBitmap(file);
    const { width, height } = this.canvas;
    const scratch = Object.assign(document.createElement("canvas"), { width, height });
    const sctx = scratch.getContext("2d", { willReadFrequently: true });
    sctx.imageSmoothingEnabled = false;
    sctx.drawImage(bitmap, 0, 0, width, height);
    const pixels = sctx.getImageData(0, 0, width, height);
    const d = pixels.data;
    for (let i = 0; i < d.length; i += 4) {
      const on = ((d[i] * 299 + d[i + 1] * 587 + d[i + 2] * 114) / 1000) * (d[i + 3] / 255) >= 128;
      [d[i], d[i + 1], d[i + 2], d[i + 3]] = on ? [...PAINT, 255] : [0, 0, 0, 0];
    }
    this.snapshot();
    this.ctx.putImageData(pixels, 0, 0);
    this.onChange();
  }

  painted() {
    const d = this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height).data;
    let count = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] >= 128) count++;
    return count;
  }

  // The mask as the server reads it: a PNG, white = change, black = keep.
  toBlob() {
    const { width, height } = this.canvas;
    const pixels = this.ctx.getImageData(0, 0, width, height);
    const d = pixels.data;
    for (let i = 0; i < d.length; i += 4) {
      const v = d[i + 3] >= 128 ? 255 : 0;
      d[i] = d[i + 1] = d[i + 2] = v;
      d[i + 3] = 255;
    }
    const out = Object.assign(document.createElement("canvas"), { width, height });
    out.getContext("2d").putImageData(pixels, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }
}
