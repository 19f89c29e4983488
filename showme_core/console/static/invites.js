// The invites table. Rows are kept and updated in place (keyed by invite id), so a live update
// never steals focus from an "End" button or restarts a highlight.

import { instant, serverNow } from "/console/api.js";

const KEEP = 200;
const HIGHLIGHT_MS = 8000;
const LIVE = new Set(["pending", "opened"]);

export class InviteTable {
  constructor({ body, empty, template, onEnd, onResend, onPictures, onHold, onWatch }) {
    this.body = body;
    this.empty = empty;
    this.template = template;
    this.onEnd = onEnd;
    this.onResend = onResend;
    this.onPictures = onPictures;
    this.onHold = onHold;
    this.onWatch = onWatch;
    this.invites = new Map();
    this.rows = new Map();
    // Only admins may set or lift a legal hold; everyone sees the "on hold" badge.
    this.canHold = false;
    // The invite whose pictures the wall shows, if any.
    this.selected = null;
  }

  setCanHold(canHold) {
    this.canHold = canHold;
    this.render();
  }

  select(inviteId) {
    this.selected = inviteId ?? null;
    this.render();
  }

  reset(items = []) {
    this.selected = null;
    this.invites.clear();
    this.rows.clear();
    this.body.replaceChildren();
    for (const invite of items) this.invites.set(invite.id, invite);
    this.render();
  }

  // Returns true when this update is the moment the caller opened the link. Every report of an
  // invite (list, answers to our requests, feed events) goes through here.
  upsert(invite) {
    const known = this.invites.get(invite.id);
    // An answer to our own request can arrive after newer feed events: never step back.
    const merged = { ...known, ...invite, sms: laterSms(known?.sms, invite.sms) };
    if (known && (INVITE_RANK[known.status] ?? 0) > (INVITE_RANK[invite.status] ?? 0)) {
      merged.status = known.status;
      merged.opened_at = known.opened_at ?? invite.opened_at;
      merged.ended_at = known.ended_at ?? invite.ended_at;
    }
    this.invites.set(invite.id, merged);
    const justOpened = known !== undefined && known.status !== "opened" && merged.status === "opened";
    this.render();
    if (justOpened) this.highlight(invite.id);
    return justOpened;
  }

  // A provider attempt that did not end in acceptance (the chain moved on, or stopped).
  addAttempt(inviteId, attempt) {
    const known = this.invites.get(inviteId);
    if (!known || !attempt) return;
    const attempts = [...(known.attempts ?? []), attempt].slice(-5);
    this.invites.set(inviteId, { ...known, attempts });
    this.render();
  }

  updateSms(inviteId, sms) {
    const known = this.invites.get(inviteId);
    if (!known || !sms) return;
    this.invites.set(inviteId, { ...known, sms: laterSms(known.sms, sms) });
    this.render();
  }

  get(inviteId) {
    return this.invites.get(inviteId);
  }

  render() {
    const ordered = [...this.invites.values()].sort(newestFirst);
    for (const dropped of ordered.splice(KEEP)) {
      this.invites.delete(dropped.id);
      this.rows.get(dropped.id)?.remove();
      this.rows.delete(dropped.id);
    }
    const now = serverNow();
    let previous = null;
    for (const invite of ordered) {
      const row = this.rows.get(invite.id) ?? this.createRow(invite.id);
      fillRow(row, invite, now, { canHold: this.canHold, selected: this.selected === invite.id });
      // Only move rows that are out of place: moving a row would blur a focused button in it.
      const expected = previous ? previous.nextElementSibling : this.body.firstElementChild;
      if (expected !== row) {
        if (previous) previous.after(row);
        else this.body.prepend(row);
      }
      previous = row;
    }
    this.empty.hidden = ordered.length > 0;
  }

  createRow(inviteId) {
    const row = this.template.content.firstElementChild.cloneNode(true);
    row.dataset.inviteId = inviteId;
    row.querySelector(".invite-end").addEventListener("click", () => this.onEnd(inviteId));
    row.querySelector(".invite-resend").addEventListener("click", () => this.onResend?.(inviteId));
    row.querySelector(".invite-pictures").addEventListener("click", () => this.onPictures?.(inviteId));
    row.querySelector(".invite-watch").addEventListener("click", () => this.onWatch?.(inviteId));
    row.querySelector(".invite-hold").addEventListener("click", () => {
      const invite = this.invites.get(inviteId);
      if (invite) this.onHold?.(inviteId, !invite.legal_hold);
    });
    // A click anywhere else on the row shows its pictures too (the button is the keyboard way).
    row.addEventListener("click", (click) => {
      if (click.target.closest("button, a, input, select")) return;
      if (getSelection()?.toString()) return; // selecting the number to copy it is not a click
      this.onPictures?.(inviteId);
    });
    row.addEventListener("animationend", () => row.classList.remove("just-opened"));
    this.rows.set(inviteId, row);
    return row;
  }

