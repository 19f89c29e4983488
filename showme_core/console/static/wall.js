// The photowall: the pictures callers send, newest first, the moment each is stored.
//
// Two reports feed it: the list loaded at start (and per invite, and "older" pages) and the
// live feed's media.created / media.purged events. Both go through one idempotent merge keyed by
// media id, so a picture reported by both appears once, and a picture reported by only one of
// them still appears. A purged id is remembered, so a list answer that was read before the purge
// but arrives after it cannot bring the picture back.
//
// Thumbnails are not audited; the full-size picture is, so it is fetched only when the dispatcher
// opens it in the viewer (never preloaded).

import { api, instant } from "/console/api.js";

const PAGE = 100;
const KEEP = 1000;
const FRESH_MS = 6000;
const BEEP_GAP_MS = 1500;
const SOUND_KEY = "showme.console.wall-sound";
const EMPTY_ALL = "No pictures yet. When the caller sends one it appears here at once.";

const SOURCES = {
  exif: "from the photo's EXIF (server)",
  caller_exif: "from the photo (caller's phone)",
  geolocation: "from the phone's location",
};

export class PhotoWall {
  constructor({ panel, list, empty, error, more, filter, filterName, showAll, sound, viewer, inviteOf, onAnnounce, onSignedOut, onFilter }) {
    this.panel = panel;
    this.list = list;
    this.empty = empty;
    this.error = error;
    this.moreButton = more;
    this.filterBox = filter;
    this.filterName = filterName;
    this.showAllButton = showAll;
    this.soundButton = sound;
    this.tableInvite = inviteOf;
    this.onAnnounce = onAnnounce;
    this.onSignedOut = onSignedOut;
    this.onFilter = onFilter;

    this.items = new Map(); // media id -> media object
    this.gone = new Set(); // purged media ids: never shown again, whatever arrives later
    this.nodes = new Map(); // media id -> <li>
    this.invites = new Map(); // invites fetched for pictures whose invite the table does not hold
    this.asked = new Set(); // invite ids already fetched (or being fetched)
    this.more = new Map(); // scope ("" = all, or an invite id) -> older pictures may exist
    // scope -> the oldest created_at that scope's own pages returned: "Older" continues from
    // there, not from the oldest picture shown, which may have come from another scope's page.
    this.cursor = new Map();
    this.shown = []; // the pictures on the wall now, in order (the viewer steps through these)
    this.filter = null;
    this.unseen = 0; // pictures that arrived for other invites while the wall is filtered
    this.loaded = false;
    this.loadingMore = false;
    this.session = 0; // bumped on reset: answers meant for an earlier sign-in are dropped
    this.audio = null;
    this.lastBeep = 0;

    this.viewer = new Viewer(viewer, this);

    this.showAllButton.addEventListener("click", () => this.showAll());
    this.moreButton.addEventListener("click", () => this.loadOlder());
    this.soundButton.addEventListener("click", () => this.toggleSound());
    // Browsers start audio only after a user gesture: take the first one that comes.
    for (const type of ["pointerdown", "keydown"]) {
      document.addEventListener(type, () => {
        if (this.sound && this.audio?.state !== "running") this.unlockAudio();
      }, { capture: true, passive: true });
    }
    this.setSound(readSound(), false);
    this.render();
  }

  // ---- reports -----------------------------------------------------------------------------

  // The one way in. Returns true when the picture was not on the wall before.
  merge(item) {
    if (!item?.id || this.gone.has(item.id)) return false;
    const known = this.items.get(item.id);
    this.items.set(item.id, known ? { ...known, ...item } : item);
    return known === undefined;
  }

  // The start: call once the invites list is in, so that this list is read after the point the
  // feed resumes from; anything newer arrives (again) on the feed and is merged away.
  async load() {
    const session = this.session;
    let page;
    try {
      page = await api(`/api/v1/media?limit=${PAGE}`);
    } catch (error) {
      if (session !== this.session) return;
      this.loaded = true;
      this.failed(error, "The pictures could not be loaded");
      this.render();
      return;
    }
    if (session !== this.session) return;
    this.loaded = true;
    this.setError("");
    this.take(page, "");
  }

