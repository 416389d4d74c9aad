// A stage's options form, built from the schema the server derives from the stage's Options:
// each field's help, range, default and choices. Widgets keep values in range (sliders, and
// number boxes clamped on change); the server checks everything again and its one-line
// message is shown next to the field it names.

const SEEDED = new Set(["upscale", "img2img", "inpaint", "remove", "facefix"]);
const TEXTAREAS = new Set(["prompt", "negative_prompt"]);
const MAX_SEED = 2 ** 32 - 1;

export function label(name) {
  const text = name.replaceAll("_", " ");
  return text[0].toUpperCase() + text.slice(1);
}

function lowHigh(s) {
  const eps = s.kind === "int" ? 1 : 0.01;
  const lo = s.ge ?? (s.gt != null ? s.gt + eps : null);
  const hi = s.le ?? (s.lt != null ? s.lt - eps : null);
  return [lo, hi];
}

// The range as the CLI's help writes it: `0–1`, `≥ 64, a multiple of 8`, `one of a, b`.
function allowedText(s) {
  if (s.choices) return ""; // the list shows them
  const lo = s.ge ?? s.gt;
  const hi = s.le ?? s.lt;
  let text = "";
  if (lo != null && hi != null) {
    text = `${s.ge == null ? ">" : ""}${lo}–${hi}${s.le == null ? " (exclusive)" : ""}`;
  } else if (lo != null) text = `${s.ge == null ? ">" : "≥"} ${lo}`;
  else if (hi != null) text = `${s.le == null ? "<" : "≤"} ${hi}`;
  if (s.multiple_of) text += `${text ? ", " : ""}a multiple of ${s.multiple_of}`;
  return text ? `Range: ${text}.` : "";
}

function defaultText(s) {
  if (s.default === null || s.default === "") return "";
  if (typeof s.default === "boolean") return `Default: ${s.default ? "on" : "off"}.`;
  return `Default: ${s.default}.`;
}

// A typed number kept inside the field's bounds and on its multiple.
export function clampNumber(value, s) {
  const [lo, hi] = lowHigh(s);
  let v = value;
  if (s.multiple_of) v = Math.round(v / s.multiple_of) * s.multiple_of;
  if (lo != null && v < lo) v = s.multiple_of ? Math.ceil(lo / s.multiple_of) * s.multiple_of : lo;
  if (hi != null && v > hi) v = s.multiple_of ? Math.floor(hi / s.multiple_of) * s.multiple_of : hi;
  return s.kind === "int" ? Math.round(v) : v;
}

function sliderStep(s, lo, hi) {
  if (s.kind === "int") return s.multiple_of || 1;
  const span = hi - lo;
  return span <= 2 ? 0.01 : span <= 40 ? 0.05 : 0.5;
}

function element(tag, props = {}, children = []) {
  const el = Object.assign(document.createElement(tag), props);
  for (const child of children) el.append(child);
  return el;
}

// One field: a widget that reads and writes a typed value.
function makeField(stage, s, onEdit) {
  const id = `opt-${stage}-${s.name}`;
  const wrap = element("div", { className: "field" });
  wrap.dataset.field = s.name;
  const help = [s.help, allowedText(s), defaultText(s)].filter(Boolean).join(" ");
  const labelEl = element("label", { htmlFor: id, textContent: label(s.name) });
  const helpEl = element("small", { className: "help", textContent: help });
  const error = element("span", { className: "field-error", role: "alert" });
  let input;
  let get;
  let set;
  if (s.kind === "bool") {
    input = element("input", { type: "checkbox", id, name: s.name });
    get = () => input.checked;
    set = (v) => (input.checked = Boolean(v));
    wrap.classList.add("check");
    wrap.append(input, labelEl, helpEl, error);
  } else if (s.choices) {
    input = element("select", { id, name: s.name });
    for (const c of s.choices) input.append(element("option", { value: c, textContent: c }));
    get = () => input.value;
    set = (v) => (input.value = v);
    wrap.append(labelEl, input, helpEl, error);
  } else if (s.kind === "int" || s.kind === "float") {
    const [lo, hi] = lowHigh(s);
    input = element("input", { type: "number", id, name: s.name, step: "any" });
    if (s.kind === "int") input.step = s.multiple_of || 1;
    if (lo != null) input.min = lo;
    if (hi != null) input.max = hi;
    if (s.nullable) input.placeholder = "auto";
    const row = element("div", { className: "number-row" }, [input]);
    let slider = null;
    if (lo != null && hi != null && (s.kind === "float" || hi - lo <= 1024)) {
      slider = element("input", { type: "range", min: lo, max: hi, step: sliderStep(s, lo, hi) });
      slider.setAttribute("aria-label", `${label(s.name)} slider`);
      slider.addEventListener("input", () => {
        input.value = slider.value;
        onEdit(s.name);
      });
      row.prepend(slider);
    }
    input.addEventListener("change", () => {
      if (input.value !== "") input.value = clampNumber(Number(input.value), s);
      if (slider && input.value !== "") slider.value = input.value;
    });
    get = () => (input.value === "" ? null : Number(input.value));
    set = (v) => {
      input.value = v ?? "";
      if (slider && v != null) slider.value = v;
    };
    wrap.append(labelEl, row, helpEl, error);
  } else {
    const tag = TEXTAREAS.has(s.name) ? "textarea" : "input";
    input = element(tag, { id, name: s.name });
    if (tag === "textarea") input.rows = 2;
    get = () => input.value;
    set = (v) => (input.value = v ?? "");
    wrap.append(labelEl, input, helpEl, error);
  }
  input.addEventListener("input", () => onEdit(s.name));
  input.addEventListener("change", () => onEdit(s.name));
  set(s.default);
  return { schema: s, wrap, input, get, set, error };
}

