"""LLM labeler throughput against concurrency, and its own overhead per request.

Run: ``.venv/bin/python benchmarks/labeling.py`` (needs the ``llm`` extra; ``--quick`` labels
fewer pairs). Two parts, cache disabled throughout:

1. **Overhead** (stdlib stub server that answers instantly): cfpair's labeler (prompt
   rendering, pinned schema, request, Pydantic validation, grounding check, accounting) side by
   side with the peer floor, a bare ``openai`` client posting the same pre-rendered payloads
   and doing nothing with the reply. Overhead per request = labeler ms - bare client ms.
2. **Local server** (llama.cpp + Gemma-3-270M, 2 threads, one slot): first the labeler at its
   *default settings* (adaptive concurrency up to 8, 60 s timeout, 4 retries, 2 re-asks), which
   must finish with no timeouts and no retries; then labels/s at each fixed concurrency
   (adaptation off, no re-asks), where a single-slot server only queues the extra requests.
3. The same comparison against the stub playing a one-slot server (``--service-s`` per
   request), for machines where llama.cpp cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from cfpair.labels import prompt  # noqa: E402
from cfpair.labels.llm import LLMLabeler, LLMSettings  # noqa: E402
from cfpair.records.schema import PairRecord  # noqa: E402
from tests.labels.llama_server import llama_server  # noqa: E402
from tests.labels.stub_llm import Reply, StubLLM, valid_content  # noqa: E402
from tests.records.synthetic import synthetic_records  # noqa: E402

#: LLMSettings' own defaults (cache off so every label is paid for)
DEFAULTS: dict[str, object] = {k: getattr(LLMSettings("m"), k) for k in (
    "response_format", "request_timeout", "max_reasks", "max_tokens", "adaptive", "max_retries")}


def make_records(n: int) -> list[PairRecord]:
    """n pair records from the synthetic source (first anchor of each scene)."""
    return synthetic_records(n + n // 4 + 4, 3, 64, limit=n)


def labeler_run(url: str, recs: list[PairRecord], concurrency: int, model: str,
                **kw: object) -> tuple[float, dict[str, float]]:
    """Wall seconds and stats of labelling ``recs`` (fixed concurrency unless ``kw`` says)."""
    base: dict[str, object] = dict(response_format="json_object", concurrency=concurrency,
                                   llm_cache=None, request_timeout=600, max_reasks=0,
                                   max_tokens=256, adaptive=False)
    lab = LLMLabeler(LLMSettings(model=model, base_url=url,
                                 **{**base, **kw}))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    lab.run(recs)
    return time.perf_counter() - t0, lab.stats.as_dict()


def bare_run(url: str, recs: list[PairRecord], concurrency: int) -> float:
    """Wall seconds of a bare AsyncOpenAI client posting pre-rendered payloads."""
    payloads = [(prompt.messages(r, "v1")[0], prompt.label_schema(r)) for r in recs]

    async def go() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one(msgs: list, schema: dict) -> None:
            async with sem:
                await client.chat.completions.create(
                    model="stub", messages=msgs, temperature=0.0, max_tokens=256,
                    response_format={"type": "json_object", "schema": schema})  # type: ignore

        await asyncio.gather(*(one(m, s) for m, s in payloads))
        await client.close()

    t0 = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - t0


def overhead(recs: list[PairRecord], repeats: int) -> None:
    """Part 1: labeler vs bare client against an instant stub."""
    print(f"overhead vs a bare openai client (stub server, {len(recs)} pairs, best of "
          f"{repeats})")
    print(f"{'concurrency':>12}{'labeler ms/req':>16}{'bare ms/req':>13}{'overhead ms':>13}"
          f"{'ratio':>7}")
    with StubLLM() as stub:
        for conc in (1, 8):
            lab = min(labeler_run(stub.base_url, recs, conc, "stub")[0] for _ in range(repeats))
            bare = min(bare_run(stub.base_url, recs, conc) for _ in range(repeats))
            n = len(recs)
            print(f"{conc:>12}{lab / n * 1e3:>16.2f}{bare / n * 1e3:>13.2f}"
                  f"{(lab - bare) / n * 1e3:>13.2f}{lab / bare:>7.2f}")


def server(recs: list[PairRecord], levels: list[int]) -> None:
    """Part 2: labels/s against concurrency on llama.cpp's server."""
    print(f"\nllama.cpp server, Gemma-3-270M Q4_K_M, 2 threads, {len(recs)} pairs per level")
    with tempfile.TemporaryDirectory() as tmp, llama_server(Path(tmp)) as url:
        _, warm = labeler_run(url, recs[:1], 1, "tiny")          # warm-up (grammar, caches)
        if not warm.get("replies"):
            print("the server did not answer the warm-up request (failures: "
                  + ", ".join(f"{k[7:]}: {int(v)}" for k, v in warm.items()
                              if k.startswith("failed_")) + "); see its log. Skipped.")
            return
        sec, st = labeler_run(url, recs, 8, "tiny", **DEFAULTS)
        print(f"default settings (adaptive, ceiling 8, timeout 60 s): {len(recs) / sec:.3f} "
              f"labels/s, {sec:.1f} s for {len(recs)} pairs, {int(st.get('requests', 0))} "
              f"requests, timeouts {int(st.get('failed_timeout', 0))}, retries "
              f"{int(st.get('retries', 0))}, re-asks {int(st.get('reasks', 0))}, most in "
              f"flight {int(st.get('concurrency_max_s', 0))}, ok "
              f"{int(st.get('labels_ok', 0))}, failures "
              + (", ".join(f"{k[7:]}: {int(v)}" for k, v in sorted(st.items())
                           if k.startswith("failed_")) or "none"))
        print(f"{'concurrency':>12}{'labels/s':>10}{'s/label':>9}{'server s/req':>14}"
              f"{'tokens in+out':>15}{'ok':>5}")
        for conc in levels:
            sec, st = labeler_run(url, recs, conc, "tiny")
            per_req = st["latency_s"] / max(st.get("replies", 1), 1)
            print(f"{conc:>12}{len(recs) / sec:>10.3f}{sec / len(recs):>9.2f}{per_req:>14.2f}"
                  f"{st['prompt_tokens']:>8}+{st['completion_tokens']:<6}"
                  f"{int(st.get('labels_ok', 0)):>5}")


