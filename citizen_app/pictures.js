// Pictures from the caller's phone (docs/media.md, "The caller page"): read the original's EXIF,
// downscale in the browser, upload with a progress bar, and retry with one tap. A retry sends the
// same bytes with the same Idempotency-Key, so a picture that did arrive is not stored twice.

import { deviceId, endWith, linkToken, opened, t } from "./caller.js";

const LONG_SIDE = 2048;
const QUALITY = 0.85;
const EXIF_BYTES = 256 * 1024;
const STALL_MS = 60_000; // no byte moved for this long: give up and offer a retry
const FIELDS = ["lat", "lon", "accuracy_m", "captured_at"];
const TRANSLATED = ["picture_too_large", "picture_format_not_allowed", "picture_too_many_pixels",
  "picture_unreadable", "another_device"];
const BY_STATUS = { 413: "picture_too_large", 415: "picture_format_not_allowed" };
const LINK_GONE = { link_ended: "ended", link_expired: "expired", invalid_link: "invalid" };

const $ = (id) => document.getElementById(id);
let queue = Promise.resolve(); // one picture at a time: on a weak network the first arrives sooner
let made = 0;
let maxBytes = 0; // the server's upload limit, once the link is open
let exif = null; // the EXIF reader: fetched once the link is open, not in the first load

// A JPEG Blob of at most LONG_SIDE px on the long side (quality 0.85, upright, white under any
// transparency), or null when this browser cannot decode the file (HEIC outside Safari, say).
export async function downscale(file) {
  let source = null;
  let url = "";
  try {
    source = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    try {
      url = URL.createObjectURL(file);
      source = new Image();
      source.src = url;
      await source.decode();
    } catch {
      source = null;
    }
  }
  const canvas = document.createElement("canvas");
  try {
    const width = source?.naturalWidth || source?.width;
    const height = source?.naturalHeight || source?.height;
    if (!width || !height) return null;
    const scale = Math.min(1, LONG_SIDE / Math.max(width, height));
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    const context = canvas.getContext("2d");
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.imageSmoothingQuality = "high";
    context.drawImage(source, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
    return blob?.type === "image/jpeg" ? blob : null;
  } catch {
    return null;
  } finally {
    source?.close?.();
    if (url) URL.revokeObjectURL(url);
    canvas.width = canvas.height = 0; // phones keep little memory for canvases
  }
}

// 16 random bytes, base64url: within the header's allowed characters, and made once per picture.
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function announce(id, message) {
  const region = $(id);
  region.textContent = "";
  setTimeout(() => { region.textContent = message; }, 50); // the same words twice are read twice
}

function addItem() {
  made += 1;
  const li = $("shot-template").content.firstElementChild.cloneNode(true);
  const item = { li, key: newKey(), fields: {}, blob: null, name: "", kind: "picture" };
  item.text = li.querySelector(".shot-text");
  item.bar = li.querySelector("progress");
  item.retry = li.querySelector("button");
  item.text.id = `shot-${made}`;
  item.bar.setAttribute("aria-labelledby", item.text.id);
  item.retry.setAttribute("aria-describedby", item.text.id);
  item.retry.textContent = t("retry_upload");
  item.retry.addEventListener("click", () => {
    sending(item);
    later(item, () => upload(item));
  });
  sending(item);
  $("sent-title").hidden = false;
  $("sent-pictures").prepend(li);
  return item;
}

function sending(item) {
  item.li.dataset.state = "uploading";
  item.text.textContent = t("uploading");
  item.bar.removeAttribute("value"); // moving, without a number, until bytes leave
  item.bar.hidden = false;
  item.retry.hidden = true;
  announce("pictures-status", t("uploading"));
}

function sent(item, media) {
  item.blob = null; // it arrived: do not hold a possibly large original any longer
  item.li.dataset.state = "sent";
  if (media?.id) item.li.dataset.mediaId = media.id;
  item.text.textContent = t("sent");
  item.bar.hidden = true;
  announce("pictures-status", t("sent"));
}

function failed(item, message, retry) {
  item.li.dataset.state = "failed";
  item.text.textContent = message;
  item.bar.hidden = true;
  item.retry.hidden = !retry;
  announce("pictures-alert", message);
  if (retry) item.retry.focus();
}

// A phone's WebP or HEIC/HEIF (by its first bytes): the formats whose location this page cannot
// read itself but the server can.
const ORIGINAL = /^RIFF[^]{4}WEBP|^[^]{4}ftyp(heic|heix|heim|heis|hevc|hevx|mif1|msf1)/;

async function prepare(item, file) {
  let keep = false;
  try {
    const head = await file.slice(0, EXIF_BYTES).arrayBuffer();
    const start = String.fromCharCode(...new Uint8Array(head.slice(0, 12)));
    if (start.startsWith("\xff\xd8\xff")) {
      item.fields = (await (exif ??= import("./exif.js"))).readExif(head);
    }
    keep = ORIGINAL.test(start) && file.size <= maxBytes;
  } catch {
    // Old browsers lack Blob.arrayBuffer: the picture still goes, without the fields.
  }
  const small = await downscale(file);
  // This page reads a location from a JPEG only: a WebP or HEIC original goes as it is when it
  // fits, so that the server reads its location; anything else goes as the smaller JPEG.
  item.blob = small && !keep ? small : file;
  item.name = item.blob === small ? "picture.jpg" : file.name || "picture";
  if (small) thumbnail(item, small);
}

function thumbnail(item, blob) {
  const thumb = item.li.querySelector("img");
  const url = URL.createObjectURL(blob);
  thumb.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  thumb.addEventListener("error", () => URL.revokeObjectURL(url), { once: true });
  thumb.src = url;
  thumb.hidden = false;
}

// A frame of the live camera (live.js): listed, sent and retried like any picture, as it is.
export function sendFrame(blob, kind = "picture") {
  const item = addItem();
  Object.assign(item, { blob, kind, name: "picture.jpg" });
  thumbnail(item, blob);
  later(item, () => upload(item));
}

// Sends one Blob through the picture path (kind "picture", "still" or "snapshot"), with optional
// EXIF fields and an Idempotency-Key (a retry must reuse it). Resolves with {status, body}, status
// 0 when no answer came (network lost, or no byte moved for STALL_MS); never rejects.
export function uploadBlob(blob, { kind = "picture", fields = {}, key = newKey(), name = "picture.jpg",
  progress } = {}) {
  return new Promise((done) => {
    const xhr = new XMLHttpRequest();
    let timer = 0;
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => xhr.abort(), STALL_MS);
    };
    const end = (status, body) => {
      clearTimeout(timer);
      done({ status, body });
    };
    xhr.open("POST", "/api/v1/caller/media");
    xhr.withCredentials = false;
    xhr.responseType = "json";
    xhr.setRequestHeader("X-ShowMe-Link", linkToken());
    xhr.setRequestHeader("X-ShowMe-Device", deviceId());
    xhr.setRequestHeader("Idempotency-Key", key);
    xhr.upload.onprogress = (event) => {
      alive();
      if (progress && event.lengthComputable && event.total) progress(event.loaded / event.total);
    };
    xhr.onprogress = alive;
    xhr.onerror = xhr.onabort = xhr.ontimeout = () => end(0, null);
    xhr.onload = () => end(xhr.status, xhr.response);
    const form = new FormData();
    form.append("picture", blob, name);
    if (kind !== "picture") form.append("kind", kind);
    for (const field of FIELDS) {
      if (fields[field] != null) form.append(field, String(fields[field]));
    }
    alive();
    xhr.send(form);
  });
}