  // media.created
  added(item) {
    // The live-video ladder sends a still every 2 s: the wall keeps the newest one per invite,
    // in place, and only the first one of a series is announced.
    const series = item?.kind === "still" && this.hasStill(item.invite_id);
    if (!this.merge(item)) return;
    this.render();
    if (series) return;
    const visible = this.nodes.has(item.id);
    if (visible) this.highlight(item.id);
    else if (this.filter && item.invite_id !== this.filter) {
      this.unseen += 1;
      this.renderFilter();
    }
    const phone = this.inviteOf(item.invite_id)?.phone ?? "the caller";
    const where = describeLocation(item.location) ? "with location" : "no location";
    const what = { still: "video stills", snapshot: "snapshot" }[item.kind] ?? "picture";
    this.onAnnounce(`New ${what} from ${phone} at ${clock(item.created_at)}, ${where}.`);
    if (this.sound) this.beep(false);
  }

  hasStill(inviteId) {
    for (const item of this.items.values()) {
      if (item.kind === "still" && item.invite_id === inviteId) return true;
    }
    return false;
  }

  // Opens a picture full size (the live tile's snapshot and stills use this).
  open(id) {
    this.viewer.open(id);
  }

  // media.purged
  purged(ref) {
    if (!ref?.id) return;
    this.gone.add(ref.id);
    if (this.items.delete(ref.id)) this.render();
    this.viewer.purged(ref.id);
  }

  reset() {
    this.session += 1;
    this.viewer.close();
    this.items.clear();
    this.gone.clear();
    this.nodes.clear();
    this.invites.clear();
    this.asked.clear();
    this.more.clear();
    this.cursor.clear();
    this.list.replaceChildren();
    this.filter = null;
    this.unseen = 0;
    this.loaded = false;
    this.loadingMore = false;
    this.setError("");
    this.render();
  }

  // ---- filter and paging -------------------------------------------------------------------

  showInvite(inviteId) {
    if (!inviteId) {
      this.showAll();
      return;
    }
    const changed = this.filter !== inviteId;
    this.filter = inviteId;
    this.unseen = 0;
    this.onFilter?.(inviteId);
    this.render();
    this.panel.scrollIntoView({ block: "nearest" });
    // The organisation-wide list holds only the newest pictures: ask for this invite's own.
    if (changed) this.loadPage(inviteId);
  }

  showAll() {
    this.filter = null;
    this.unseen = 0;
    this.onFilter?.(null);
    this.render();
  }

  async loadOlder() {
    if (this.loadingMore) return;
    const scope = this.filter ?? "";
    await this.loadPage(scope, this.cursor.get(scope));
  }

  async loadPage(scope, before) {
    const session = this.session;
    const base = scope ? `/api/v1/invites/${encodeURIComponent(scope)}/media` : "/api/v1/media";
    const query = `?limit=${PAGE}${before ? `&before=${encodeURIComponent(before)}` : ""}`;
    this.loadingMore = true;
    this.moreButton.disabled = true;
    let page;
    try {
      page = await api(base + query);
    } catch (error) {
      if (session !== this.session) return;
      this.failed(error, "More pictures could not be loaded");
      return;
    } finally {
      if (session === this.session) {
        this.loadingMore = false;
        this.moreButton.disabled = false;
      }
    }
    if (session !== this.session) return;
    this.setError("");
    this.take(page, scope);
  }

  take(page, scope) {
    const items = Array.isArray(page?.items) ? page.items : [];
    for (const item of items) this.merge(item);
    this.more.set(scope, items.length >= PAGE);
    const oldest = items.reduce(
      (found, item) => (!found || instant(item.created_at) < instant(found) ? item.created_at : found),
      this.cursor.get(scope),
    );
    if (oldest) this.cursor.set(scope, oldest);
    this.render();
  }

  failed(error, what) {
    if (error.status === 401 && this.onSignedOut?.(error)) return;
    this.setError(`${what}: ${error.message}`);
  }

