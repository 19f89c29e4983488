// The caller's page. It must work on any phone, on a poor connection, for someone under stress:
// few requests, no dependencies, plain words.
//
// Later features (pictures, video) import linkToken, deviceId, callerFetch, opened, t and endWith
// from this module and put their controls in <section id="actions">.

const LANGUAGES = ["en", "fr", "nl", "de"];
const STORE_KEY = "showme.link";
const SEEN_KEY = "showme.seen";
// Enough English to explain a failed connection when not even the texts could be loaded.
const FALLBACK = {
  network_title: "No connection",
  network: "We could not reach the emergency service. Check your mobile data or Wi-Fi, then tap Retry.",
  retry: "Retry",
};

const $ = (id) => document.getElementById(id);

let token = readToken();
let device = "";
let texts = {};
let language = "";
let announceOpened;

// Resolves with the server's answer once the link has been opened successfully.
export const opened = new Promise((resolve) => {
  announceOpened = resolve;
});

export function linkToken() {
  return token;
}

// One id per phone, kept: one phone holds a link, others wait (docs/live.md).
export function deviceId() {
  const made = () => crypto.getRandomValues(new Uint32Array(4)).join("-");
  try {
    device ||= localStorage.getItem("showme.device") ?? "";
    if (!/^[\w-]{8,64}$/.test(device)) localStorage.setItem("showme.device", (device = made()));
  } catch {
    device ||= made(); // no storage: a reload counts as another phone
  }
  return device;
}

// Every request on behalf of the caller proves itself with the link token, in a header: the
// token never appears in a URL, so it reaches neither logs nor Referer headers.
export function callerFetch(path, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("X-ShowMe-Link", token);
  headers.set("X-ShowMe-Device", deviceId());
  return fetch(path, { ...init, headers, credentials: "omit", cache: "no-store" });
}

function readToken() {
  const fromHash = location.hash.slice(1);
  let found = fromHash;
  try {
    const stored = sessionStorage.getItem(STORE_KEY) ?? "";
    if (!fromHash) found = stored;
    else if (fromHash !== stored) {
      sessionStorage.setItem(STORE_KEY, fromHash);
      sessionStorage.removeItem(SEEN_KEY);
    }
  } catch {
    // Storage can be disabled; the link then works until the page is reloaded.
  }
  if (fromHash) history.replaceState(null, "", location.pathname);
  return found;
}

// After a reload the link may have ended: answer in the language and name the caller saw before.
function remember(seen) {
  try {
    sessionStorage.setItem(SEEN_KEY, JSON.stringify(seen));
  } catch {
    // Only a nicety.
  }
}

function remembered() {
  try {
    return JSON.parse(sessionStorage.getItem(SEEN_KEY) ?? "null") ?? {};
  } catch {
    return {};
  }
}

function supported(code) {
  const short = (code ?? "").slice(0, 2).toLowerCase();
  return LANGUAGES.includes(short) ? short : "";
}

const before = remembered();
const firstLanguage = supported(before.language) || supported(navigator.language) || "en";

async function useLanguage(code) {
  if (code === language) return;
  try {
    const response = await fetch(new URL(`i18n/${code}.json`, import.meta.url));
    if (!response.ok) return;
    texts = await response.json();
  } catch {
    return; // keep the English already in the page
  }
  language = code;
  document.documentElement.lang = code;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    const value = texts[element.dataset.i18n];
    if (value) element.textContent = value;
  }
  if (texts.title) document.title = texts.title;
}

function text(key) {
  return texts[key] ?? FALLBACK[key] ?? "";
}

// For the modules that build their own messages, and end the page when the link dies under them.
export { text as t, showProblem as endWith };

function show(state) {
  document.body.dataset.state = state;
  $("loading").hidden = state !== "loading";
  $("welcome").hidden = state !== "opened";
  $("actions").hidden = state !== "opened";
  $("problem").hidden = state !== "problem";
}

function showProblem(kind) {
  $("problem-title").textContent = text(`${kind}_title`);
  $("problem-text").textContent = text(kind);
  $("retry").textContent = text("retry");
  $("retry").hidden = kind !== "network";
  $("problem").dataset.problem = kind;
  show("problem");
  if (kind === "network") $("retry").focus();
}

function problemFor(status, code) {
  if (code === "link_expired") return "expired";
  if (code === "link_ended") return "ended";
  if (status === 401 || status === 404 || code === "invalid_link") return "invalid";
  return "network"; // 5xx, proxies, captive portals: worth another try
}

async function openLink() {
  show("loading");
  // Texts load while the link is checked: the phone's language is usually the invite's too.
  const textsLoaded = useLanguage(firstLanguage);
  if (!token) {
    await textsLoaded;
    showProblem("invalid");
    return;
  }
  let response;
  let answer = null;
  try {
    response = await callerFetch("/api/v1/caller/open", { method: "POST" });
    answer = await response.json();
  } catch {
    // No answer, or not JSON: treated alike below.
  }
  await textsLoaded;
  if (response?.ok && answer?.invite) {
    const chosen = supported(answer.invite.language) || firstLanguage;
    const org = answer.organisation?.name ?? "";
    await useLanguage(chosen);
    $("org-name").textContent = org;
    remember({ language: chosen, org });
    show("opened");
    announceOpened(answer);
    return;
  }
  showProblem(response ? problemFor(response.status, answer?.error?.code) : "network");
}

async function loadExtras() {
  try {
    const response = await fetch("/api/v1/caller/extras", { credentials: "omit" });
    if (!response.ok) return;
    const extras = await response.json();
    for (const href of extras.stylesheets ?? []) {
      const link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = href;
      document.head.append(link);
    }
    for (const src of extras.scripts ?? []) {
      import(src).catch((error) => console.warn("Extra script failed:", src, error));
    }
  } catch {
    // Extras are optional; the page works without them.
  }
}

// Live video loads once the link is open, after the first load. A failed load is tried again
// under another URL: browsers remember a module that failed.
function loadLive(attempt = 0) {
  import(attempt ? `./live.js?${attempt}` : "./live.js").catch(() => {
    if (attempt < 5) setTimeout(loadLive, 2000 * 2 ** attempt, attempt + 1);
  });
}

$("org-name").textContent = before.org ?? "";
$("retry").addEventListener("click", openLink);
openLink();
loadExtras();
opened.then(() => loadLive());
