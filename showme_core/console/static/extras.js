// Plugins may add stylesheets and scripts to the console. A broken or unreachable plugin must
// never take the console down with it, so every failure is logged and otherwise ignored.

import { api } from "/console/api.js";

export async function loadExtras() {
  let extras;
  try {
    extras = await api("/api/v1/console/extras");
  } catch (error) {
    console.warn("Console extras unavailable:", error.message);
    return;
  }
  for (const href of extras.stylesheets ?? []) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    link.addEventListener("error", () => console.warn("Extra stylesheet failed:", href));
    document.head.append(link);
  }
  await Promise.all(
    (extras.scripts ?? []).map((src) =>
      import(src).catch((error) => console.warn("Extra script failed:", src, error)),
    ),
  );
}