  setError(text) {
    if (this.error.textContent !== text) this.error.textContent = text;
  }

  // ---- rendering ---------------------------------------------------------------------------

  render() {
    let ordered = [...this.items.values()].sort(newestFirst);
    // Of an invite's video stills only the newest stays on the wall (all are kept on the server).
    const stills = new Set();
    ordered = ordered.filter((item) => {
      if (item.kind !== "still") return true;
      if (!stills.has(item.invite_id)) {
        stills.add(item.invite_id);
        return true;
      }
      this.items.delete(item.id);
      return false;
    });
    for (const dropped of ordered.splice(KEEP)) this.items.delete(dropped.id);
    const shown = this.filter ? ordered.filter((item) => item.invite_id === this.filter) : ordered;
    const keep = new Set(shown.map((item) => item.id));
    for (const [id, node] of this.nodes) {
      if (!keep.has(id)) {
        node.remove();
        this.nodes.delete(id);
      }
    }
    // Keyed, and only out-of-place nodes move: a focused thumbnail keeps its focus.
    let previous = null;
    for (const item of shown) {
      const node = this.nodes.get(item.id) ?? this.createNode(item);
      this.fill(node, item);
      const expected = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (expected !== node) {
        if (previous) previous.after(node);
        else this.list.prepend(node);
      }
      previous = node;
    }
    this.shown = shown;

    this.empty.hidden = shown.length > 0;
    const who = this.filter ? this.inviteLabel(this.filter) : "";
    setText(
      this.empty,
      !this.loaded
        ? "Loading pictures…"
        : this.filter
          ? `No pictures from ${who} yet. When the caller sends one it appears here at once.`
          : EMPTY_ALL,
    );
    this.moreButton.hidden = !(shown.length > 0 && this.more.get(this.filter ?? ""));
    this.renderFilter();
    this.viewer.refresh();
  }

  renderFilter() {
    this.filterBox.hidden = !this.filter;
    if (!this.filter) return;
    setText(this.filterName, this.inviteLabel(this.filter));
    setText(this.showAllButton, this.unseen ? `Show all (${this.unseen} new)` : "Show all");
  }

  createNode(item) {
    const node = element("li", "wall-item");
    node.dataset.mediaId = item.id;
    node.dataset.inviteId = item.invite_id ?? "";
    const figure = element("figure", "wall-figure");
    const open = element("button", "wall-open");
    open.type = "button";
    const image = element("img", "wall-thumb");
    image.loading = "lazy";
    image.decoding = "async";
    const [width, height] = thumbnailSize(item);
    if (width && height) {
      image.width = width;
      image.height = height;
    }
    image.addEventListener("error", () => node.classList.add("thumb-failed"));
    image.addEventListener("load", () => node.classList.remove("thumb-failed"));
    image.src = item.thumbnail_url;
    open.append(image);

    const caption = element("figcaption", "wall-caption");
    const meta = element("p", "wall-meta");
    const time = element("time", "wall-time");
    const kind = element("span", "wall-kind");
    const who = element("span", "wall-invite");
    meta.append(time, " ", kind, who);
    const location = element("p", "wall-location");
    location.append(element("span", "wall-coords"), " ", element("span", "wall-source"));
    caption.append(meta, location);
    figure.append(open, caption);
    node.append(figure);
    // The whole tile opens the picture (the button is the keyboard's way; its click bubbles here).
    node.addEventListener("click", (click) => {
      if (click.target.closest("a")) return;
      this.viewer.open(item.id);
    });
    node.addEventListener("animationend", (end) => {
      if (end.animationName === "wall-fresh") node.classList.remove("fresh");
    });
    this.nodes.set(item.id, node);
    return node;
  }

