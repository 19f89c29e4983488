// Live video: one tile per session the dispatcher watches, the caller's camera over WebRTC.
//
// The contract is docs/live.md. Each tile has its own signaling socket (/ws/signal) and its own
// RTCPeerConnection. The caller always offers; the console answers, trickles its candidates,
// tells the caller when it decoded a frame (so the caller leaves stills), and asks for an ICE
// restart with fresh TURN credentials when the connection fails. The signaling socket and the
// media path are independent: a dropped socket is reopened with backoff while the video goes on.

import { api } from "/console/api.js";
import { currentStatus } from "/console/invites.js";

const STATS_MS = 1000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const ICE_WAIT_MS = 3000; // an "ice" answer later than this: ask for the restart without it
const RESTART_MIN_MS = 2000;
const RESTART_MAX_MS = 10_000;
const DECODED_AGAIN_MS = 3000; // resend "decoded" while the caller still says stills
const SNAPSHOT_WAIT_MS = 30_000;
const LIVE = new Set(["pending", "opened"]);

// Close codes after which reconnecting cannot help.
const FINAL = new Map([
  [4000, "taken-over"],
  [4401, "signed-out"],
  [4403, "refused"],
  [4404, "refused"],
  [4410, "ended"],
]);

const RUNGS = {
  waiting: "Waiting for the caller",
  connecting: "Connecting video…",
  video: "Live video",
  stills: "Stills (video could not connect)",
  stopped: "The caller stopped the video",
};

const FINAL_RUNG = {
  "taken-over": "Watched on another console",
  ended: "Session ended",
  "signed-out": "Not connected",
  refused: "Not connected",
  closed: "Not connected",
};

const CAMERA = {
  refused: "The caller refused the camera: ask them to allow it, or to send pictures.",
  unavailable: "The caller's phone has no usable camera here: ask them to send pictures.",
};

export class LiveTiles {
  constructor({ panel, list, template, inviteOf, onEnd, onSignedOut, onOpenMedia, onAnnounce, onChange }) {
    this.panel = panel;
    this.list = list;
    this.template = template;
    this.inviteOf = inviteOf;
    this.onEnd = onEnd;
    this.onSignedOut = onSignedOut;
    this.onOpenMedia = onOpenMedia;
    this.onAnnounce = onAnnounce;
    this.onChange = onChange;
    this.tiles = new Map(); // invite id -> Tile
    this.hidden = new Set(); // invites whose picture the dispatcher hid: still hidden on reopening
    this.userId = null;
    this.session = 0; // bumped on reset: lookups for an earlier sign-in are dropped
    window.showmeConsoleLive = {
      tile: (inviteId) => this.tiles.get(inviteId)?.snapshot() ?? null,
      tiles: () => [...this.tiles.keys()],
    };
  }

  setUser(userId) {
    this.userId = userId ?? null;
  }

  has(inviteId) {
    return this.tiles.has(inviteId);
  }

  // "Watch live" on an invite's row, or a stream this user asked for.
  watch(inviteId, { focus = true } = {}) {
    let tile = this.tiles.get(inviteId);
    if (!tile) {
      const root = this.template.content.firstElementChild.cloneNode(true);
      tile = new Tile(this, inviteId, root);
      this.tiles.set(inviteId, tile);
      this.list.prepend(root);
      this.panel.hidden = false;
      tile.connect();
      this.onChange?.();
    } else if (tile.final && tile.final !== "ended") {
      tile.again();
    }
    if (focus) {
      tile.root.scrollIntoView({ block: "nearest" });
      tile.root.focus({ preventScroll: true });
    }
    return tile;
  }

  closeTile(inviteId) {
    const tile = this.tiles.get(inviteId);
    if (!tile) return;
    const hadFocus = tile.root.contains(document.activeElement);
    tile.teardown();
    tile.root.remove();
    this.tiles.delete(inviteId);
    this.panel.hidden = this.tiles.size === 0;
    this.onChange?.();
    if (hadFocus) document.querySelector(`tr[data-invite-id="${CSS.escape(inviteId)}"] .invite-watch`)?.focus();
  }

