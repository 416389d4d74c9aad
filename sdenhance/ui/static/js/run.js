// Running a job: the request (input, mask, other images, options), progress with ETA and
// cancel, errors next to the field they name, and the result with its parameters.

import { cancelJob, followJob, jobInfo, resultBlob, submitJob, Unauthorized } from "./api.js";

const $ = (selector) => document.querySelector(selector);
const ROLES = ["image", "mask", "reference", "original"];

function seconds(eta) {
  if (eta == null) return "";
  return eta < 60 ? ` · ETA ${Math.ceil(eta)} s` : ` · ETA ${Math.floor(eta / 60)} min ${Math.ceil(eta % 60)} s`;
}

function imageSize(blob) {
  return createImageBitmap(blob).then((b) => [b.width, b.height]);
}

export class Runner {
  constructor(state, painter, compare, setInput) {
    this.state = state;
    this.painter = painter;
    this.compare = compare;
    this.setInput = setInput;
    this.job = null;
    this.current = null;
  }

  wire(activeStage) {
    this.activeStage = activeStage;
    $("#run").addEventListener("click", () => this.run(activeStage()));
    $("#cancel").addEventListener("click", () => this.cancel());
    $("#detect-faces").addEventListener("click", () => this.run("facefix", { show: true }));
    $("#use-as-input").addEventListener("click", () => this.useAsInput());
    $("#copy-cli").addEventListener("click", () => this.copyCommand());
    for (const radio of document.querySelectorAll("input[name=view]")) {
      radio.addEventListener("change", () => this.compare.setMode(radio.value));
    }
    $("#zoom").addEventListener("change", (e) => this.compare.setZoom(e.target.checked));
  }

  // -- errors ---------------------------------------------------------------------------

  fieldError(role, message) {
    const field = document.querySelector(`[data-role=${role}]`);
    if (!field) return false;
    field.querySelector(".field-error").textContent = message;
    field.classList.add("has-error");
    return true;
  }

  clearFieldError(role) {
    const field = document.querySelector(`[data-role=${role}]`);
    if (!field) return;
    field.querySelector(".field-error").textContent = "";
    field.classList.remove("has-error");
  }

  clearErrors(form) {
    form.clearErrors();
    for (const role of ROLES) this.clearFieldError(role);
    $("#run-error").textContent = "";
  }