  fill(node, item) {
    const invite = this.inviteOf(item.invite_id);
    const phone = invite?.phone ?? "the caller";
    const time = node.querySelector(".wall-time");
    setText(time, when(item.created_at));
    setAttr(time, "datetime", item.created_at ?? "");
    setAttr(time, "title", `Received ${full(item.created_at)}`);
    const kind = node.querySelector(".wall-kind");
    setText(kind, item.kind === "still" ? "Video still" : item.kind === "snapshot" ? "Snapshot" : "");
    kind.dataset.kind = item.kind ?? "picture";
    node.dataset.kind = item.kind ?? "picture";
    setText(node.querySelector(".wall-invite"), invite ? inviteText(invite) : "");
    const noun = item.kind === "still" ? "Latest video still" : item.kind === "snapshot" ? "Snapshot" : "Picture";
    setAttr(node.querySelector(".wall-thumb"), "alt", `${noun} from ${phone} at ${clock(item.created_at)}`);
    const place = describeLocation(item.location);
    const location = node.querySelector(".wall-location");
    location.dataset.source = place ? String(item.location.source ?? "unknown") : "none";
    setText(location.querySelector(".wall-coords"), place ? place.coords : "No location");
    setText(location.querySelector(".wall-source"), place ? place.source : "");
  }

  highlight(id) {
    const node = this.nodes.get(id);
    if (!node) return;
    node.classList.remove("fresh");
    void node.offsetWidth; // restart the animation if it is already running
    node.classList.add("fresh");
    // Also without animations (reduced motion), the highlight ends.
    setTimeout(() => node.classList.remove("fresh"), FRESH_MS + 500);
  }

  // ---- invites -----------------------------------------------------------------------------

  // The table holds the newest invites; a picture from an older one fetches its invite once.
  inviteOf(inviteId) {
    if (!inviteId) return undefined;
    const known = this.tableInvite?.(inviteId) ?? this.invites.get(inviteId);
    if (!known) this.lookup(inviteId);
    return known;
  }

  async lookup(inviteId) {
    if (this.asked.has(inviteId)) return;
    this.asked.add(inviteId);
    const session = this.session;
    try {
      const invite = await api(`/api/v1/invites/${encodeURIComponent(inviteId)}`);
      if (session !== this.session || !invite?.id) return;
      this.invites.set(inviteId, invite);
      this.render();
    } catch {
      // The picture stays on the wall without its phone number; nothing else to do.
    }
  }

  inviteLabel(inviteId) {
    const invite = this.inviteOf(inviteId);
    return invite ? inviteText(invite) : "this invite";
  }

  // ---- sound -------------------------------------------------------------------------------

  toggleSound() {
    this.setSound(!this.sound, true);
    // The click is the user gesture browsers want before they let a page make a sound.
    if (this.sound && this.unlockAudio()) this.beep(true);
  }

  setSound(on, persist) {
    this.sound = on;
    if (persist) {
      try {
        localStorage.setItem(SOUND_KEY, on ? "on" : "off");
      } catch {
        // Storage may be off (private mode, policy): the toggle still works for this page.
      }
    }
    this.soundButton.setAttribute("aria-pressed", on ? "true" : "false");
    setText(this.soundButton.querySelector(".toggle-state"), on ? "on" : "off");
  }

  unlockAudio() {
    try {
      const Context = window.AudioContext ?? window.webkitAudioContext;
      if (!Context) return null;
      this.audio ??= new Context();
      if (this.audio.state === "suspended") this.audio.resume().catch(() => {});
    } catch {
      this.audio = null;
    }
    return this.audio;
  }

  beep(force) {
    const now = Date.now();
    if (!force && now - this.lastBeep < BEEP_GAP_MS) return; // a burst of pictures: one beep
    let audio = this.audio;
    if (!audio && navigator.userActivation?.hasBeenActive) audio = this.unlockAudio();
    // Not allowed to play yet: stay silent rather than beep late, at the wrong moment.
    if (!audio || (!force && audio.state !== "running")) return;
    this.lastBeep = now;
    try {
      const start = audio.currentTime + 0.01;
      for (const [offset, frequency] of [[0, 880], [0.16, 1175]]) {
        const oscillator = audio.createOscillator();
        const gain = audio.createGain();
        oscillator.type = "sine";
        oscillator.frequency.value = frequency;
        gain.gain.setValueAtTime(0.0001, start + offset);
        gain.gain.exponentialRampToValueAtTime(0.3, start + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.14);
        oscillator.connect(gain).connect(audio.destination);
        oscillator.start(start + offset);
        oscillator.stop(start + offset + 0.15);
      }
    } catch {
      // A sound is a courtesy; the highlight and the announcement already happened.
    }
  }
}