// Resolves once the server answered or the upload failed; never rejects.
async function upload(item) {
  const { status, body } = await uploadBlob(item.blob, {
    kind: item.kind, fields: item.fields, key: item.key, name: item.name,
    progress: (share) => { item.bar.value = Math.round(100 * share); },
  });
  answered(item, status, body);
}

// "ended", "expired" or "invalid" when an answer says the link is dead, else "".
export function linkGone(status, body) {
  const code = body?.error?.code ?? "";
  return LINK_GONE[code] ?? (status === 410 ? "ended" : status === 401 ? "invalid" : "");
}

function answered(item, status, body) {
  if (status >= 200 && status < 300) return sent(item, body?.media);
  const code = body?.error?.code ?? "";
  if (status >= 500 || status === 408 || status === 429 || status === 0) {
    return failed(item, t("err_network"), true);
  }
  const gone = linkGone(status, body);
  if (gone) {
    failed(item, t(`${gone}_title`), false);
    return endWith(gone);
  }
  const known = TRANSLATED.includes(code) ? code : !code && BY_STATUS[status];
  const message = (known && t(`err_${known}`)) || body?.error?.message || t("err_upload");
  // Another phone holds the link: once the dispatcher allows this one, a retry goes through.
  return failed(item, message, code === "another_device");
}

// Queues a step; whatever goes wrong in it, the item says so and the next picture still goes.
function later(item, step) {
  queue = queue.then(step).catch(() => failed(item, t("err_network"), Boolean(item.blob)));
}

function picked(event) {
  const files = [...event.target.files];
  event.target.value = ""; // the same picture can be chosen again
  for (const file of files) {
    const item = addItem();
    later(item, async () => {
      await prepare(item, file);
      await upload(item);
    });
  }
}

opened.then((answer) => {
  maxBytes = answer?.limits?.max_upload_bytes ?? 0;
  exif ??= import("./exif.js").catch(() => (exif = null)); // ready before the first picture
  $("take-picture").addEventListener("change", picked);
  $("choose-picture").addEventListener("change", picked);
});
