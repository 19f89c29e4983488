// The console's only way to talk to the server: same-origin JSON with the session cookie.
// Same-origin fetches carry an Origin header on POST/DELETE, which the server's CSRF check needs.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Milliseconds the server's clock is ahead of ours; "time left" is computed on the server's clock.
export let clockSkew = 0;

export async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "Cannot reach the ShowMe server. Check the network, then try again.");
  }
  const date = Date.parse(response.headers.get("Date") ?? "");
  if (!Number.isNaN(date)) clockSkew = date - Date.now();
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error ?? {};
    throw new ApiError(
      response.status,
      error.code ?? `http_${response.status}`,
      error.message ?? `The server answered with status ${response.status}.`,
    );
  }
  return data;
}

export function serverNow() {
  return Date.now() + clockSkew;
}

// Microseconds since the epoch for the server's ISO times, for ordering. The server leaves out
// the fraction when it is zero ("…:00Z" next to "…:00.123Z"), so strings do not sort; and
// Date.parse keeps only milliseconds, which would tie two pictures received in the same one.
export function instant(iso) {
  if (!iso) return -Infinity;
  const millis = Date.parse(iso);
  if (Number.isNaN(millis)) return -Infinity;
  const fraction = /\.(\d+)/.exec(iso)?.[1] ?? "";
  const micros = Number((fraction + "000000").slice(0, 6));
  return Math.floor(millis / 1000) * 1_000_000 + micros;
}