  reset() {
    this.session += 1;
    for (const id of [...this.tiles.keys()]) this.closeTile(id);
    this.hidden.clear();
    this.userId = null;
  }

  // Every feed event goes through here; only some concern the tiles.
  feed(event) {
    const data = event.data ?? {};
    const inviteId = event.invite_id ?? data.stream?.invite_id ?? data.media?.invite_id ?? data.invite?.id;
    if (!inviteId) return;
    switch (event.type) {
      case "stream.requested":
        if (!this.tiles.has(inviteId)) this.autoOpen(inviteId);
        break;
      case "stream.connected":
      case "stream.stills":
      case "stream.failed":
      case "stream.ended":
        this.tiles.get(inviteId)?.streamEvent(event.type, data.stream ?? {});
        break;
      case "media.created":
        if (data.media) this.tiles.get(inviteId)?.media(data.media);
        break;
      case "invite.ended":
        if (data.invite && !LIVE.has(data.invite.status)) this.tiles.get(inviteId)?.ended();
        break;
    }
  }

  // Invites this dispatcher created open by themselves when the caller starts the camera.
  async autoOpen(inviteId) {
    if (!this.userId) return;
    const session = this.session;
    let invite = this.inviteOf(inviteId);
    if (!invite) {
      try {
        invite = await api(`/api/v1/invites/${encodeURIComponent(inviteId)}`);
      } catch {
        return;
      }
    }
    if (session !== this.session || this.tiles.has(inviteId)) return;
    if (invite?.created_by !== `user:${this.userId}` || !LIVE.has(currentStatus(invite))) return;
    this.watch(inviteId, { focus: false });
    this.onAnnounce?.(`Live video starting from ${invite.phone}.`);
  }
}

class Tile {
  constructor(owner, inviteId, root) {
    this.owner = owner;
    this.inviteId = inviteId;
    this.root = root;
    root.dataset.inviteId = inviteId;
    root.tabIndex = -1;
    const $ = (selector) => root.querySelector(selector);
    this.el = {
      title: $(".live-title"),
      rung: $(".live-rung"),
      connection: $(".live-connection"),
      frame: $(".live-frame"),
      video: $(".live-video"),
      still: $(".live-still"),
      stillOpen: $(".live-still-open"),
      stillLabel: $(".live-still-label"),
      quality: $(".live-quality"),
      message: $(".live-message"),
      device: $(".live-device-request"),
      allow: $(".live-allow"),
      ignore: $(".live-ignore"),
      snapshotState: $(".live-snapshot-state"),
      openSnapshot: $(".live-open-snapshot"),
      snapshot: $(".live-snapshot"),
      switchCamera: $(".live-switch"),
      torch: $(".live-torch"),
      hide: $(".live-hide"),
      end: $(".live-end"),
      again: $(".live-again"),
      close: $(".live-close"),
    };
    this.video = this.el.video;
    this.video.muted = true;

    this.ws = null;
    this.welcomed = false;
    this.final = null; // taken-over, signed-out, refused, ended, closed: no more reconnecting
    this.backoff = BACKOFF_MIN_MS;
    this.reconnectTimer = 0;
    this.chain = Promise.resolve();
    this.ice = null;
    this.iceAt = 0;
    this.iceWaiters = [];
    this.remoteUfrag = "";
    this.pc = null;
    this.remoteSession = null; // the caller's SDP session ("o=" id and fingerprint) of this.pc
    this.candidates = []; // remote candidates that arrived before the remote description
    this.callerPresent = false;
    this.callerSeen = false;
    this.status = null; // the caller's last "status"
    this.torchOn = false;
    this.decodedPc = null; // the peer connection whose first frame the caller has been told of
    this.decodedAt = 0;
    this.firstFrameReported = false;
    this.flowing = false;
    this.stalls = 0;
    this.lastStats = null;
    this.statsTimer = 0;
    this.polling = false;
    this.recovering = false;
    this.iceTimer = 0;
    this.restartTimer = 0;
    this.restartDelay = RESTART_MIN_MS;
    this.disconnectedSince = 0;
    this.snapshotTimer = 0;
    this.lastSnapshot = null;
    this.latestStill = null;
    this.deviceRequested = null;
    this.state = "connecting";

    this.el.snapshot.addEventListener("click", () => this.requestSnapshot());
    this.el.switchCamera.addEventListener("click", () => this.control("switch-camera"));
    this.el.torch.addEventListener("click", () => {
      this.torchOn = !this.torchOn;
      this.control(this.torchOn ? "torch-on" : "torch-off");
      this.render();
    });
    this.el.hide.addEventListener("click", () => this.toggleHidden());
    this.el.end.addEventListener("click", () => this.owner.onEnd?.(this.inviteId));
    this.el.again.addEventListener("click", () => this.again());
    this.el.close.addEventListener("click", () => this.owner.closeTile(this.inviteId));
    this.el.allow.addEventListener("click", () => this.answerDevice(true));
    this.el.ignore.addEventListener("click", () => this.answerDevice(false));
    this.el.openSnapshot.addEventListener("click", () => {
      if (this.lastSnapshot) this.owner.onOpenMedia?.(this.lastSnapshot.id);
    });
    this.el.stillOpen.addEventListener("click", () => {
      if (this.latestStill) this.owner.onOpenMedia?.(this.latestStill.id);
    });
    this.video.addEventListener("resize", () => this.poll());
    this.setHidden(owner.hidden.has(inviteId));
    this.render();
  }

