// The dispatcher console: sign in, send a caller a link, follow every invite live.
// Plugins loaded as extras can listen to "showme:feed" events on document.

import { api } from "/console/api.js";
import { loadExtras } from "/console/extras.js";
import { Feed } from "/console/feed.js";
import { InviteTable } from "/console/invites.js";
import { LiveTiles } from "/console/live.js";
import { Outbox } from "/console/outbox.js";
import { PhotoWall } from "/console/wall.js";

const TICK_MS = 30_000;
const LINK_SHOWN_MS = 60_000;
const LANGUAGE_NAMES = "DisplayNames" in Intl ? new Intl.DisplayNames(["en"], { type: "language" }) : null;

const $ = (id) => document.getElementById(id);

const table = new InviteTable({
  body: $("invite-rows"),
  empty: $("invites-empty"),
  template: $("invite-row-template"),
  onEnd: endInvite,
  onResend: resendInvite,
  onPictures: (inviteId) => wall.showInvite(inviteId),
  onHold: setLegalHold,
  onWatch: (inviteId) => live.watch(inviteId),
});
const outbox = new Outbox({ panel: $("outbox"), list: $("outbox-list"), empty: $("outbox-empty") });
const wall = new PhotoWall({
  panel: $("wall"),
  list: $("wall-list"),
  empty: $("wall-empty"),
  error: $("wall-error"),
  more: $("wall-more"),
  filter: $("wall-filter"),
  filterName: $("wall-filter-name"),
  showAll: $("wall-show-all"),
  sound: $("wall-sound"),
  viewer: {
    dialog: $("media-viewer"),
    image: $("viewer-image"),
    title: $("viewer-title"),
    position: $("viewer-position"),
    received: $("viewer-received"),
    taken: $("viewer-taken"),
    location: $("viewer-location"),
    size: $("viewer-size"),
    sha: $("viewer-sha"),
    download: $("viewer-download"),
    copyLocation: $("viewer-copy-location"),
    copyState: $("viewer-copy-state"),
    error: $("viewer-error"),
    prev: $("viewer-prev"),
    next: $("viewer-next"),
    close: $("viewer-close"),
  },
  inviteOf: (inviteId) => table.get(inviteId),
  onAnnounce: announce,
  onSignedOut: handleSignedOut,
  onFilter: (inviteId) => table.select(inviteId),
});

const live = new LiveTiles({
  panel: $("live"),
  list: $("live-tiles"),
  template: $("live-tile-template"),
  inviteOf: (inviteId) => table.get(inviteId),
  onEnd: endInvite,
  onSignedOut: handleSignedOut,
  onOpenMedia: (mediaId) => wall.open(mediaId),
  onAnnounce: announce,
});

let feed = null;
let ticker = 0;
let linkTimer = 0;
let sending = false;

// ---- screens -------------------------------------------------------------------------------

function showSignIn(note = "") {
  stopApp();
  $("loading").hidden = true;
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-note").textContent = note;
  $("signin-note").hidden = !note;
  $("signin-password").value = "";
  $("signin-email").focus();
}

async function startApp(me) {
  stopApp();
  $("org-name").textContent = me.organisation.name;
  $("user-name").textContent = me.user?.name || me.user?.email || "";
  setCredits(me.organisation.sms_credits);
  fillLanguages(me.organisation.languages, me.organisation.default_language);
  $("loading").hidden = true;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("phone").focus();
  let list;
  try {
    list = await api("/api/v1/invites?limit=50");
  } catch (error) {
    if (!handleSignedOut(error)) $("invites-error").textContent = error.message;
    return;
  }
  $("invites-error").textContent = "";
  table.reset(list.items);
  table.setCanHold(me.user?.role === "admin");
  live.setUser(me.user?.id);
  // The feed resumes after the invites list; the pictures are read after that list, so every
  // picture is in the media list, on the feed, or both (the wall merges them by id).
  feed = new Feed({
    after: list.last_event_id,
    onEvent: applyEvent,
    onState: setFeedState,
    onSignedOut: () => showSignIn("Your session has ended. Please sign in again."),
  });
  ticker = setInterval(() => table.render(), TICK_MS);
  wall.load();
  outbox.refresh();
}

