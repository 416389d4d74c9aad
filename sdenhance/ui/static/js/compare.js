// The result view: before and after under a draggable split (the before image stretched over
// the after one), or side by side; "100 %" shows the after image pixel for pixel.

function loaded(img, url) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot show this image"));
    img.src = url;
  });
}

export class CompareView {
  constructor(root) {
    this.root = root;
    this.frame = root.querySelector(".frame");
    this.before = root.querySelector("#before");
    this.after = root.querySelector("#after");
    this.split = root.querySelector("#split");
    this.split.addEventListener("input", () => this.setSplit(this.split.value));
    this.frame.addEventListener("pointermove", (e) => {
      if (e.buttons !== 1 || !this.root.classList.contains("slider")) return;
      const rect = this.frame.getBoundingClientRect();
      this.split.value = Math.round(((e.clientX - rect.left) / rect.width) * 100);
      this.setSplit(this.split.value);
    });
    this.setSplit(50);
  }

  async show(beforeUrl, afterUrl) {
    await Promise.all([loaded(this.before, beforeUrl), loaded(this.after, afterUrl)]);
    this.root.classList.add("has-result");
    this.fit();
  }

  clear() {
    this.root.classList.remove("has-result");
    this.before.removeAttribute("src");
    this.after.removeAttribute("src");
  }

  setSplit(percent) {
    this.frame.style.setProperty("--split", `${percent}%`);
  }

  setMode(mode) {
    this.root.classList.toggle("slider", mode === "slider");
    this.root.classList.toggle("side", mode === "side");
    this.fit();
  }

  setZoom(on) {
    this.root.classList.toggle("zoom", on);
    this.fit();
  }

  // At 100 % in the slider the before image covers the after image's own pixel size.
  fit() {
    const zoom = this.root.classList.contains("zoom");
    const slider = this.root.classList.contains("slider");
    const w = this.after.naturalWidth;
    const h = this.after.naturalHeight;
    for (const img of [this.before, this.after]) img.style.width = img.style.height = "";
    if (zoom && w) {
      this.after.style.width = `${w}px`;
      this.after.style.height = `${h}px`;
      if (!slider) {
        this.before.style.width = `${this.before.naturalWidth}px`;
        this.before.style.height = `${this.before.naturalHeight}px`;
      }
    }
  }
}