  highlight(inviteId) {
    const row = this.rows.get(inviteId);
    if (!row) return;
    row.classList.remove("just-opened");
    void row.offsetWidth; // restart the animation if it is already running
    row.classList.add("just-opened");
    setTimeout(() => row.classList.remove("just-opened"), HIGHLIGHT_MS + 500);
  }
}

// Statuses only move forward; these ranks say which of two reports is the later one.
const INVITE_RANK = { pending: 0, opened: 1, expired: 2, ended: 3 };
const SMS_RANK = { queued: 0, sent: 1, delivered: 2, undelivered: 2, failed: 2 };

// The invite's current message: after a resend the newer message wins whatever its status, and
// a late report about the older one changes nothing; for one message, statuses only go forward.
function laterSms(known, incoming) {
  if (!known) return incoming ?? null;
  if (!incoming) return known;
  if (incoming.id !== known.id) {
    return instant(incoming.created_at) >= instant(known.created_at) ? incoming : known;
  }
  return (SMS_RANK[incoming.status] ?? 0) >= (SMS_RANK[known.status] ?? 0) ? incoming : known;
}

function newestFirst(a, b) {
  const at = instant(a.created_at);
  const bt = instant(b.created_at);
  if (at !== bt) return at < bt ? 1 : -1;
  return a.id < b.id ? 1 : -1;
}

// The server decides "expired" when asked; between updates we reach the same verdict locally.
export function currentStatus(invite, now = serverNow()) {
  if (LIVE.has(invite.status) && Date.parse(invite.expires_at) <= now) return "expired";
  return invite.status;
}

export function timeLeft(invite, now = serverNow()) {
  if (!LIVE.has(currentStatus(invite, now))) return "—";
  const minutes = Math.floor((Date.parse(invite.expires_at) - now) / 60000);
  if (minutes < 1) return "< 1 min";
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

function clock(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function fillRow(row, invite, now, { canHold, selected }) {
  const status = currentStatus(invite, now);
  const sms = invite.sms;
  row.dataset.status = status;
  setText(row.querySelector(".invite-phone"), invite.phone);
  setText(row.querySelector(".invite-incident"), invite.incident_id || "—");
  const badge = row.querySelector(".invite-status");
  setText(badge, status);
  badge.dataset.status = status;
  const smsBadge = row.querySelector(".sms-status");
  setText(smsBadge, sms?.status ?? "not sent");
  smsBadge.dataset.status = sms?.status ?? "none";
  setText(row.querySelector(".sms-error"), sms?.error_message ?? "");
  const tried = (invite.attempts ?? []).filter((a) => !sms || a.sms_id === sms.id);
  setText(
    row.querySelector(".sms-attempts"),
    tried.length ? `Tried: ${tried.map((a) => `${a.provider} (${a.outcome.replaceAll("_", " ")})`).join(", ")}` : "",
  );
  const resend = row.querySelector(".invite-resend");
  const unclear = sms?.error_code === "outcome_unknown" && sms.status === "queued";
  resend.hidden = !(sms && (["failed", "undelivered"].includes(sms.status) || unclear) && status === "pending");
  resend.setAttribute("aria-label", `Resend the link to ${invite.phone}`);
  setText(row.querySelector(".invite-opened"), clock(invite.opened_at));
  setText(row.querySelector(".invite-time-left"), timeLeft(invite, now));
  const end = row.querySelector(".invite-end");
  end.setAttribute("aria-label", `End invite for ${invite.phone}`);
  end.disabled = !LIVE.has(status) || row.dataset.ending === "1";

  const watch = row.querySelector(".invite-watch");
  watch.setAttribute("aria-label", `Watch live for ${invite.phone}`);
  watch.disabled = !LIVE.has(status);

  const onHold = invite.legal_hold === true;
  row.dataset.legalHold = onHold ? "true" : "false";
  row.querySelector(".hold-badge").hidden = !onHold;
  const hold = row.querySelector(".invite-hold");
  hold.hidden = !canHold;
  hold.setAttribute("aria-pressed", onHold ? "true" : "false");
  hold.setAttribute("aria-label", `Legal hold for ${invite.phone}`);
  hold.disabled = row.dataset.holding === "1";

  row.classList.toggle("selected", selected);
  const pictures = row.querySelector(".invite-pictures");
  pictures.setAttribute("aria-pressed", selected ? "true" : "false");
  pictures.setAttribute("aria-label", `Pictures from ${invite.phone}`);
}
