#!/usr/bin/python3
"""ImageNet-scale benchmark of mpsearch against PyTorch float32, in one run.

    scripts/bench_scale.py [--models resnet18,mobilenet_v2,efficientnet_b0,resnet50]
        [--images 256] [--threads 2] [--timeout 1800] [--work /tmp/mpsearch-bench]
        [--commands eval,search] [--json out.json] [--search-args=--keep-ends=false]

For each torchvision model (random seeded weights, exported by
scripts/export_torchvision.py at opset 17 when missing) it makes --images
random 224x224 inputs (N(0,1), seed 0) and measures, in this order:
  - torch_forward_s: PyTorch float32 forward over the images (no_grad, batch 32,
    torch.set_num_threads(--threads)), the baseline;
  - eval: `bin/mpsearch eval --model M --data x.npy --labels none` (float engine);
  - search: `bin/mpsearch search --model M --data x.npy --labels none --size-budget 0.5x --no-cache`
    (the default job: every stage, no cached table);
each with its wall time, CPU time and peak RSS (from wait4's rusage) and exit status; a
command still running after --timeout seconds is killed and reported as such.
Every stderr line of mpsearch is kept with its time offset in WORK/NAME-CMD.log,
so the time of each stage can be read off. Prints a Markdown table on stdout and
writes the figures as JSON with --json. Build bin/mpsearch first (scripts/setup.sh).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def images(path, n, seed=0):
    import numpy as np

    if not os.path.exists(path):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, 3, 224, 224), dtype=np.float32)
        np.save(path, x)
    return path


def torch_forward(model_path, name, x_path, threads):
    import numpy as np
    import torch

    sys.path.insert(0, HERE)
    from export_torchvision import build

    torch.set_num_threads(threads)
    m = build(name)
    x = torch.from_numpy(np.load(x_path))
    with torch.no_grad():
        m(x[:2])  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(x), 32):
            m(x[i:i + 32])
        return time.perf_counter() - t0, time.process_time() - c0


def run(cmd, log_path, timeout):
    """Runs cmd, logging its stderr with time offsets; returns wall time, peak RSS and status."""
    t0 = time.monotonic()
    with open(log_path, "w", buffering=1) as log:  # line-buffered: the log follows the run
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

        def pump():
            for line in p.stderr:
                log.write(f"{time.monotonic() - t0:8.1f}s {line}")

        th = threading.Thread(target=pump)
        th.start()
        out = []
        tout = threading.Thread(target=lambda: out.append(p.stdout.read()))
        tout.start()
        killed = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                p.kill()
                killed = True
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.1)
        p.returncode = os.waitstatus_to_exitcode(status)
        th.join()
        tout.join()
        log.write("--- stdout\n" + "".join(out))
    return {"wall_s": round(time.monotonic() - t0, 1), "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
            "peak_rss_mib": round(ru.ru_maxrss / 1024),
            "exit": p.returncode, "killed_after_timeout": killed, "log": log_path}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2,efficientnet_b0,resnet50")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--work", default="/tmp/mpsearch-bench")
    ap.add_argument("--commands", default="eval,search")
    ap.add_argument("--json")
    ap.add_argument("--search-args", default="",
                    help="extra arguments for search, space-separated, given as --search-args=... (e.g. --search-args=--keep-ends=false: MobileNetV2's "
                         "classifier alone is 37%% of its int8 size, so 0.5x with 8-bit ends is infeasible)")
    a = ap.parse_args()
    binp = os.path.join(ROOT, "bin", "mpsearch")
    if not os.path.exists(binp):
        sys.exit("bench: bin/mpsearch is missing; run scripts/setup.sh first")
    os.makedirs(a.work, exist_ok=True)
    x = images(os.path.join(a.work, f"x{a.images}.npy"), a.images)
    rows = []
    for name in a.models.split(","):
        mp = os.path.join(a.work, f"{name}-opset17.onnx")
        if not os.path.exists(mp):
            subprocess.run([sys.executable, os.path.join(HERE, "export_torchvision.py"), "--out", a.work,
                            "--models", name, "--opsets", "17"], check=True)
        row = {"model": name, "images": a.images, "threads": a.threads}
        wall, cpu = torch_forward(mp, name, x, a.threads)
        row["torch_forward_s"], row["torch_forward_cpu_s"] = round(wall, 2), round(cpu, 2)
        print(f"bench: {name}: torch forward {row['torch_forward_s']} s ({row['torch_forward_cpu_s']} CPU s)", file=sys.stderr)
        common = ["--model", mp, "--data", x, "--labels", "none", "--threads", str(a.threads)]
        for c in a.commands.split(","):
            cmd = [binp, c] + common
            if c == "search":
                cmd += ["--size-budget", "0.5x", "--no-cache", "--out", os.path.join(a.work, f"{name}-out")]
                cmd += a.search_args.split()
            row[c] = run(cmd, os.path.join(a.work, f"{name}-{c}.log"), a.timeout)
            print(f"bench: {name}: {c} {row[c]}", file=sys.stderr)
        rows.append(row)
    print("| model | PyTorch f32 forward: wall s / CPU s | " + " | ".join(f"mpsearch {c}: wall s / CPU s / peak RSS MiB" for c in a.commands.split(",")) + " |")
    print("|---|---|" + "---|" * len(a.commands.split(",")))
    for r in rows:
        cells = []
        for c in a.commands.split(","):
            m = r[c]
            s = f"{m['wall_s']} / {m['cpu_s']} / {m['peak_rss_mib']}"
            if m["killed_after_timeout"]:
                s = f"> {a.timeout:.0f} (killed) / {m['peak_rss_mib']}"
            elif m["exit"] != 0:
                s += f" (exit {m['exit']})"
            cells.append(s)
        print(f"| {r['model']} | {r['torch_forward_s']} / {r['torch_forward_cpu_s']} | " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