function stopApp() {
  feed?.close();
  feed = null;
  clearInterval(ticker);
  hideLink();
  live.reset();
  table.reset();
  table.setCanHold(false);
  wall.reset();
  outbox.clear();
  setFeedState("reconnecting");
  for (const id of ["send-error", "invites-error", "announcer"]) $(id).textContent = "";
}

// A 401 anywhere means the session is gone: back to the sign-in form.
function handleSignedOut(error) {
  if (error.status !== 401) return false;
  showSignIn("Your session has ended. Please sign in again.");
  return true;
}

// ---- header --------------------------------------------------------------------------------

function setCredits(credits) {
  const element = $("credits");
  element.textContent = String(credits);
  element.dataset.low = credits < 10 ? "true" : "false";
}

function setFeedState(state) {
  const element = $("feed-state");
  if (element.dataset.state === state) return;
  element.dataset.state = state;
  element.textContent = state === "live" ? "Live" : "Reconnecting…";
}

function fillLanguages(languages, preferred) {
  const select = $("language");
  select.replaceChildren(
    ...languages.map((code) => {
      const name = LANGUAGE_NAMES?.of(code) ?? code;
      return new Option(name === code ? code : `${name} (${code})`, code, false, code === preferred);
    }),
  );
}

// ---- live events ---------------------------------------------------------------------------

function applyEvent(event) {
  const data = event.data ?? {};
  switch (event.type) {
    case "invite.created":
    case "invite.opened":
    case "invite.ended":
      if (data.invite && table.upsert(data.invite)) announce(`Link opened by ${data.invite.phone}.`);
      break;
    case "invite.legal_hold":
      if (data.invite) {
        const before = table.get(data.invite.id)?.legal_hold === true;
        table.upsert(data.invite);
        const now = data.invite.legal_hold === true;
        if (before !== now) announce(`Legal hold ${now ? "set" : "lifted"} for ${data.invite.phone}.`);
      }
      break;
    case "media.created":
      if (data.media) wall.added(data.media);
      break;
    case "media.purged":
      if (data.media) wall.purged(data.media);
      break;
    case "sms.status":
      table.updateSms(event.invite_id, data.sms);
      outbox.refresh();
      break;
    case "sms.attempt":
      table.addAttempt(event.invite_id, data.attempt);
      break;
    case "invite.resent":
      if (data.invite) table.upsert(data.invite);
      break;
    case "credits.changed":
      setCredits(data.credits);
      break;
  }
  live.feed(event);
  document.dispatchEvent(new CustomEvent("showme:feed", { detail: event }));
}

function announce(text) {
  $("announcer").textContent = text;
}

// ---- sign in / out -------------------------------------------------------------------------

$("signin-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const button = $("signin-submit");
  if (button.disabled) return;
  $("signin-error").textContent = "";
  const email = $("signin-email").value.trim();
  const password = $("signin-password").value;
  if (!email || !password) {
    $("signin-error").textContent = "Enter your email and password.";
    return;
  }
  button.disabled = true;
  try {
    const me = await api("/api/v1/session", { method: "POST", body: { email, password } });
    await startApp(me);
  } catch (error) {
    $("signin-error").textContent = error.message;
    $("signin-password").select();
  } finally {
    button.disabled = false;
  }
});

$("sign-out").addEventListener("click", async () => {
  try {
    await api("/api/v1/session", { method: "DELETE" });
  } catch (error) {
    // The cookie is still there: staying signed in beats pretending to be signed out.
    if (error.status !== 401) {
      $("invites-error").textContent = error.message;
      return;
    }
  }
  showSignIn();
});

// ---- send a link ---------------------------------------------------------------------------

