// Live video from the caller's camera to the dispatcher's console (docs/live.md). Signaling over
// /ws/signal; the caller makes every offer; when the video does not get through, a ladder sends a
// frame every 2 s through the picture path while the stream keeps retrying.

import { deviceId, endWith, linkToken, opened, t } from "./caller.js";
import { linkGone, sendFrame, uploadBlob } from "./pictures.js";

const $ = (id) => document.getElementById(id);
const quiet = () => {};
const later = (ms, value) => new Promise((resolve) => setTimeout(resolve, ms, value));
const stopAll = (media) => media?.getTracks().forEach((each) => each.stop());
const LIVE_KEY = "showme.live"; // a reload while live asks for the camera again by itself

let socket = null;
let welcomed = false;
let dead = false;
let backoff = 500;
let refusal = "";
let ice = {};
let policy = {};
let peer = false;
let outbox = []; // reports made while the socket was away
let lastStatus = "";
let askIce = quiet;
let iceAt = 0;
let generation = 0;
// Another phone holds this link: no camera, no stills until the dispatcher allows this one.
let waiting = false;
let wanted = false; // "Show live video" was asked for meanwhile

let live = false;
let starting = false;
let stopped = false;
let camera = navigator.mediaDevices?.getUserMedia ? "off" : "unavailable";
let facing = "environment";
let stream = null;
let track = null;
let paused = false; // the camera input is open: the stream sends nothing meanwhile
let throughInput = false;
let recovering = 0;
let switching = false;
let lock = null;
let problemKey = "";

let pc = null;
let sender = null;
let pending = []; // the console's candidates that came before its answer
let pcDecoded = false;
let decoded = false;
let ladder = 0;
let stills = 0;
let stillBusy = false;
let attempts = 0;
let retry = 0;
let trouble = 0;
let troubled = false;
let restartedAt = 0;

function remember(on) {
  try {
    if (on) sessionStorage.setItem(LIVE_KEY, "1");
    else sessionStorage.removeItem(LIVE_KEY);
  } catch {
    // Only a nicety.
  }
}

function problem(key) {
  problemKey = key;
  $("live-problem").textContent = key ? t(key) : "";
  $("live-problem").hidden = !key;
}

// The signaling socket: reopened with backoff, except when the link is dead.

