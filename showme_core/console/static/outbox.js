// The demo "outbox" SMS provider keeps sent messages in memory; showing them lets a dispatcher
// (or a demo) use the link without a real SMS account.

import { api } from "/console/api.js";

const SHOWN = 20;
const LINK = /https?:\/\/\S+/;

export class Outbox {
  constructor({ panel, list, empty }) {
    this.panel = panel;
    this.list = list;
    this.empty = empty;
    this.pending = null;
    this.again = false;
  }

  // Several sms.status events often arrive together: one request answers them all. A refresh
  // asked for while a request is on its way runs once more after it, since that request may
  // have been answered before the message it is asked for existed.
  refresh() {
    if (this.pending) {
      this.again = true;
      return this.pending;
    }
    this.pending = (async () => {
      do {
        this.again = false;
        await this.load();
      } while (this.again);
    })().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  async load() {
    let data;
    try {
      data = await api("/api/v1/outbox");
    } catch (error) {
      // 404: this server sends real SMS only; the panel has nothing to show.
      if (error.status === 404) this.panel.hidden = true;
      return;
    }
    this.panel.hidden = false;
    this.list.replaceChildren(...data.items.slice(0, SHOWN).map(entry));
    this.empty.hidden = data.items.length > 0;
  }

  clear() {
    this.list.replaceChildren();
    this.empty.hidden = false;
  }
}

function entry(message) {
  const item = document.createElement("li");
  item.className = "outbox-item";
  item.dataset.inviteId = message.invite_id ?? "";
  const meta = document.createElement("p");
  meta.className = "outbox-meta";
  const time = new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.textContent = `To ${message.to} · ${time}`;
  const body = document.createElement("p");
  body.className = "outbox-body";
  const found = LINK.exec(message.body);
  if (found) {
    const link = document.createElement("a");
    link.href = found[0];
    link.textContent = found[0];
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.className = "outbox-link";
    body.append(message.body.slice(0, found.index), link, message.body.slice(found.index + found[0].length));
  } else {
    body.textContent = message.body;
  }
  item.append(meta, body);
  return item;
}
