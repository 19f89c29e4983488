"""Caller page open -> first video frame decoded on the console, through coturn, against a floor.

ShowMe: a signed-in console (its tile opens by itself when the caller starts), a new invite per
run, a fresh phone context that opens the link and taps "Show live video" as soon as it shows;
the clock runs from the page's navigation to the console's first decoded frame (`framesDecoded`
> 0, polled every 10 ms in the console). Relay-only, with coturn REST credentials from the plugin.

Floor, in the same run and through the same coturn: two bare same-origin pages, one with the fake
camera and one receiving, relay-only, with this script passing the offer and the answer (ICE
gathered first, no signaling server, no page to load). Its clock runs from `getUserMedia` to the
first decoded frame. ShowMe is reported as a ratio to it. Budget: ShowMe p50 <= 1.0 s.

Run: .venv/bin/python -m bench.first_frame [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

from bench._support import BENCH_EMAIL, BENCH_PASSWORD, add_dispatcher, percentile, showme_server
from showme_ice_coturn import turn_credentials
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.turn import coturn

WATCH = """() => {
  window.firstFrame = {};
  setInterval(async () => {
    const tiles = window.showmeConsoleLive ? window.showmeConsoleLive.tiles() : [];
    for (const id of tiles) {
      if (window.firstFrame[id]) continue;
      const tile = window.showmeConsoleLive.tile(id);
      if (!tile || !tile.pc) continue;
      const stats = await tile.pc.getStats();
      stats.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0
            && !window.firstFrame[id]) window.firstFrame[id] = Date.now();
      });
    }
  }, 10);
}"""

FLOOR_SEND = """async ({ice}) => {
  window.t0 = Date.now();
  const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
  const pc = new RTCPeerConnection({iceServers: ice, iceTransportPolicy: "relay"});
  window.pc = pc;
  stream.getTracks().forEach((t) => pc.addTrack(t, stream));
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === "complete") r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); });
  return pc.localDescription.sdp;
}"""

FLOOR_RECEIVE = """async ({ice, offer}) => {
  const pc = new RTCPeerConnection({iceServers: ice, iceTransportPolicy: "relay"});
  window.pc = pc;
  window.first = 0;
  await pc.setRemoteDescription({type: "offer", sdp: offer});
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((r) => { if (pc.iceGatheringState === "complete") r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); });
  const poll = setInterval(async () => {
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0 && !window.first) {
        window.first = Date.now(); clearInterval(poll);
      }
    });
  }, 10);
  return pc.localDescription.sdp;
}"""


def showme_run(console_context: BrowserContext, phone_context: BrowserContext, url: str) -> float:
    console = console_context.pages[0]
    created = console.request.post(
        f"{url}/api/v1/invites",
        data={"phone": "+32470123456", "send_sms": False},
        headers={"Origin": url},
    ).json()
    invite_id, link = created["id"], created["link"]
    phone = phone_context.new_page()
    started = time.time() * 1000
    phone.goto(link)
    phone.locator("#live-start").click()
    console.wait_for_function(f"() => window.firstFrame['{invite_id}']", timeout=30_000)
    first = console.evaluate(f"() => window.firstFrame['{invite_id}']")
    console.request.post(f"{url}/api/v1/invites/{invite_id}/end", headers={"Origin": url})
    phone.close()
    return (first - started) / 1000


def floor_run(
    sender_context: BrowserContext,
    receiver_context: BrowserContext,
    url: str,
    turn_urls: list[str],
    secret: str,
) -> float:
    user, password = turn_credentials(secret, "floor", 600)
    ice = [{"urls": turn_urls, "username": user, "credential": password}]
    sender, receiver = sender_context.new_page(), receiver_context.new_page()
    sender.goto(f"{url}/healthz")
    receiver.goto(f"{url}/healthz")
    offer = sender.evaluate(FLOOR_SEND, {"ice": ice})
    answer = receiver.evaluate(FLOOR_RECEIVE, {"ice": ice, "offer": offer})
    sender.evaluate("(sdp) => window.pc.setRemoteDescription({type: 'answer', sdp})", answer)
    receiver.wait_for_function("() => window.first", timeout=30_000)
    took = (receiver.evaluate("() => window.first") - sender.evaluate("() => window.t0")) / 1000
    sender.evaluate("() => window.pc.close()")
    receiver.evaluate("() => window.pc.close()")
    sender.close()
    receiver.close()
    return float(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="showme-turn-") as run_dir,
        coturn(Path(run_dir)) as turn,
        showme_server(**turn.plugin_env(ttl=600, policy="relay")) as server,
        sync_playwright() as p,
    ):
        add_dispatcher(server)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        console_context = browser.new_context()
        console = console_context.new_page()
        console.request.post(
            f"{server.url}/api/v1/session",
            headers={"Origin": server.url},
            data={"email": BENCH_EMAIL, "password": BENCH_PASSWORD},
        )
        console.goto(f"{server.url}/console/")
        console.wait_for_selector('#feed-state[data-state="live"]')
        console.evaluate(WATCH)
        phone_context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        sender_context, receiver_context = browser.new_context(), browser.new_context()
        ours, floor = [], []
        for _ in range(args.runs):
            ours.append(showme_run(console_context, phone_context, server.url))
            floor.append(
                floor_run(sender_context, receiver_context, server.url, turn.urls, turn.secret)
            )
        browser.close()

    def line(name: str, values: list[float]) -> str:
        return (
            f"{name}: n={len(values)} p50={percentile(values, 50):.3f} s "
            f"p95={percentile(values, 95):.3f} s min={min(values):.3f} s "
            f"mean={statistics.fmean(values):.3f} s"
        )

    print(line("ShowMe (page open -> first frame on the console)", ours))
    print(line("floor (two bare pages, getUserMedia -> first frame)", floor))
    print(
        f"ratio ShowMe / floor: p50 {percentile(ours, 50) / percentile(floor, 50):.2f}, "
        f"p95 {percentile(ours, 95) / percentile(floor, 95):.2f}"
    )


if __name__ == "__main__":
    main()