  // For tests and plugins: what the tile is doing now.
  snapshot() {
    return {
      pc: this.pc,
      video: this.video,
      ws: this.ws,
      state: this.state,
      status: this.status,
      decoded: this.flowing,
      root: this.root,
    };
  }

  // ---- the signaling socket ----------------------------------------------------------------

  connect() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = 0;
    this.welcomed = false;
    this.setState("connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/ws/signal`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.send({ type: "hello", role: "console", invite_id: this.inviteId });
    });
    ws.addEventListener("message", (message) => {
      if (ws !== this.ws) return;
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!data || typeof data !== "object") return;
      // One message at a time: an offer's answer is sent before the candidates that follow it.
      this.chain = this.chain
        .then(() => (ws === this.ws ? this.receive(data) : undefined))
        .catch((error) => console.warn("Live video:", error?.message ?? error));
    });
    ws.addEventListener("close", (close) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.welcomed = false;
      this.socketClosed(close.code);
    });
  }

  send(message) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  socketClosed(code) {
    const reason = FINAL.get(code);
    if (this.final) {
      this.render();
      return;
    }
    if (reason === "taken-over") this.takenOver();
    else if (reason === "ended") this.ended();
    else if (reason === "signed-out") {
      this.stop("signed-out", "Your session has ended. Please sign in again.");
      this.owner.onSignedOut?.({ status: 401 });
    } else if (reason === "refused") {
      const text =
        code === 4404
          ? "This session is not one of your organisation's, or it no longer exists."
          : "The server refused this console's connection.";
      this.stop("refused", this.refusal || text);
    } else {
      this.scheduleReconnect();
    }
  }

  scheduleReconnect() {
    if (this.final || this.reconnectTimer) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.setState("reconnecting");
    this.setMessage("Connection to the ShowMe server lost — reconnecting…");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = 0;
      if (!this.final) this.connect();
    }, delay);
  }

  closeSocket(code = 1000) {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = 0;
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try {
        ws.close(code);
      } catch {
        // Already closing.
      }
    }
  }

  // ---- messages ----------------------------------------------------------------------------

  async receive(message) {
    switch (message.type) {
      case "welcome":
        this.welcome(message);
        break;
      case "peer":
        this.peer(message.present === true);
        break;
      case "offer":
        if (typeof message.sdp === "string") await this.offer(message.sdp);
        break;
      case "candidate":
        await this.candidate(message.candidate ?? null);
        break;
      case "status":
        this.callerStatus(message);
        break;
      case "ice":
        this.freshIce(message.ice);
        for (const resolve of this.iceWaiters.splice(0)) resolve();
        break;
      case "device-request":
        this.deviceRequest(message.device);
        break;
      case "taken-over":
        this.takenOver();
        break;
      case "ended":
        this.ended();
        break;
      case "refused":
        this.refusal = typeof message.message === "string" ? message.message : "";
        if (this.refusal) this.setMessage(this.refusal);
        break;
    }
  }

  welcome(message) {
    this.welcomed = true;
    this.firstFrameReported = false; // the server times the first frame of each console's seat
    this.backoff = BACKOFF_MIN_MS;
    this.refusal = "";
    if (message.ice) this.freshIce(message.ice, false);
    this.setMessage("");
    this.peer(message.peer === true);
  }

  peer(present) {
    this.callerPresent = present;
    if (present) {
      this.callerSeen = true;
      // The caller offers as soon as it sees us: a new offer follows.
      if (!this.flowing) this.setMessage("Caller connected — waiting for the video…");
      else this.setMessage("");
    } else {
      this.setMessage(
        this.callerSeen
          ? "Caller disconnected — waiting"
          : "Waiting for the caller to open the link and start the video…",
      );
    }
    this.setState(this.flowing ? "live" : "waiting");
  }

  callerStatus(message) {
    const status = {};
    for (const key of ["rung", "camera", "facing"]) {
      if (typeof message[key] === "string") status[key] = message[key];
    }
    status.torch = message.torch === true;
    this.status = status;
    if (!status.torch) this.torchOn = false;
    if (CAMERA[status.camera]) this.setMessage(CAMERA[status.camera]);
    this.render();
  }

  // Stream events on the feed: the caller's rung as the server saw it; a fallback until (or
  // while) the socket carries the caller's own status.
  streamEvent(type, stream) {
    if (type === "stream.failed" && stream.reason) {
      this.setMessage(`The video failed on the caller's side: ${stream.reason}`);
    }
    if (!this.callerPresent || !this.status) {
      const rung = { "stream.connected": "video", "stream.stills": "stills", "stream.ended": "stopped" }[type];
      if (rung) {
        this.status = { ...(this.status ?? {}), rung };
        this.render();
      }
    }
  }

  // ---- WebRTC ------------------------------------------------------------------------------

  // TURN REST credentials are short-lived and coturn checks them only when it allocates: before
  // a new connection, or answering an ICE restart (a new ice-ufrag), make sure ours are fresh.
  async ensureFreshIce(force) {
    const ttl = Number(this.ice?.ttl) || 0;
    if (!force && (!ttl || Date.now() - (this.iceAt ?? 0) < (ttl * 1000) / 2)) return;
    if (!this.send({ type: "ice-request" })) return;
    await new Promise((resolve) => {
      this.iceWaiters.push(resolve);
      setTimeout(resolve, ICE_WAIT_MS);
    });
  }

  async offer(sdp) {
    if (this.final) return;
    const session = sdpSession(sdp);
    const ufrag = /a=ice-ufrag:(\S+)/.exec(sdp)?.[1] ?? "";
    const restart = Boolean(this.pc && this.remoteUfrag && ufrag !== this.remoteUfrag);
    const stale = !this.pc || this.pc.signalingState === "closed" || restart;
    if (stale && Number(this.ice?.ttl)) await this.ensureFreshIce(restart);
    this.remoteUfrag = ufrag;
    let pc = this.pc;
    // A caller that reloaded (or started over) makes a new peer connection, with a new SDP
    // session; an ICE restart or renegotiation keeps it, and keeps ours.
    const fresh =
      !pc || pc.signalingState === "closed" || (this.remoteSession !== null && session !== this.remoteSession);
    if (fresh) pc = this.newPeerConnection();
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
    } catch (error) {
      if (fresh) throw error;
      pc = this.newPeerConnection();
      await pc.setRemoteDescription({ type: "offer", sdp });
    }
    if (pc !== this.pc) return;
    this.remoteSession = session;
    await this.flushCandidates(pc);
    const answer = await pc.createAnswer();
    if (pc !== this.pc) return;
    await pc.setLocalDescription(answer);
    if (pc !== this.pc) return;
    this.send({ type: "answer", sdp: pc.localDescription.sdp });
    this.render();
  }

  newPeerConnection() {
    this.closePeerConnection();
    const pc = new RTCPeerConnection(rtcConfiguration(this.ice));
    this.pc = pc;
    this.remoteSession = null;
    this.decodedPc = null;
    this.lastStats = null;
    this.disconnectedSince = 0;
    pc.addEventListener("track", (event) => {
      if (pc !== this.pc) return;
      const stream = event.streams[0] ?? new MediaStream([event.track]);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.video.play().catch(() => {});
    });
    pc.addEventListener("icecandidate", (event) => {
      if (pc !== this.pc) return;
      this.send({ type: "candidate", candidate: event.candidate ? event.candidate.toJSON() : null });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) this.connectionChanged();
    });
    this.startStats();
    this.render();
    return pc;
  }

  closePeerConnection() {
    const pc = this.pc;
    this.pc = null;
    this.remoteSession = null;
    this.recovering = false;
    clearTimeout(this.iceTimer);
    clearTimeout(this.restartTimer);
    this.restartDelay = RESTART_MIN_MS;
    if (pc) {
      try {
        pc.close();
      } catch {
        // Already closed.
      }
    }
    this.stopStats();
    this.video.srcObject = null;
    this.setFlowing(false);
    this.lastStats = null;
    this.render();
  }

  async candidate(candidate) {
    const pc = this.pc;
    if (!pc || !pc.remoteDescription) {
      this.candidates.push(candidate);
      if (this.candidates.length > 200) this.candidates.shift();
      return;
    }
    await addCandidate(pc, candidate);
  }

  async flushCandidates(pc) {
    const queued = this.candidates;
    this.candidates = [];
    for (const candidate of queued) await addCandidate(pc, candidate);
  }

  connectionChanged() {
    const state = this.pc?.connectionState ?? "new";
    if (state === "connected") {
      this.recovering = false;
      this.restartDelay = RESTART_MIN_MS;
      clearTimeout(this.restartTimer);
      clearTimeout(this.iceTimer);
      this.disconnectedSince = 0;
      if (this.callerPresent) this.setMessage("");
    } else if (state === "failed") {
      this.recover();
    } else if (state === "disconnected") {
      this.disconnectedSince ||= Date.now();
    }
    this.render();
  }

  // The connection failed: fresh TURN credentials first (coturn checks them only when it
  // allocates), then ask the caller for an ICE-restart offer. Repeats with backoff.
  recover() {
    if (this.recovering || this.final) return;
    this.recovering = true;
    clearTimeout(this.restartTimer);
    if (this.callerPresent) this.setMessage("The video connection failed — reconnecting…");
    if (!this.send({ type: "ice-request" })) {
      this.requestRestart();
      return;
    }
    clearTimeout(this.iceTimer);
    this.iceTimer = setTimeout(() => this.requestRestart(), ICE_WAIT_MS);
  }

  freshIce(ice, restart = true) {
    if (!ice || typeof ice !== "object") return;
    this.ice = ice;
    this.iceAt = Date.now();
    if (this.pc && this.pc.signalingState !== "closed") {
      try {
        this.pc.setConfiguration(rtcConfiguration(ice));
      } catch (error) {
        console.warn("Live video: the fresh ICE servers were not applied:", error?.message ?? error);
      }
    }
    if (restart && this.recovering) this.requestRestart();
  }

  requestRestart() {
    clearTimeout(this.iceTimer);
    if (!this.recovering) return;
    this.recovering = false;
    this.control("restart");
    const delay = this.restartDelay;
    this.restartDelay = Math.min(this.restartDelay * 2, RESTART_MAX_MS);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      const state = this.pc?.connectionState;
      if (state === "failed" || state === "disconnected") this.recover();
    }, delay);
  }

  control(action) {
    this.send({ type: "control", action });
  }

  // ---- quality and the first frame ---------------------------------------------------------

  startStats() {
    if (this.statsTimer) return;
    this.statsTimer = setInterval(() => this.poll(), STATS_MS);
  }

  stopStats() {
    clearInterval(this.statsTimer);
    this.statsTimer = 0;
  }

  async poll() {
    const pc = this.pc;
    if (!pc || this.polling) return;
    this.polling = true;
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return;
    } finally {
      this.polling = false;
    }
    if (pc !== this.pc) return;
    const stats = readStats(report);
    const last = this.lastStats;
    this.lastStats = stats;

    const frames = stats.framesDecoded;
    const moving = frames > 0 && (!last || frames > last.framesDecoded);
    const flowing = frames > 0 && this.video.videoWidth > 0 && pc.connectionState !== "failed";
    if (flowing && moving) this.decoded(pc);
    // Three seconds without a new frame: the picture is frozen, say so.
    this.stalls = moving ? 0 : this.stalls + 1;
    this.setFlowing(flowing && (moving || (this.flowing && this.stalls < 3)));

    // A "disconnected" that lasts is treated as failed: Chromium can take half a minute.
    if (this.disconnectedSince && pc.connectionState === "disconnected" && Date.now() - this.disconnectedSince > 10_000) {
      this.recover();
    }

    const quality = { ...stats };
    if (last && stats.timestamp > last.timestamp) {
      const seconds = (stats.timestamp - last.timestamp) / 1000;
      if (stats.bytesReceived >= last.bytesReceived) {
        quality.bitrate = ((stats.bytesReceived - last.bytesReceived) * 8) / seconds;
      }
      if (!Number.isFinite(quality.fps) && frames >= last.framesDecoded) {
        quality.fps = (frames - last.framesDecoded) / seconds;
      }
    }
    this.showQuality(quality);
  }

  // The caller leaves stills when it hears "decoded": say it for each new connection's first
  // frame, and again while the caller still reports stills or connecting.
  decoded(pc) {
    const rung = this.status?.rung;
    const again = (rung === "stills" || rung === "connecting") && Date.now() - this.decodedAt > DECODED_AGAIN_MS;
    if (this.decodedPc !== pc || again) {
      if (this.send({ type: "decoded" })) {
        this.decodedPc = pc;
        this.decodedAt = Date.now();
      }
    }
    if (!this.firstFrameReported && this.send({ type: "report", event: "first-frame" })) {
      this.firstFrameReported = true;
    }
  }

  setFlowing(flowing) {
    if (this.flowing === flowing) return;
    this.flowing = flowing;
    this.root.dataset.decoded = flowing ? "true" : "false";
    if (flowing) {
      if (this.callerPresent && this.welcomed) this.setMessage("");
      if (!this.final) this.setState("live");
    } else if (this.state === "live") {
      this.setState("waiting");
    }
    this.render();
  }

  showQuality(quality) {
    const el = this.el.quality;
    const parts = [];
    const data = {};
    if (quality.frameWidth > 0 && quality.frameHeight > 0) {
      parts.push(`${quality.frameWidth}×${quality.frameHeight}`);
      data.width = String(quality.frameWidth);
      data.height = String(quality.frameHeight);
    }
    if (Number.isFinite(quality.fps)) {
      parts.push(`${Math.round(quality.fps)} fps`);
      data.fps = String(Math.round(quality.fps));
    }
    if (Number.isFinite(quality.bitrate)) {
      parts.push(megabits(quality.bitrate));
      data.bitrate = String(Math.round(quality.bitrate));
    }
    if (quality.route) {
      parts.push(quality.route);
      data.route = quality.route;
    }
    setText(el, parts.join(" · "));
    for (const key of ["width", "height", "fps", "bitrate", "route"]) {
      if (data[key] === undefined) delete el.dataset[key];
      else if (el.dataset[key] !== data[key]) el.dataset[key] = data[key];
    }
  }

  // ---- the dispatcher's controls -----------------------------------------------------------

  requestSnapshot() {
    if (!this.send({ type: "control", action: "snapshot" })) return;
    clearTimeout(this.snapshotTimer);
    this.el.openSnapshot.hidden = true;
    setText(this.el.snapshotState, "Snapshot requested…");
    this.root.dataset.snapshot = "requested";
    this.snapshotTimer = setTimeout(() => {
      if (this.root.dataset.snapshot !== "requested") return;
      this.root.dataset.snapshot = "late";
      setText(this.el.snapshotState, "No snapshot has arrived yet: the phone may be busy. Try again.");
    }, SNAPSHOT_WAIT_MS);
  }

  media(item) {
    if (item.kind === "snapshot") {
      clearTimeout(this.snapshotTimer);
      this.lastSnapshot = item;
      this.root.dataset.snapshot = "received";
      setText(this.el.snapshotState, `Snapshot received at ${clock(item.created_at)}: it is on the wall.`);
      this.el.openSnapshot.hidden = false;
    } else if (item.kind === "still") {
      this.latestStill = item;
      this.render();
    }
  }

  toggleHidden() {
    this.setHidden(!this.root.classList.contains("picture-hidden"));
  }

  setHidden(hidden) {
    if (hidden) this.owner.hidden.add(this.inviteId);
    else this.owner.hidden.delete(this.inviteId);
    this.root.classList.toggle("picture-hidden", hidden);
    this.el.hide.setAttribute("aria-pressed", hidden ? "true" : "false");
    setText(this.el.hide, hidden ? "Show picture" : "Hide picture");
  }

  // Another phone opened this link (the server names it by a fingerprint, never its id). Until
  // "Allow" it cannot send pictures or video; "Ignore" keeps it so.
  deviceRequest(device) {
    if (typeof device !== "string" || !device) return;
    this.deviceRequested = device;
    this.el.device.hidden = false;
    this.owner.onAnnounce?.("Another phone wants to join a live session.");
  }

  answerDevice(allow) {
    this.el.device.hidden = true;
    if (allow && this.send({ type: "allow-device", device: this.deviceRequested })) {
      this.setMessage("The other phone is allowed: it replaces the first one within a few seconds.");
    } else if (!allow) {
      this.setMessage("Ignored: that phone cannot send pictures or video to this session.");
    }
    this.deviceRequested = null;
  }

  // ---- endings -----------------------------------------------------------------------------

  takenOver() {
    if (this.final === "taken-over") return;
    this.stop("taken-over", "Another console took over this stream");
    this.el.again.hidden = false;
  }

  ended() {
    if (this.final === "ended") return;
    this.stop("ended", "Session ended");
  }

  stop(reason, text) {
    this.final = reason;
    this.torchOn = false;
    this.closePeerConnection();
    this.closeSocket();
    this.candidates = [];
    this.el.device.hidden = true;
    this.setMessage(text);
    this.setState(reason);
    this.render();
  }

  // "Watch here again": a new hello takes the stream back from the other console.
  again() {
    if (this.final === "ended") return;
    this.final = null;
    this.el.again.hidden = true;
    this.callerPresent = false;
    this.backoff = BACKOFF_MIN_MS;
    this.setMessage("");
    this.connect();
  }

  teardown() {
    this.final = "closed";
    clearTimeout(this.snapshotTimer);
    this.closePeerConnection();
    this.closeSocket();
    this.state = "closed";
  }

  // ---- rendering ---------------------------------------------------------------------------

  setState(state) {
    this.state = state;
    if (this.root.dataset.state !== state) this.root.dataset.state = state;
  }

  setMessage(text) {
    setText(this.el.message, text);
  }

  render() {
    const invite = this.owner.inviteOf(this.inviteId);
    const phone = invite?.phone ?? "the caller";
    setText(this.el.title, invite ? [invite.phone, invite.incident_id].filter(Boolean).join(" · ") : "Live video");
    this.root.setAttribute("aria-label", `Live video from ${phone}`);
    this.el.close.setAttribute("aria-label", `Close tile for ${phone}`);

    const connection = this.pc ? this.pc.connectionState : this.final ? "closed" : "new";
    setText(this.el.connection, connection);
    if (this.el.connection.dataset.state !== connection) this.el.connection.dataset.state = connection;

    const rung = this.status?.rung ?? "waiting";
    const rungText = this.final ? (FINAL_RUNG[this.final] ?? "Not connected") : (RUNGS[rung] ?? rung);
    setText(this.el.rung, rungText);
    if (this.el.rung.dataset.rung !== rung) this.el.rung.dataset.rung = rung;

    // On stills the newest still stands in for the video (the video takes over once it plays).
    const onStills = rung === "stills" && !this.flowing && !this.final;
    const stills = onStills && this.latestStill !== null;
    this.root.classList.toggle("on-stills", onStills);
    this.el.stillLabel.hidden = !onStills;
    this.el.stillOpen.hidden = !stills;
    if (stills) {
      const url = this.latestStill.thumbnail_url ?? this.latestStill.url;
      if (this.el.still.getAttribute("src") !== url) this.el.still.setAttribute("src", url);
      this.el.still.setAttribute("alt", `Latest still from ${phone} at ${clock(this.latestStill.created_at)}`);
    }

    const open = this.welcomed && !this.final;
    const cameraOk = this.flowing || !this.status?.camera || this.status.camera === "granted";
    const canControl = open && this.callerPresent && cameraOk;
    this.el.snapshot.disabled = !canControl;
    this.el.switchCamera.disabled = !canControl;
    this.el.torch.disabled = !(canControl && this.status?.torch === true);
    this.el.torch.setAttribute("aria-pressed", this.torchOn ? "true" : "false");
    const live = invite ? LIVE.has(currentStatus(invite)) : true;
    this.el.end.disabled = this.final === "ended" || !live;
    if (!this.pc) this.showQuality({});
  }
}

