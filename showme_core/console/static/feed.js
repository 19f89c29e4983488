// The live feed. EventSource retries by itself (sending Last-Event-ID), but it gives up for good
// when the server answers with an error status, and it never tells us which status: so on every
// error we ask /me whether the session is still valid, and restart the feed ourselves if needed.

import { api } from "/console/api.js";

const RESTART_DELAY_MS = 3000;

export class Feed {
  constructor({ after, onEvent, onState, onSignedOut }) {
    this.lastId = after;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onSignedOut = onSignedOut;
    this.source = null;
    this.checking = false;
    this.restartTimer = 0;
    this.stopped = false;
    this.open();
  }

  open() {
    this.onState("reconnecting");
    const source = new EventSource(`/api/v1/events?after=${encodeURIComponent(this.lastId)}`);
    source.onopen = () => this.onState("live");
    source.onmessage = (message) => this.receive(message);
    source.onerror = () => this.failed();
    this.source = source;
  }

  receive(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (Number.isInteger(event.id)) this.lastId = event.id;
    this.onEvent(event);
  }

  async failed() {
    if (this.stopped) return;
    this.onState("reconnecting");
    if (this.checking) return;
    this.checking = true;
    try {
      await api("/api/v1/me");
    } catch (error) {
      if (error.status === 401) {
        this.close();
        this.onSignedOut();
        return;
      }
    } finally {
      this.checking = false;
    }
    if (!this.stopped && this.source?.readyState === EventSource.CLOSED && !this.restartTimer) {
      this.restartTimer = setTimeout(() => {
        this.restartTimer = 0;
        if (!this.stopped) this.open();
      }, RESTART_DELAY_MS);
    }
  }

  close() {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.source?.close();
    this.source = null;
  }
}