// ---- the full-size viewer ----------------------------------------------------------------------

class Viewer {
  constructor(elements, wall) {
    this.el = elements;
    this.wall = wall;
    this.current = null;
    this.el.close.addEventListener("click", () => this.close());
    this.el.prev.addEventListener("click", () => this.step(-1));
    this.el.next.addEventListener("click", () => this.step(1));
    this.el.dialog.addEventListener("keydown", (key) => {
      if (key.altKey || key.ctrlKey || key.metaKey || key.shiftKey) return;
      if (key.key === "ArrowLeft") this.step(-1);
      else if (key.key === "ArrowRight") this.step(1);
      else return;
      key.preventDefault();
    });
    // A click on the backdrop (the dialog box itself, outside its content) closes it.
    this.el.dialog.addEventListener("click", (click) => {
      if (click.target === this.el.dialog) this.close();
    });
    this.el.dialog.addEventListener("close", () => this.closed());
    this.el.image.addEventListener("load", () => this.el.image.classList.remove("loading"));
    this.el.image.addEventListener("error", () => {
      if (!this.current || !this.el.image.getAttribute("src")) return;
      this.el.image.classList.remove("loading");
      setText(this.el.error, "The picture could not be loaded. It may have been deleted when its retention period ended; check the network and try again.");
    });
    this.el.copyLocation.addEventListener("click", () => this.copyCoordinates());
  }

  // Only here is the full-size (audited) picture requested: the dispatcher asked for it.
  open(id) {
    const item = this.wall.items.get(id);
    if (!item) return;
    this.current = id;
    this.show(item);
    if (!this.el.dialog.open) {
      this.el.dialog.showModal();
      this.el.close.focus(); // not the first arrow: Enter right after opening must not step
    }
  }

  show(item) {
    const invite = this.wall.inviteOf(item.invite_id);
    const phone = invite?.phone ?? "the caller";
    setText(this.el.title, `Picture from ${invite ? inviteText(invite) : phone}`);
    setText(this.el.error, "");
    setText(this.el.copyState, "");
    this.el.image.removeAttribute("src");
    this.el.image.classList.add("loading");
    this.el.image.alt = `Picture from ${phone} at ${clock(item.created_at)}`;
    if (item.width && item.height) {
      this.el.image.width = item.width;
      this.el.image.height = item.height;
    }
    this.el.image.src = item.url;
    setText(this.el.received, full(item.created_at));
    setAttr(this.el.received, "title", item.created_at ?? "");
    setText(this.el.taken, item.captured_at ? `${full(item.captured_at)} (the phone's clock)` : "Not known");
    setAttr(this.el.taken, "title", item.captured_at ?? "");
    const place = describeLocation(item.location);
    setText(this.el.location, place ? `${place.coords}, ${place.source}` : "No location");
    this.el.location.dataset.source = place ? String(item.location.source ?? "unknown") : "none";
    this.el.copyLocation.hidden = !place;
    const size = [];
    if (item.width && item.height) size.push(`${item.width} × ${item.height} px`);
    if (Number.isFinite(item.size)) size.push(bytes(item.size));
    setText(this.el.size, size.join(", ") || "—");
    setText(this.el.sha, item.sha256 ?? "—");
    this.el.download.href = `${item.url}?download=1`;
    this.el.download.setAttribute("download", `showme-${item.id}.jpg`);
    this.el.download.removeAttribute("aria-disabled");
    this.refresh();
  }