// ---- helpers -----------------------------------------------------------------------------------

function rtcConfiguration(ice) {
  const config = { iceServers: Array.isArray(ice?.iceServers) ? ice.iceServers : [] };
  if (ice?.iceTransportPolicy === "relay" || ice?.iceTransportPolicy === "all") {
    config.iceTransportPolicy = ice.iceTransportPolicy;
  }
  return config;
}

async function addCandidate(pc, candidate) {
  try {
    // null is the end of the caller's candidates.
    await pc.addIceCandidate(candidate ?? undefined);
  } catch {
    // A candidate of an earlier ICE generation, or of a connection replaced since: not needed.
  }
}

// What identifies the caller's peer connection: its SDP session id and its DTLS fingerprint.
function sdpSession(sdp) {
  const origin = /^o=\S+ (\S+)/m.exec(sdp)?.[1] ?? "";
  const fingerprint = /^a=fingerprint:(.+)$/m.exec(sdp)?.[1]?.trim() ?? "";
  return `${origin}|${fingerprint}`;
}

function readStats(report) {
  const byId = new Map();
  report.forEach((stat) => byId.set(stat.id, stat));
  let inbound = null;
  let pair = null;
  for (const stat of byId.values()) {
    if (stat.type === "inbound-rtp" && (stat.kind ?? stat.mediaType) === "video") {
      if (!inbound || (stat.bytesReceived ?? 0) > (inbound.bytesReceived ?? 0)) inbound = stat;
    }
    if (stat.type === "transport" && stat.selectedCandidatePairId) {
      pair = byId.get(stat.selectedCandidatePairId) ?? pair;
    }
  }
  if (!pair) {
    for (const stat of byId.values()) {
      if (stat.type === "candidate-pair" && stat.state === "succeeded" && (stat.nominated || stat.selected)) {
        pair = stat;
        break;
      }
    }
  }
  let route = "";
  if (pair) {
    const local = byId.get(pair.localCandidateId);
    const remote = byId.get(pair.remoteCandidateId);
    if (local || remote) {
      route = local?.candidateType === "relay" || remote?.candidateType === "relay" ? "relay" : "direct";
    }
  }
  return {
    timestamp: inbound?.timestamp ?? 0,
    framesDecoded: inbound?.framesDecoded ?? 0,
    frameWidth: inbound?.frameWidth ?? 0,
    frameHeight: inbound?.frameHeight ?? 0,
    fps: inbound?.framesPerSecond,
    bytesReceived: inbound?.bytesReceived ?? 0,
    route,
  };
}

function megabits(bitsPerSecond) {
  const mbit = bitsPerSecond / 1_000_000;
  const digits = mbit >= 10 ? 0 : mbit >= 1 ? 1 : 2;
  return `${mbit.toFixed(digits)} Mbit/s`;
}

function clock(iso) {
  const date = new Date(iso ?? "");
  if (Number.isNaN(date.getTime())) return "an unknown time";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}
