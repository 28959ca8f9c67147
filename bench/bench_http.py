"""HTTP figures on a real pylog-server: REST Proxy v2 batched JSON produce (records/s),
consume through a consumer instance (records/s), the simple queue routes (consume + ack,
records/s), and the dashboard with 1,000 topics (API answers and a headless-Chromium
page load, ms).

    python -m bench.bench_http                 # ~1 min
    python -m bench.bench_http --records 20000 --out bench/results/http.md

Numbers are medians of ``--rounds`` runs on the machine at hand (shared, noisy): read
them as orders of magnitude.  Client and server share the machine's cores.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from pylog.testing import PylogServer

JSON_V2 = "application/vnd.kafka.json.v2+json"
V2 = "application/vnd.kafka.v2+json"


async def produce(base: str, topic: str, records: int, batch: int, concurrency: int) -> float:
    body = {"records": [{"value": {"i": i, "text": "x" * 80}} for i in range(batch)]}
    todo = records // batch
    async with aiohttp.ClientSession() as s:
        async def worker(n: int) -> None:
            for _ in range(n):
                async with s.post(f"{base}/topics/{topic}", json=body,
                                  headers={"Content-Type": JSON_V2}) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
        t0 = time.perf_counter()
        share = [todo // concurrency + (1 if i < todo % concurrency else 0)
                 for i in range(concurrency)]
        await asyncio.gather(*(worker(n) for n in share))
        return todo * batch / (time.perf_counter() - t0)


async def consume(base: str, topic: str, records: int, group: str) -> float:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/consumers/{group}", json={
                "name": "bench", "format": "json", "auto.offset.reset": "earliest",
                "auto.commit.enable": "false"}, headers={"Content-Type": V2}) as r:
            inst = (await r.json())["base_uri"]
        async with s.post(f"{inst}/subscription", json={"topics": [topic]},
                          headers={"Content-Type": V2}) as r:
            assert r.status == 204
        got, t0 = 0, time.perf_counter()
        while got < records:
            async with s.get(f"{inst}/records?timeout=1000",
                             headers={"Accept": JSON_V2}) as r:
                got += len(await r.json())
        rate = got / (time.perf_counter() - t0)
        await s.delete(inst)
        return rate


async def queue(base: str, topic: str, records: int, group: str) -> float:
    async with aiohttp.ClientSession() as s:
        done, t0 = 0, time.perf_counter()
        while done < records:
            async with s.get(f"{base}/consume?topic={topic}&group={group}&max=500"
                             f"&wait_ms=1000") as r:
                recs = (await r.json())["records"]
            acks = [{"partition": x["partition"], "offset": x["offset"]} for x in recs]
            async with s.post(f"{base}/ack", json={"group": group, "topic": topic,
                                                   "acks": acks}) as r:
                assert (await r.json())["errors"] == 0
            done += len(recs)
        return done / (time.perf_counter() - t0)


async def api_ms(base: str, path: str, rounds: int = 20) -> float:
    async with aiohttp.ClientSession() as s:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            async with s.get(base + path) as r:
                await r.read()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)


def page_load_ms(port: int, rounds: int) -> float | None:
    """Headless Chromium: navigation start to the topic table drawn (ms), median."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        return None
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="pylog-bench-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver),
                         options=opts)
    try:
        times = []
        for _ in range(rounds):
            d.get("about:blank")
            t0 = time.perf_counter()
            d.get(f"http://127.0.0.1:{port}/#/topics")
            WebDriverWait(d, 30).until(EC.presence_of_element_located(
                (By.CSS_SELECTOR, "#topic-table tbody tr")))
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def main_async(args) -> list[tuple[str, str]]:
    work = Path(tempfile.mkdtemp(prefix="pylog-bench-http-"))
    srv = PylogServer(work / "data").start()
    base = f"http://127.0.0.1:{srv.http_port}"
    rows = []
    try:
        async with aiohttp.ClientSession() as s:
            for name, n in (("bench-rest", 4), ("bench-queue", 4)):
                await s.post(f"{base}/topics", json={"topic": name, "partitions": n})
        prod, cons = [], []
        for r in range(args.rounds):
            topic = f"bench-rest-{r}"
            async with aiohttp.ClientSession() as s:
                await s.post(f"{base}/topics", json={"topic": topic, "partitions": 4})
            prod.append(await produce(base, topic, args.records, args.batch, 4))
            cons.append(await consume(base, topic, args.records, f"bench-g{r}"))
        rows.append((f"REST v2 produce, JSON, {args.batch} records/request, 4 in flight",
                     f"{statistics.median(prod):,.0f} records/s"))
        rows.append(("REST v2 consume, consumer instance, JSON",
                     f"{statistics.median(cons):,.0f} records/s"))
        await produce(base, "bench-queue", args.records // 2, args.batch, 4)
        q = await queue(base, "bench-queue", args.records // 2, "bench-workers")
        rows.append(("/consume (500) + /ack, share group", f"{q:,.0f} records/s"))
        async with aiohttp.ClientSession() as s:
            for i in range(1000):
                await s.post(f"{base}/topics", json={"topic": f"t-{i:04d}", "partitions": 1})
        rows.append(("GET /api/topics?limit=50 with 1,000 topics",
                     f"{await api_ms(base, '/api/topics?limit=50'):.1f} ms"))
        rows.append(("GET /api/overview with 1,000 topics",
                     f"{await api_ms(base, '/api/overview'):.1f} ms"))
        rows.append(("GET /metrics (JSON) with 1,000 topics",
                     f"{await api_ms(base, '/metrics', 5):.1f} ms"))
        load = await asyncio.to_thread(page_load_ms, srv.http_port, 5)
        rows.append(("dashboard #/topics page load, 1,000 topics (headless Chromium)",
                     "n/a (no chromium)" if load is None else f"{load:.0f} ms"))
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = asyncio.run(main_async(args))
    width = max(len(a) for a, _ in rows)
    text = "\n".join(f"{a:<{width}}  {b}" for a, b in rows)
    print(text)
    if args.out:
        md = ["| HTTP figure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
        args.out.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