  // The wall changed (a picture arrived or went): keep the position and the arrows right.
  refresh() {
    if (!this.current) return;
    const index = this.wall.shown.findIndex((item) => item.id === this.current);
    this.el.prev.disabled = index <= 0;
    this.el.next.disabled = index < 0 || index >= this.wall.shown.length - 1;
    setText(this.el.position, index < 0 ? "" : `${index + 1} of ${this.wall.shown.length}`);
  }

  step(delta) {
    const list = this.wall.shown;
    const index = list.findIndex((item) => item.id === this.current);
    const target = index < 0 ? undefined : list[index + delta];
    if (target) this.open(target.id);
  }

  purged(id) {
    if (this.current !== id || !this.el.dialog.open) return;
    this.el.image.removeAttribute("src");
    this.el.image.classList.remove("loading");
    this.el.download.removeAttribute("href");
    this.el.download.setAttribute("aria-disabled", "true");
    setText(this.el.error, "This picture was deleted when its retention period ended.");
    this.refresh();
  }

  async copyCoordinates() {
    const location = this.wall.items.get(this.current)?.location;
    if (!describeLocation(location)) return;
    const text = `${location.lat.toFixed(6)}, ${location.lon.toFixed(6)}`;
    try {
      await navigator.clipboard.writeText(text);
      setText(this.el.copyState, `Copied ${text}.`);
    } catch {
      getSelection().selectAllChildren(this.el.location);
      setText(this.el.copyState, "The location is selected: press Ctrl+C.");
    }
  }

  close() {
    if (this.el.dialog.open) this.el.dialog.close();
  }

  closed() {
    const id = this.current;
    this.current = null;
    // Stop a large download that is no longer wanted, and free the memory.
    this.el.image.removeAttribute("src");
    // Back to the thumbnail of the picture last shown (it may not be the one first opened).
    const button = id ? this.wall.nodes.get(id)?.querySelector(".wall-open") : null;
    if (button?.isConnected) button.focus();
  }
}

// ---- helpers -----------------------------------------------------------------------------------

export function describeLocation(location) {
  const lat = location?.lat;
  const lon = location?.lon;
  if (!Number.isFinite(lat) || !Number.isFinite(lon)) return null;
  let coords = `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
  if (Number.isFinite(location.accuracy_m)) coords += ` ±${distance(location.accuracy_m)}`;
  const source = SOURCES[location.source] ?? "source not known";
  return { coords, source };
}

function distance(metres) {
  if (metres >= 1000) return `${(metres / 1000).toFixed(1)} km`;
  return `${Math.max(1, Math.round(metres))} m`;
}

function bytes(size) {
  if (size >= 1024 * 1024) return `${(size / (1024 * 1024)).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(size / 1024))} KB`;
}

function inviteText(invite) {
  return [invite.phone, invite.incident_id].filter(Boolean).join(" · ");
}

function thumbnailSize(item) {
  const { width, height } = item;
  if (!(width > 0 && height > 0)) return [0, 0];
  const scale = Math.min(1, 320 / Math.max(width, height));
  return [Math.round(width * scale), Math.round(height * scale)];
}

function newestFirst(a, b) {
  const at = instant(a.created_at);
  const bt = instant(b.created_at);
  if (at !== bt) return at < bt ? 1 : -1;
  if (a.id === b.id) return 0;
  return a.id < b.id ? 1 : -1;
}

function valid(iso) {
  const date = new Date(iso ?? "");
  return Number.isNaN(date.getTime()) ? null : date;
}

function clock(iso) {
  const date = valid(iso);
  return date ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "an unknown time";
}

// The time alone for today's pictures; the date too for older ones.
function when(iso) {
  const date = valid(iso);
  if (!date) return "—";
  if (date.toDateString() === new Date().toDateString()) return clock(iso);
  return `${date.toLocaleDateString([], { day: "numeric", month: "short" })} ${clock(iso)}`;
}

function full(iso) {
  const date = valid(iso);
  if (!date) return "—";
  return date.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

function readSound() {
  try {
    return localStorage.getItem(SOUND_KEY) === "on";
  } catch {
    return false;
  }
}

function element(tag, className) {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}
