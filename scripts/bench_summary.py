"""Summarises a scripts/bench.sh run: Quarry's figures against their targets,
and the ratio of botocore's signing time to ours (both measured in that run)."""
import json
import pathlib
import sys


def medians(path):
    data = json.loads(pathlib.Path(path).read_text())
    result = {}
    for bench in data["benchmarks"]:
        if bench.get("aggregate_name") not in (None, "median"):
            continue
        name = bench.get("run_name", bench["name"])
        result[name] = bench
    return result


def ns(bench):
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[bench["time_unit"]]
    return bench["cpu_time"] * scale


def main():
    out_dir = pathlib.Path(sys.argv[1])
    sign = medians(out_dir / "sigv4_benchmark.json")
    stream = medians(out_dir / "eventstream_benchmark.json")
    print()
    print("== Summary (median of 3 repetitions, CPU time)")
    for name, bench in sorted(sign.items()):
        print(f"  {name:<50} {ns(bench) / 1000:8.3f} us/op")
    for name, bench in sorted(stream.items()):
        rate = bench.get("bytes_per_second")
        extra = f"{rate / 1e9:8.2f} GB/s" if rate else ""
        print(f"  {name:<50} {ns(bench) / 1000:8.3f} us/op {extra}")
    ours = next((ns(b) for n, b in sign.items() if "Cached" in n), None)
    for line in (out_dir / "botocore.jsonl").read_text().splitlines():
        theirs = json.loads(line)
        if ours:
            print(f"  botocore {theirs['botocore_version']:<10} signs the same request in "
                  f"{theirs['ns_per_sign'] / 1000:8.3f} us: {theirs['ns_per_sign'] / ours:6.1f}x Quarry's time")


if __name__ == "__main__":
    main()