export class OptionsForm {
  // `stage`: the stage schema; `main`: field names shown unfolded; `presets`: name -> values
  constructor(stage, main, presets) {
    this.stage = stage.name;
    this.fields = new Map();
    this.dirty = new Set();
    this.presets = presets;
    this.element = element("div", { className: "options-form" });
    this.element.dataset.stage = stage.name;
    const mainBox = element("div", { className: "main-options" });
    const advanced = element("details", { className: "advanced" }, [
      element("summary", { textContent: "Advanced" }),
    ]);
    const onEdit = (name) => {
      this.dirty.add(name);
      const field = this.fields.get(name);
      if (field) {
        field.error.textContent = "";
        field.wrap.classList.remove("has-error");
      }
    };
    if (Object.keys(presets).length) mainBox.append(this.presetPicker());
    for (const s of stage.options) {
      const field = makeField(stage.name, s, onEdit);
      this.fields.set(s.name, field);
      (main.includes(s.name) ? mainBox : advanced).append(field.wrap);
    }
    if (this.fields.has("scale") && this.fields.has("width")) this.sizeSwitch(mainBox);
    if (SEEDED.has(stage.name)) advanced.append(this.seedField());
    this.element.append(mainBox);
    if (advanced.children.length > 1) this.element.append(advanced);
  }

  presetPicker() {
    const id = `preset-${this.stage}`;
    const select = element("select", { id, name: "preset" }, [
      element("option", { value: "", textContent: "none" }),
    ]);
    for (const name of Object.keys(this.presets)) {
      select.append(element("option", { value: name, textContent: name }));
    }
    select.addEventListener("change", () => this.applyPreset(select.value));
    this.presetSelect = select;
    const help = "Preset: tuned defaults for a kind of image; what you change wins over it.";
    return element("div", { className: "field" }, [
      element("label", { htmlFor: id, textContent: "Preset" }),
      select,
      element("small", { className: "help", textContent: help }),
    ]);
  }

  applyPreset(name) {
    // fields the user has not touched show the preset's value, else the stage default
    const values = this.presets[name] || {};
    for (const [key, field] of this.fields) {
      if (!this.dirty.has(key)) field.set(key in values ? values[key] : field.schema.default);
    }
  }

  // Upscale's size: a factor, or an exact width and/or height (then the factor is ignored).
  sizeSwitch(box) {
    const group = element("div", { className: "size-switch", role: "radiogroup" });
    for (const [value, text] of [["scale", "Scale"], ["exact", "Exact size"]]) {
      const radio = element("input", { type: "radio", name: `size-${this.stage}`, value });
      radio.checked = value === "scale";
      radio.addEventListener("change", () => this.showSize(value));
      group.append(element("label", {}, [radio, ` ${text}`]));
    }
    box.insertBefore(group, this.fields.get("scale").wrap);
    this.sizeGroup = group;
    this.showSize("scale");
  }

  showSize(mode) {
    this.sizeMode = mode;
    for (const radio of this.sizeGroup.querySelectorAll("input")) radio.checked = radio.value === mode;
    this.fields.get("scale").wrap.hidden = mode !== "scale";
    for (const name of ["width", "height"]) this.fields.get(name).wrap.hidden = mode === "scale";
  }

  seedField() {
    const id = `seed-${this.stage}`;
    this.seedInput = element("input", { type: "number", id, name: "seed", min: 0, max: MAX_SEED });
    this.seedInput.placeholder = "random";
    this.seedInput.addEventListener("change", () => {
      const v = this.seedInput.value;
      if (v !== "") this.seedInput.value = Math.min(MAX_SEED, Math.max(0, Math.round(Number(v))));
    });
    const help = "Same seed, same output; empty: a random one, recorded in the result.";
    return element("div", { className: "field" }, [
      element("label", { htmlFor: id, textContent: "Seed" }),
      this.seedInput,
      element("small", { className: "help", textContent: help }),
    ]);
  }

  // What to send: the options the user changed (the preset and defaults fill the rest).
  values() {
    const out = {};
    for (const name of this.dirty) out[name] = this.fields.get(name).get();
    if (this.sizeMode === "scale") {
      delete out.width;
      delete out.height;
    } else if (this.sizeMode === "exact") {
      delete out.scale;
    }
    return out;
  }

  preset() {
    return this.presetSelect?.value || "";
  }

  seed() {
    return this.seedInput?.value || "";
  }

  set(name, value) {
    const field = this.fields.get(name);
    field.set(value);
    field.error.textContent = "";
    field.wrap.classList.remove("has-error");
    this.dirty.add(name);
  }

  // Show `message` next to the field it names; false when it names none of ours.
  showError(message) {
    const names = [...message.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]);
    const name = names.find((n) => this.fields.has(n));
    if (!name) return false;
    const field = this.fields.get(name);
    field.error.textContent = message;
    field.wrap.classList.add("has-error");
    if (field.wrap.closest("details")) field.wrap.closest("details").open = true;
    if (field.wrap.hidden && this.sizeMode) this.showSize(name === "scale" ? "scale" : "exact");
    field.input.focus();
    return true;
  }

  clearErrors() {
    for (const field of this.fields.values()) {
      field.error.textContent = "";
      field.wrap.classList.remove("has-error");
    }
  }
}