def single_slot(recs: list[PairRecord], levels: list[int], service_s: float) -> None:
    """Part 2 without llama.cpp: the stub as a one-slot server taking ``service_s`` per
    request (requests beyond the slot queue, as in llama.cpp's server)."""
    def slow(_n: int, body: dict) -> Reply:
        return Reply(delay_s=service_s, content=valid_content(body))

    timeout = 5 * service_s          # the ratio of llama.cpp here: ~12 s per label, 60 s timeout
    print(f"\none-slot stub server, {service_s:.2f} s per request, {len(recs)} pairs, timeout "
          f"{timeout:.2f} s (5 x service, as 60 s vs ~12 s on llama.cpp)")
    print(f"{'setting':>22}{'labels/s':>10}{'timeouts':>10}{'retries':>9}{'in flight':>11}"
          f"{'ok':>5}")
    rows = [("defaults (adaptive, <=8)", 8, dict(DEFAULTS, request_timeout=timeout))]
    rows += [(f"fixed {c}", c, {"request_timeout": timeout, "max_retries": 4}) for c in levels]
    for name, conc, kw in rows:
        with StubLLM(slow, slots=1) as stub:
            sec, st = labeler_run(stub.base_url, recs, conc, "stub", **kw)
            peak = stub.peak_open
        print(f"{name:>22}{len(recs) / sec:>10.2f}{int(st.get('failed_timeout', 0)):>10}"
              f"{int(st.get('retries', 0)):>9}{peak:>11}{int(st.get('labels_ok', 0)):>5}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int, default=200, help="pairs for the overhead part")
    ap.add_argument("--server-pairs", type=int, default=6)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--service-s", type=float, default=0.25,
                    help="seconds per request of the one-slot stub server")
    args = ap.parse_args()
    recs = make_records(40 if args.quick else args.pairs)
    overhead(recs, 2 if args.quick else 3)
    single_slot(recs[:12 if args.quick else 24], [1, 2, 8], args.service_s)
    if not args.no_server:
        server(recs[: 3 if args.quick else args.server_pairs], args.levels)


if __name__ == "__main__":
    main()
