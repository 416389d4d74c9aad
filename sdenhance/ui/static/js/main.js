// The page: tabs built from the server's schema, the input (with its mask), and the wiring of
// runs and results (run.js). Everything goes through /api/v1 with the token.

import { getJson, hasToken, setToken, takeTokenFromUrl, Unauthorized } from "./api.js";
import { CompareView } from "./compare.js";
import { label, OptionsForm } from "./form.js";
import { History } from "./history.js";
import { MaskPainter } from "./mask.js";
import { Runner } from "./run.js";

const $ = (selector) => document.querySelector(selector);

const state = {
  schema: null,
  forms: new Map(), // stage -> OptionsForm
  tab: null, // the active tab's schema
  stageOf: new Map(), // tab id -> the stage picked in it
  input: null, // {file, name, width, height}
  previous: null, // the input before the last "use as input"
  roles: new Map(), // role -> File (reference, original)
};

const painter = new MaskPainter($("#canvas-wrap"), $("#image-canvas"), $("#mask-canvas"), $("#brush-cursor"));
const compare = new CompareView($("#compare"));
const runner = new Runner(state, painter, compare, setInput);
const history = new History($("#history"), (entry) => runner.showEntry(entry));
runner.history = history;

export function activeStage() {
  return state.stageOf.get(state.tab.id) || state.tab.stages[0];
}

async function boot() {
  takeTokenFromUrl();
  try {
    state.schema = await getJson("/api/v1/stages");
  } catch (error) {
    if (error instanceof Unauthorized) {
      return askToken(hasToken() ? "The server refused this token; check it and try again." : "");
    }
    $("#login-error").textContent = error.message;
    return;
  }
  $("#login").hidden = true;
  $("#app").hidden = false;
  buildTabs();
  wireInput();
  wireMask();
  runner.wire(activeStage);
  showHealth();
}

function askToken(message = "") {
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  $("#login-token").focus();
}

$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setToken($("#login-token").value);
  boot().catch((error) => askToken(error.message));
});

async function showHealth() {
  const health = await getJson("/api/v1/health");
  const model = health.model ? `model ${health.model.split("/").pop()}` : "default model";
  $("#server-status").textContent = `sdenhance ${health.version} · ${model}`;
}

function buildTabs() {
  const { tabs, stages, presets } = state.schema;
  for (const tab of tabs) {
    const button = document.createElement("button");
    Object.assign(button, { type: "button", id: `tab-${tab.id}`, textContent: tab.title });
    button.setAttribute("role", "tab");
    button.addEventListener("click", () => selectTab(tab));
    $("#tabs").append(button);
    for (const name of tab.stages) {
      const values = {};
      for (const [preset, perStage] of Object.entries(presets)) {
        if (perStage[name]) values[preset] = perStage[name];
      }
      const form = new OptionsForm(stages[name], tab.main, values);
      form.element.hidden = true;
      state.forms.set(name, form);
      $("#forms").append(form.element);
    }
  }
  selectTab(tabs[0]);
}

function selectTab(tab) {
  state.tab = tab;
  for (const button of $("#tabs").children) {
    button.setAttribute("aria-selected", String(button.id === `tab-${tab.id}`));
  }
  const switcher = $("#stage-switch");
  switcher.replaceChildren();
  switcher.hidden = tab.stages.length < 2;
  for (const name of tab.stages.length > 1 ? tab.stages : []) {
    const radio = Object.assign(document.createElement("input"), {
      type: "radio",
      name: "stage",
      value: name,
      checked: name === activeStage(),
    });
    radio.addEventListener("change", () => {
      state.stageOf.set(tab.id, name);
      showStage();
    });
    const text = state.schema.stages[name].summary || label(name);
    const item = document.createElement("label");
    item.append(radio, ` ${text}`);
    switcher.append(item);
  }
  showStage();
}

// Show the active stage's form, the mask tools if it reads a mask, pickers for other images.
function showStage() {
  const stage = activeStage();
  for (const [name, form] of state.forms) form.element.hidden = name !== stage;
  const roles = state.schema.stages[stage].roles;
  const masked = roles.includes("mask");
  $("#mask-tools").hidden = !masked;
  painter.setEnabled(masked);
  $("#facefix-tools").hidden = stage !== "facefix";
  document.body.dataset.activeStage = stage;
  buildRoleInputs(roles.filter((r) => r !== "mask"));
}

function buildRoleInputs(roles) {
  const box = $("#role-inputs");
  box.replaceChildren();
  for (const role of roles) {
    const field = document.createElement("div");
    field.className = "field file-field";
    field.dataset.role = role;
    const id = `role-${role}`;
    const help = {
      reference: "Whose colours to match: usually the image the input was made from.",
      original: "The image before enhancement; the result lays the input over it.",
    }[role];
    field.innerHTML = `<label for="${id}"></label><input id="${id}" type="file" accept="image/*">
      <button type="button" class="use-previous">Use the previous input</button>
      <small class="help"></small><span class="field-error" role="alert"></span>`;
    field.querySelector("label").textContent = label(role);
    field.querySelector("small").textContent = help;
    const input = field.querySelector("input");
    const named = () => {
      const file = state.roles.get(role);
      field.querySelector("small").textContent = file ? `${file.name} · ${help}` : help;
    };
    input.addEventListener("change", () => {
      if (input.files[0]) state.roles.set(role, input.files[0]);
      named();
    });
    const previous = field.querySelector(".use-previous");
    previous.disabled = !state.previous;
    previous.addEventListener("click", () => {
      state.roles.set(role, state.previous.file);
      named();
    });
    named();
    box.append(field);
  }
}

async function setInput(file) {
  if (state.input) state.previous = state.input;
  state.input = { file, name: file.name || "input.png", width: null, height: null };
  runner.clearFieldError("image");
  const info = $("#image-info");
  try {
    const bitmap = await createImageBitmap(file);
    Object.assign(state.input, { width: bitmap.width, height: bitmap.height });
    painter.setImage(bitmap);
    $("#canvas-wrap").hidden = false;
    info.textContent = `${state.input.name} · ${bitmap.width}×${bitmap.height} px`;
  } catch {
    $("#canvas-wrap").hidden = true;
    info.textContent = `${state.input.name}: no preview in this browser; the server reads it.`;
  }
  $("#run").disabled = false;
  showStage();
}

function wireInput() {
  $("#image-file").addEventListener("change", (e) => {
    if (e.target.files[0]) setInput(e.target.files[0]);
  });
}

function wireMask() {
  for (const radio of document.querySelectorAll("input[name=mask-tool]")) {
    radio.addEventListener("change", () => (painter.tool = radio.value));
  }
  const size = $("#brush-size");
  size.addEventListener("input", () => {
    painter.size = Number(size.value);
    $("#brush-size-value").textContent = size.value;
  });
  $("#mask-undo").addEventListener("click", () => painter.undo());
  $("#mask-clear").addEventListener("click", () => painter.clear());
  $("#mask-show").addEventListener("change", (e) => painter.setVisible(e.target.checked));
  $("#mask-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    try {
      await painter.upload(file);
    } catch {
      runner.fieldError("mask", `mask: ${file.name} is not an image the browser can read`);
    }
  });
  painter.onChange = () => runner.clearFieldError("mask");
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "z" && !$("#mask-tools").hidden) {
      const editing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
      if (!editing) {
        e.preventDefault();
        painter.undo();
      }
    }
  });
}

boot();
