// This page's results, newest first: a thumbnail each, with its stage and size; picking one
// shows it again with its parameters and command.

export class History {
  constructor(list, onPick) {
    this.list = list;
    this.onPick = onPick;
    this.entries = [];
  }

  add(entry) {
    this.entries.unshift(entry);
    const item = document.createElement("li");
    item.dataset.job = entry.id;
    const button = document.createElement("button");
    button.type = "button";
    button.title = entry.info.command;
    const thumb = document.createElement("img");
    thumb.src = entry.resultUrl;
    thumb.alt = `${entry.label} result`;
    const caption = document.createElement("span");
    caption.textContent = `${this.entries.length}. ${entry.label} · ${entry.width}×${entry.height}`;
    button.append(thumb, caption);
    button.addEventListener("click", () => this.onPick(entry));
    item.append(button);
    this.list.prepend(item);
    this.select(entry);
  }

  select(entry) {
    for (const item of this.list.children) {
      item.classList.toggle("selected", item.dataset.job === entry.id);
    }
  }
}