$("send-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  // A second Enter while the first request is on its way must not send a second SMS.
  if (sending) return;
  const phone = $("phone").value.trim();
  const incident = $("incident").value.trim();
  $("send-error").textContent = "";
  if (!phone) {
    $("send-error").textContent = "Enter the caller's phone number.";
    $("phone").focus();
    return;
  }
  sending = true;
  $("send-submit").disabled = true;
  try {
    const invite = await api("/api/v1/invites", {
      method: "POST",
      body: { phone, incident_id: incident || null, language: $("language").value, send_sms: true },
    });
    table.upsert(invite);
    showLink(invite);
    $("phone").value = "";
    $("incident").value = "";
    outbox.refresh();
  } catch (error) {
    if (!handleSignedOut(error)) $("send-error").textContent = error.message;
  } finally {
    sending = false;
    $("send-submit").disabled = false;
    if (!$("app").hidden) $("phone").focus();
  }
});

function showLink(invite) {
  clearTimeout(linkTimer);
  $("last-link-phone").textContent = invite.phone;
  $("last-link-url").textContent = invite.link;
  $("copy-state").textContent = "";
  $("last-link").hidden = false;
  linkTimer = setTimeout(hideLink, LINK_SHOWN_MS);
}

function hideLink() {
  clearTimeout(linkTimer);
  $("last-link").hidden = true;
  $("last-link-url").textContent = "";
}

$("copy-link").addEventListener("click", async () => {
  const link = $("last-link-url");
  let copied = false;
  try {
    await navigator.clipboard.writeText(link.textContent);
    copied = true;
  } catch {
    // No clipboard API outside https and localhost: select the text so Ctrl+C works.
    getSelection().selectAllChildren(link);
    copied = document.execCommand?.("copy") ?? false;
  }
  $("copy-state").textContent = copied ? "Link copied." : "The link is selected: press Ctrl+C.";
});

// ---- end an invite -------------------------------------------------------------------------

async function endInvite(inviteId) {
  const row = document.querySelector(`tr[data-invite-id="${CSS.escape(inviteId)}"]`);
  const hadFocus = row?.contains(document.activeElement);
  if (row) row.dataset.ending = "1";
  table.render();
  $("invites-error").textContent = "";
  try {
    table.upsert(await api(`/api/v1/invites/${encodeURIComponent(inviteId)}/end`, { method: "POST" }));
  } catch (error) {
    if (!handleSignedOut(error)) $("invites-error").textContent = error.message;
  } finally {
    if (row) delete row.dataset.ending;
    table.render();
  }
  // The pressed button is now disabled; hand the keyboard back to where the next call starts.
  if (hadFocus && !$("app").hidden) $("phone").focus();
}

// After a failed or unclear SMS: a new link, sent again (the old link stops working).
async function resendInvite(inviteId) {
  $("invites-error").textContent = "";
  try {
    const invite = await api(`/api/v1/invites/${encodeURIComponent(inviteId)}/resend`, { method: "POST" });
    table.upsert(invite);
    showLink(invite);
    announce(`Link sent again to ${invite.phone}.`);
  } catch (error) {
    if (!handleSignedOut(error)) $("invites-error").textContent = error.message;
  }
}

// ---- legal hold (admins) ------------------------------------------------------------------

async function setLegalHold(inviteId, hold) {
  const row = document.querySelector(`tr[data-invite-id="${CSS.escape(inviteId)}"]`);
  if (row?.dataset.holding === "1") return;
  if (row) row.dataset.holding = "1";
  table.render();
  $("invites-error").textContent = "";
  try {
    const path = `/api/v1/invites/${encodeURIComponent(inviteId)}/legal-hold`;
    const invite = await api(path, { method: "POST", body: { hold } });
    if (invite?.id) table.upsert(invite);
  } catch (error) {
    if (!handleSignedOut(error)) $("invites-error").textContent = error.message;
  } finally {
    if (row) delete row.dataset.holding;
    table.render();
  }
}

// ---- start ---------------------------------------------------------------------------------

async function boot() {
  loadExtras();
  try {
    await startApp(await api("/api/v1/me"));
  } catch (error) {
    if (error.status === 401) {
      showSignIn();
    } else {
      $("loading").textContent = `${error.message} Reload the page to try again.`;
    }
  }
}

boot();