function connect() {
  if (dead) return;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/signal`);
  socket = ws;
  welcomed = false;
  refusal = "";
  ws.onopen = () => ws.send(JSON.stringify({
    type: "hello", role: "caller", token: linkToken(), device: deviceId(),
  }));
  ws.onmessage = (event) => {
    let message = null;
    try {
      message = JSON.parse(event.data);
    } catch {
      // The server sends JSON.
    }
    if (socket === ws && message) receive(message);
  };
  ws.onclose = ({ code, reason }) => {
    if (socket === ws) closed(code, reason);
  };
}

function closed(code, reason) {
  socket = null;
  welcomed = false;
  indicate();
  if (code === 4410) return die(/expired/.test(refusal + reason) ? "expired" : "ended");
  if (code === 4401 || code === 4404) return die("invalid");
  if (code === 4001) { // opened again, on an allowed phone or in another tab: that one goes on
    dead = true;
    halt();
    showLive(false);
    return problem("live_replaced");
  }
  let wait = backoff;
  backoff = Math.min(10_000, backoff * 2);
  if (code === 4409) wait = standBy(); // the dispatcher may allow this phone: keep knocking
  return setTimeout(connect, wait);
}

// Refused as another phone: never "You are live" here, and the camera waits for the seat.
function standBy() {
  waiting = true;
  if (live) {
    wanted = true;
    stop();
  }
  problem("live_other_device");
  return 5000;
}

// "You are live" only while this phone has its seat in the session.
function indicate() {
  const was = $("live-indicator").hidden;
  $("live-indicator").hidden = !welcomed;
  if (was && welcomed) $("live-on-text").textContent = t("live_on"); // a new text node: announced
}

function send(message) {
  if (!welcomed || socket?.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

function report(fields) {
  const message = { type: "report", ...fields };
  if (!send(message)) outbox = [...outbox.slice(-19), message];
}

function receive(message) {
  const type = message.type;
  if (type === "welcome") {
    welcomed = true;
    backoff = 500;
    ice = message.ice ?? ice;
    iceAt = Date.now();
    policy = message.video ?? policy;
    waiting = false;
    indicate();
    if (problemKey === "live_other_device") problem("");
    for (const queued of outbox.splice(0)) send(queued);
    peer = false; // a new socket: for the console, a new session
    presence(Boolean(message.peer));
    if (wanted) start();
  } else if (type === "peer") presence(Boolean(message.present));
  else if (type === "answer") answer(message.sdp);
  else if (type === "candidate") candidate(message.candidate);
  else if (type === "control") control(message.action);
  else if (type === "decoded") gotDecoded();
  else if (type === "ice") {
    ice = message.ice ?? ice;
    iceAt = Date.now();
    askIce(ice);
  }
  else if (type === "refused" || type === "ended") refusal = `${message.code} ${message.message}`;
}

function presence(present) {
  const came = present && !peer;
  peer = present;
  if (came) {
    lastStatus = "";
    fresh();
  } else if (!present) {
    closePc();
    lost();
  }
  status();
}

function rung() {
  if (!live) return stopped ? "stopped" : "waiting";
  if (decoded) return "video";
  if (stills) return "stills";
  return peer ? "connecting" : "waiting";
}

const torch = () => Boolean(track?.getCapabilities?.().torch);

function status() {
  const now = { type: "status", rung: rung(), camera, facing, torch: torch() };
  const state = $("live-state");
  if (state.dataset.rung !== now.rung || !state.textContent) {
    state.dataset.rung = now.rung;
    state.textContent = t(`live_${now.rung}`);
  }
  const said = JSON.stringify(now);
  if (said !== lastStatus && send(now)) lastStatus = said;
}

// The camera.

function getCamera(want, audio = false) {
  return navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: want }, width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: Boolean(audio),
  });
}

async function start() {
  if (waiting) {
    wanted = true;
    return problem("live_other_device");
  }
  wanted = false;
  if (live || starting || dead) return;
  if (camera === "unavailable" && !navigator.mediaDevices?.getUserMedia) {
    problem("live_no_camera");
    return;
  }
  starting = true;
  $("live-start").setAttribute("aria-busy", "true");
  if (problemKey !== "live_other_device") problem("");
  const want = policy.facing === "user" ? "user" : "environment";
  try {
    stream = await getCamera(want, policy.audio);
  } catch (error) {
    camera = ["NotAllowedError", "SecurityError"].includes(error?.name) ? "refused" : "unavailable";
    report({ event: "camera", result: camera });
    problem(camera === "refused" ? "live_refused" : "live_unavailable");
    remember(false);
  }
  starting = false;
  $("live-start").removeAttribute("aria-busy");
  if (dead || waiting) {
    stopAll(stream); // refused meanwhile: the camera waits for the seat too
    wanted = waiting;
  }
  if (stream && !dead && !waiting) {
    camera = "granted";
    live = true;
    stopped = false;
    report({ event: "camera", result: "granted" });
    useTrack(stream.getVideoTracks()[0], want);
    showLive(true);
    remember(true);
    wake();
    fresh(); // and the ladder: stills in 5 s unless the console decodes the video first
  }
  status();
}

function showLive(on) {
  $("live-start").hidden = on;
  $("live-on").hidden = !on;
  if (on) {
    $("live-indicator").hidden = true;
    indicate();
    $("live-stop").focus();
  }
}

// Takes a new camera track in, without a new negotiation.
function useTrack(next, want) {
  const old = track;
  track = next;
  next.addEventListener("ended", () => {
    if (track === next) recover();
  });
  const preview = $("live-preview");
  preview.srcObject = new MediaStream([next]);
  preview.play().catch(quiet); // autoplay does it too; a new source aborts a pending play
  if (!paused) sender?.replaceTrack(next).catch(quiet);
  if (old !== next) old?.stop();
  const said = next.getSettings?.().facingMode;
  facing = said === "user" || said === "environment" ? said : want;
  preview.dataset.facing = facing;
  status();
}

// A phone call or another app took the camera: take it back once the page is in front.
async function recover() {
  if (!live || recovering || document.hidden) return;
  recovering = -1;
  const got = await getCamera(facing).catch(quiet);
  recovering = 0;
  if (!live) return stopAll(got);
  if (!got) {
    problem("live_camera_lost");
    recovering = setTimeout(() => {
      recovering = 0;
      recover();
    }, 3000);
    return undefined;
  }
  useTrack(got.getVideoTracks()[0], facing);
  if (problemKey === "live_camera_lost") problem("");
  return undefined;
}

async function switchCamera() {
  if (!live || switching) return;
  switching = true;
  const want = facing === "user" ? "environment" : "user";
  let got = await getCamera(want).catch(quiet);
  if (!got) {
    track?.stop(); // some phones open one camera at a time
    got = await getCamera(want).catch(quiet);
  }
  switching = false;
  if (got && live) useTrack(got.getVideoTracks()[0], want);
  else stopAll(got);
  if (track?.readyState === "ended") recover();
}

async function wake() {
  if (!live || document.hidden || (lock && !lock.released) || !navigator.wakeLock) return;
  try {
    const got = await navigator.wakeLock.request("screen");
    if (live) lock = got;
    else got.release().catch(quiet);
  } catch {
    // Not allowed here (battery saver, an old browser): the phone may dim, nothing breaks.
  }
}

// Frames: stills, snapshots, pictures.

// ImageCapture's grabFrame or takePhoto; undefined where it fails or takes longer than `ms`.
function capture(method, ms) {
  try {
    return Promise.race([new ImageCapture(track)[method](), later(ms)]).catch(quiet);
  } catch {
    return Promise.resolve(); // no ImageCapture (Safari, Firefox)
  }
}

// A JPEG of the camera's current frame, at most `side` px on the long side; null if none.
async function frame(side, quality) {
  let source = $("live-preview");
  let { videoWidth: width, videoHeight: height } = source;
  // Straight from the track where possible: a preview scrolled out of sight may be paused.
  const grabbed = await capture("grabFrame", 3000);
  if (grabbed) ({ width, height } = source = grabbed);
  if (!width || !height) return null;
  const scale = Math.min(1, side / Math.max(width, height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  try {
    canvas.getContext("2d").drawImage(source, 0, 0, canvas.width, canvas.height);
    return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
  } catch {
    return null;
  } finally {
    source.close?.();
    canvas.width = canvas.height = 0;
  }
}

// The camera's full resolution: a photo where the browser takes one, else the track's frame.
async function snap(kind) {
  if (!live || track?.readyState !== "live") return false;
  let blob = await capture("takePhoto", 8000);
  if (!blob?.size) blob = await frame(Infinity, 0.92);
  if (blob) sendFrame(blob, kind);
  return Boolean(blob);
}

function armLadder() {
  if (!live || decoded || stills || ladder) return;
  ladder = setTimeout(() => {
    ladder = 0;
    if (!live || decoded) return;
    stills = setInterval(still, 2000);
    report({ event: "stills" });
    still();
    status();
  }, 5000);
}

function stopStills() {
  clearTimeout(ladder);
  clearInterval(stills);
  ladder = stills = 0;
}

async function still() {
  if (waiting || stillBusy || paused || document.hidden || track?.readyState !== "live") return;
  stillBusy = true; // one at a time: a slow upload skips ticks
  try {
    const blob = await frame(1280, 0.8);
    const sent = blob && stills ? await uploadBlob(blob, { kind: "still" }) : {};
    const gone = linkGone(sent.status, sent.body);
    if (gone) die(gone);
  } finally {
    stillBusy = false;
  }
}

function gotDecoded() {
  if (!live || !pc) return;
  pcDecoded = decoded = true;
  stopStills();
  status();
}

// The video stopped reaching the console: down the ladder until it comes back.
function lost() {
  decoded = false;
  armLadder();
}

// The peer connection.

const config = (from) => ({
  iceServers: Array.isArray(from?.iceServers) ? from.iceServers : [],
  iceTransportPolicy: from?.iceTransportPolicy === "relay" ? "relay" : "all",
});

function closePc() {
  clearTimeout(retry);
  clearTimeout(trouble);
  const old = pc;
  pc = sender = null;
  if (old) old.onicecandidate = old.onconnectionstatechange = null;
  old?.close();
}

// A new session with the console: a new connection (a new DTLS fingerprint) and an offer.
async function fresh() {
  closePc();
  pending = [];
  pcDecoded = false;
  lost();
  if (!live || !peer) return;
  // TURN credentials live `ttl` seconds and coturn checks them when it allocates: a connection
  // made long after the page opened needs fresh ones.
  const gen = ++generation;
  const ttl = Number(ice?.ttl) || 0;
  if (ttl && Date.now() - iceAt > (ttl * 1000) / 2) {
    await new Promise((resolve) => {
      askIce = resolve;
      if (!send({ type: "ice-request" })) resolve(ice);
      later(5000, ice).then(resolve);
    });
    askIce = quiet;
    if (gen !== generation || !live || !peer) return;
  }
  let made;
  try {
    made = new RTCPeerConnection(config(ice));
  } catch (error) {
    report({ event: "failed", reason: `webrtc: ${error?.name}` });
    return;
  }
  pc = made;
  const init = { direction: "sendonly", streams: [stream] };
  sender = made.addTransceiver(paused ? "video" : track, init).sender;
  for (const audio of stream.getAudioTracks()) made.addTransceiver(audio, init);
  made.onicecandidate = ({ candidate: found }) => {
    if (pc === made) send({ type: "candidate", candidate: found ? found.toJSON() : null });
  };
  made.onconnectionstatechange = () => {
    if (pc === made) changed(made);
  };
  offer(made, false);
  watchdog(made);
}

async function offer(current, iceRestart) {
  try {
    await current.setLocalDescription(await current.createOffer({ iceRestart }));
    if (pc === current) send({ type: "offer", sdp: current.localDescription.sdp });
  } catch (error) {
    if (pc === current) report({ event: "failed", reason: `offer: ${error?.name}` });
  }
}

async function answer(sdp) {
  const current = pc;
  if (current?.signalingState !== "have-local-offer" || typeof sdp !== "string") return;
  try {
    await current.setRemoteDescription({ type: "answer", sdp });
  } catch (error) {
    if (pc === current) report({ event: "failed", reason: `answer: ${error?.name}` });
    return;
  }
  for (const each of pending.splice(0)) current.addIceCandidate(each).catch(quiet);
}

function candidate(found) {
  if (!pc || !found?.candidate) return; // the end of the console's candidates needs nothing
  if (!pc.remoteDescription || pc.signalingState === "have-local-offer") pending.push(found);
  else pc.addIceCandidate(found).catch(quiet);
}

function changed(current) {
  const state = current.connectionState;
  clearTimeout(trouble);
  if (state === "connected") {
    clearTimeout(retry);
    attempts = 0;
    troubled = false;
    if (pcDecoded) gotDecoded(); // after an ICE restart the console's decoder carries on
    route(current).then((way) => {
      if (pc === current) report({ event: "connected", route: way });
    });
  } else if (state === "failed") {
    failing(current, "failed");
  } else if (state === "disconnected") {
    trouble = setTimeout(failing, 3000, current, "disconnected");
  }
  status();
}

function failing(current, why) {
  if (pc !== current || !live) return;
  if (!troubled) report({ event: "failed", reason: `ice ${why}` });
  troubled = true;
  lost();
  status();
  clearTimeout(retry);
  retry = setTimeout(restart, Math.min(10_000, 500 * 2 ** attempts));
}

// Not connected in time (no answer, or checks that never end): try again.
function watchdog(current, patience = 2) {
  clearTimeout(retry);
  retry = setTimeout(() => {
    const state = current.connectionState;
    if (pc !== current || !live || state === "connected") return;
    if (state === "connecting" && patience) watchdog(current, patience - 1);
    else restart();
  }, 10_000);
}

// An ICE restart with fresh credentials (coturn checks them only when it allocates a relay).
async function restart(asked = "") {
  if (!live || !peer) return;
  // The console asks too when it sees the failure: one restart at a time.
  if (asked === "console" && pc && (pc.signalingState !== "stable" || Date.now() - restartedAt < 4000)) return;
  clearTimeout(retry);
  restartedAt = Date.now();
  if (asked) attempts = 0;
  attempts += 1;
  if (!pc || attempts % 4 === 0) return fresh(); // the console may have lost its side: start over
  const current = pc;
  const fresher = await new Promise((resolve) => {
    askIce = resolve;
    if (!send({ type: "ice-request" })) resolve(ice);
    later(5000, ice).then(resolve);
  });
  askIce = quiet;
  if (pc !== current || !live) return undefined;
  try {
    current.setConfiguration(config(fresher));
  } catch {
    // Keep the servers it has.
  }
  await offer(current, true);
  return watchdog(current);
}

async function route(current) {
  const stats = await current.getStats().catch(quiet);
  let pair = null;
  stats?.forEach((each) => {
    if (each.type === "transport" && each.selectedCandidatePairId) {
      pair = stats.get(each.selectedCandidatePairId);
    } else if (each.type === "candidate-pair" && each.selected) pair ||= each; // Firefox
  });
  return stats?.get(pair?.localCandidateId)?.candidateType === "relay" ? "relay" : "direct";
}

// Controls, pictures while live, stop.

function control(action) {
  if (!live) return;
  if (action === "switch-camera") switchCamera();
  else if (action === "snapshot") snap("snapshot");
  else if (action === "restart") restart("console");
  else if (/^torch-o(n|ff)$/.test(action) && torch()) {
    track.applyConstraints({ advanced: [{ torch: action === "torch-on" }] }).catch(quiet);
  }
}

function pause() {
  paused = true;
  sender?.replaceTrack(null).catch(quiet);
}

function resume() {
  if (!paused) return;
  paused = false;
  if (track?.readyState === "live") sender?.replaceTrack(track).catch(quiet);
  else recover();
}

// "Take a picture" while live: a frame of the stream, not the camera input (which takes the
// camera from the stream on many phones). Where that is impossible, the input, stream paused.
function takePicture(event) {
  if (!live || throughInput) {
    throughInput = false;
    if (live) pause();
    return;
  }
  if (track?.readyState !== "live") {
    pause();
    return;
  }
  event.preventDefault();
  snap("picture").then((ok) => {
    throughInput = !ok;
    if (!ok) event.target.click(); // still within the tap's activation where one is needed
  });
}

function halt() {
  stopStills();
  closePc();
  clearTimeout(recovering);
  recovering = 0;
  stopAll(stream);
  track?.stop();
  stream = track = null;
  paused = false;
  $("live-preview").srcObject = null;
  lock?.release().catch(quiet);
  lock = null;
}

function stop() {
  if (!live) return;
  live = false;
  stopped = true;
  decoded = false;
  camera = "off";
  halt();
  report({ event: "stopped" });
  remember(false);
  showLive(false);
  $("live-start").focus();
  status();
}

function die(kind) {
  dead = true;
  live = false;
  halt();
  remember(false);
  socket?.close();
  socket = null;
  endWith(kind);
}

window.showmeLive = {
  pc: () => pc,
  restart: () => restart("test"),
  state: () => ({ rung: rung(), camera, connection: pc?.connectionState }),
};

opened.then((answer) => {
  $("live").hidden = false;
  if (answer?.device === "waiting") standBy();
  $("live-preview").setAttribute("aria-label", t("live_preview"));
  $("live-start").addEventListener("click", start);
  $("live-stop").addEventListener("click", stop);
  const input = $("take-picture");
  input.addEventListener("click", takePicture);
  input.addEventListener("change", resume);
  input.addEventListener("cancel", resume);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden || !live) return;
    wake();
    resume();
    if (track?.readyState !== "live") recover();
  });
  if (camera === "unavailable") {
    $("live-start").hidden = true;
    problem("live_no_camera");
    report({ event: "camera", result: "unavailable" });
  }
  status();
  connect();
  try {
    if (sessionStorage.getItem(LIVE_KEY)) start();
  } catch {
    // No storage: the caller taps again.
  }
});
