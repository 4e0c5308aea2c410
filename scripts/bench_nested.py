"""What building on a composition costs, on the real all-MiniLM-L6-v2 (in-process chain, local
block store, page cache warm; best of N runs, each in the same process).

    .venv/bin/python scripts/bench_nested.py [--runs 5]

Published: Alice's model as elements; Bob's three-layer variant (copies of Alice's elements);
Carol's two-layer model on Bob's composition, as a copy (``carol-copy``) and cast to F16
(``carol-f16``); the same two-layer copy written flat, straight on Alice's elements (``flat``);
Dave's model on ``carol-f16`` (a composition with derived tensors, so it is built once into
the composition cache). Printed: assembly (``assemble_composition``: resolve + fetch + engine;
and the engine alone over a graph resolved beforehand) and verification of each, and the ratios
nested / flat (copies through a composition read Alice's elements directly: expect ~1x) and
first build / cached (Dave: the first assembly builds Carol's model, later ones read it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.compose.chain_source import ChainElementSource, assemble_composition  # noqa: E402
from registry.compose.engine import assemble as engine_assemble  # noqa: E402
from registry.provenance.verify import VerifyOptions, verify_model  # noqa: E402
from registry.storage.blockstore import BlockStore  # noqa: E402
from scripts.bench_common import timed  # noqa: E402
from tests.nested_support import CAROL_LICENSE, carol_doc, compose_as, composition_input, publish_story  # noqa: E402
from tests.publish_support import funded_account  # noqa: E402


def best(runs: int, action) -> float:
    return min(timed(action)[1] for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-nested-"))
    try:
        store = BlockStore(work / "blocks")
        story = publish_story(store)
        alice = story.published.recipe.inputs
        flat_doc = {
            "format": "elements.recipe/v1", "name": "flat",
            "inputs": {name: {"content_id": ref.content_id, "record": ref.record}
                       for name, ref in alice.items() if name in ("embeddings", "pooler", "encoder.layer.2", "encoder.layer.5")},
            "steps": [{"op": "take", "from": ["embeddings", "pooler"]},
                      {"op": "stack", "template": "encoder.layer.{n}.",
                       "slices": [{"from": "encoder.layer.2", "layers": [2]}, {"from": "encoder.layer.5", "layers": [5]}]}],
        }
        flat = compose_as(story.carol, store, flat_doc, CAROL_LICENSE)
        carol_copy = compose_as(story.carol, store, {**carol_doc(story.bob_variant, layers=(1, 2), dtype=None), "files": []}, CAROL_LICENSE)
        assert carol_copy.content_id == flat.content_id, "the nested and flat recipes must build the same weights"
        carol_f16 = story.carol_model
        dave = story.base.with_account(funded_account(story.base.chain))
        dave_model = compose_as(dave, store, {"format": "elements.recipe/v1", "name": "dave",
                                              "inputs": {"carol": composition_input(carol_f16)},
                                              "steps": [{"op": "take", "from": "carol", "exclude": ["encoder.layer.1.*"]}]},
                                CAROL_LICENSE)
        cache = work / "cache" / "compositions"

        def assemble(record: str, name: str):
            def run():
                assemble_composition(story.resolver(), record, work / "out" / name, force=True)
            return run

        def engine_only(record: str, name: str):
            # The graph resolved once, outside the timing: what the engine costs (data and checks).
            resolver = story.resolver()
            graph = resolver.graph([record])
            recipe = graph[record].document

            def run():
                engine_assemble(recipe, ChainElementSource(resolver, graph, composition_dir=cache), work / "out" / (name + "-engine"),
                                force=True, durable=False)
            return run

        def verify(name: str):
            def run():
                report = verify_model(work / "out" / name / "model.safetensors", story.base, story.sources,
                                      VerifyOptions(attribute=False), home=work)
                assert report.verdict == "verified", report.reasons
            return run

        rows = []
        for label, record, name in (("flat (Alice's elements)", flat.record, "flat"),
                                    ("carol-copy (through Bob)", carol_copy.record, "copy"),
                                    ("carol-f16 (through Bob, cast)", carol_f16.record, "f16")):
            rows.append((label, best(args.runs, assemble(record, name)), best(args.runs, engine_only(record, name)),
                         best(args.runs, verify(name))))
        shutil.rmtree(cache, ignore_errors=True)
        started = time.perf_counter()
        assemble(dave_model.record, "dave")()
        dave_first = time.perf_counter() - started
        dave_cached = best(args.runs, assemble(dave_model.record, "dave"))
        dave_verify = best(args.runs, verify("dave"))

        print(f"{'model':<34}{'assemble ms':>12}{'engine ms':>12}{'verify ms':>12}")
        for label, assembled, engine, verified in rows:
            print(f"{label:<34}{assembled * 1000:>12.1f}{engine * 1000:>12.1f}{verified * 1000:>12.1f}")
        print(f"{'dave on carol-f16, first (builds)':<34}{dave_first * 1000:>12.1f}")
        print(f"{'dave on carol-f16, cached':<34}{dave_cached * 1000:>12.1f}{'':>12}{dave_verify * 1000:>12.1f}")
        flat_a, flat_e, flat_v = rows[0][1:]
        print(f"nested copy / flat: assemble {rows[1][1] / flat_a:.2f}x (engine alone {rows[1][2] / flat_e:.2f}x; the rest is "
              f"one more graph level read from the in-process chain), verify {rows[1][3] / flat_v:.2f}x")
        print(f"dave first build / cached: {dave_first / dave_cached:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