  // The server's one line goes next to what it names: an image role, an option, else below.
  showError(message, form) {
    // "cannot read image: ...", "mask: ..." name the image before their first colon
    const head = message.split(": ")[0];
    const role = /\b(image|mask|reference|original)\b/.exec(head.replace(/`/g, ""));
    if (role && this.fieldError(role[1], message)) return;
    if (form.showError(message)) return;
    $("#run-error").textContent = message;
  }

  // -- running --------------------------------------------------------------------------

  async request(stage, extra, form) {
    const data = new FormData();
    const names = { image: this.state.input.name };
    data.append("image", this.state.input.file, this.state.input.name);
    data.append("stage", stage);
    data.append("options", JSON.stringify({ ...form.values(), ...extra }));
    if (form.preset()) data.append("preset", form.preset());
    if (form.seed()) data.append("seed", form.seed());
    let maskBlob = null;
    for (const role of this.state.schema.stages[stage].roles) {
      if (role === "mask") {
        if (!this.painter.painted()) {
          this.fieldError("mask", "mask: paint the area to change (or upload a mask) first");
          return null;
        }
        maskBlob = await this.painter.toBlob();
        names.mask = "mask.png";
        data.append("mask", maskBlob, names.mask);
      } else {
        const file = this.state.roles.get(role);
        if (!file) {
          this.fieldError(role, `${role}: choose the ${role} image first`);
          return null;
        }
        names[role] = file.name;
        data.append(role, file, file.name);
      }
    }
    return { data, names, maskBlob };
  }

  async run(stage, extra = {}) {
    const form = this.state.forms.get(stage);
    this.clearErrors(form);
    this.progressText("Starting…", 0);
    if (!this.state.input) {
      this.fieldError("image", "image: choose an image first");
      return this.progressText("Idle", 0);
    }
    if (stage === "facefix" && !extra.show && this.nonePicked()) {
      form.showError("`faces`: tick at least one face to repaint (all ticked = every face)");
      return this.progressText("Idle", 0);
    }
    const request = await this.request(stage, extra, form);
    if (!request) return this.progressText("Idle", 0);
    const before = this.state.input.file;
    this.busy(true);
    try {
      const created = await submitJob(request.data);
      this.job = created.id;
      const last = await followJob(created.id, (status) => this.progress(status));
      if (last.status === "done") await this.finished(last, stage, before, request, extra);
      else if (last.status === "failed") this.showError(last.error, form);
    } catch (error) {
      if (error instanceof Unauthorized) $("#run-error").textContent = error.message;
      else this.showError(error.message, form);
      this.progressText("Idle", 0);
    } finally {
      this.job = null;
      this.busy(false);
    }
  }

  busy(on) {
    $("#run").disabled = on || !this.state.input;
    $("#detect-faces").disabled = on;
    $("#cancel").disabled = !on;
    document.body.classList.toggle("busy", on);
  }

  progressText(text, fraction) {
    $("#progress-text").textContent = text;
    $("#progress-bar").value = fraction;
  }

  progress(status) {
    const p = status.progress;
    if (status.status === "queued") return this.progressText("Queued", 0);
    if (status.status === "done") return this.progressText("Done", 1);
    if (status.status === "failed") return this.progressText("Failed", 0);
    if (status.status === "cancelled") return this.progressText("Cancelled", 0);
    if (status.cancel_requested) return this.progressText("Cancelling…", p.fraction);
    const where = p.stage || status.label;
    const steps = p.total ? ` ${p.step}/${p.total}` : "";
    this.progressText(`${where}:${steps}${seconds(p.eta_seconds)}`.replace(/:$/, "…"), p.fraction);
  }

  async cancel() {
    if (!this.job) return;
    $("#cancel").disabled = true;
    try {
      this.progress(await cancelJob(this.job));
    } catch (error) {
      $("#run-error").textContent = error.message;
    }
  }

  // -- results --------------------------------------------------------------------------

  async finished(status, stage, before, request, extra) {
    const blob = await resultBlob(status.id);
    const info = await jobInfo(status.id, request.names);
    const [width, height] = await imageSize(blob);
    const entry = {
      id: status.id,
      stage,
      label: extra.show ? "face detections" : status.label,
      blob,
      width,
      height,
      info,
      resultUrl: URL.createObjectURL(blob),
      beforeUrl: URL.createObjectURL(before),
      maskUrl: request.maskBlob ? URL.createObjectURL(request.maskBlob) : null,
    };
    this.history.add(entry);
    await this.showEntry(entry);
    if (extra.show) this.facePicks(info.record.faces || []);
  }

  async showEntry(entry) {
    this.current = entry;
    this.history.select(entry);
    await this.compare.show(entry.beforeUrl, entry.resultUrl);
    const download = $("#download");
    download.href = entry.resultUrl;
    download.download = entry.info.file;
    download.hidden = false;
    const mask = $("#download-mask");
    mask.hidden = !entry.maskUrl;
    if (entry.maskUrl) {
      mask.href = entry.maskUrl;
      mask.download = "mask.png";
    }
    $("#cli-command").textContent = entry.info.command;
    $("#cli-command").hidden = false;
    $("#infotext").textContent = entry.info.parameters || "(none)";
    $("#params-box").hidden = false;
    $("#use-as-input").disabled = false;
    $("#copy-cli").disabled = false;
  }

  useAsInput() {
    const entry = this.current;
    if (!entry) return;
    this.setInput(new File([entry.blob], entry.info.file, { type: "image/png" }));
  }

  async copyCommand() {
    const text = this.current?.info.command;
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // no clipboard API off a secure origin: select the text for Ctrl+C instead
      getSelection().selectAllChildren($("#cli-command"));
    }
    $("#copy-cli").textContent = "Copied";
    setTimeout(() => ($("#copy-cli").textContent = "Copy as CLI command"), 1500);
  }

  nonePicked() {
    const ticks = document.querySelectorAll("#face-picks input");
    return ticks.length > 0 && ![...ticks].some((t) => t.checked);
  }

  // After a detection run: one tick box per face found; ticks fill the `faces` option.
  facePicks(faces) {
    const box = $("#face-picks");
    box.replaceChildren();
    const form = this.state.forms.get("facefix");
    if (!faces.length) {
      box.textContent = "No faces found.";
      return;
    }
    for (const face of faces) {
      const item = document.createElement("label");
      const tick = Object.assign(document.createElement("input"), { type: "checkbox", checked: true });
      tick.value = face.index;
      tick.addEventListener("change", () => {
        const picked = [...box.querySelectorAll("input:checked")].map((t) => t.value);
        form.set("faces", picked.length === faces.length ? "" : picked.join(","));
      });
      item.append(tick, ` Face ${face.index} (score ${Number(face.score).toFixed(2)})`);
      box.append(item);
    }
  }
}
