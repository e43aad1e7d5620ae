"""Issue 50's hostile cases rerun as a user would meet them: the command line on the bundled sample, a real server
on 127.0.0.1, damaged and hostile files. Prints one line per case and the count that held.

    python benchmarks/reliability_round4.py [--only 1 7 16]

Each case fails loudly rather than silently: it holds only when the command did what is expected (one
'resnet-cifar: error:' line and exit code 2 for a refusal, no traceback, the user's files as they were).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "src/resnet_cifar/data/assets/examples"
CAT = EXAMPLES / "cat.png"
TINY = ["--dataset", "cifar10-sample", "--epochs", "1", "--batch-size", "100", "--device", "cpu"]
# The peak is VmHWM, that of the probe's own memory: getrusage's ru_maxrss keeps the parent's peak across exec.
PEAK_PROBE = ("import re, sys\nfrom pathlib import Path\nfrom resnet_cifar.cli import main\n"
              "code = main(sys.argv[1:])\n"
              "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1), flush=True)\n"
              "sys.exit(code)\n")


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnet_cifar", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def refused(done: subprocess.CompletedProcess, fragment: str) -> str | None:
    """None when ``done`` is a one-line refusal (exit 2) containing ``fragment``; else what went wrong."""
    lines = done.stderr.strip().splitlines()
    if done.returncode != 2 or len(lines) != 1 or not lines[0].startswith("resnet-cifar: error:"):
        return f"exit {done.returncode}, stderr {done.stderr.strip()[-300:]!r}"
    return None if fragment in lines[0] else f"the message lacks {fragment!r}: {lines[0]}"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


class Workspace:
    """Scratch folder with the runs the cases share, trained once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._runs: dict[str, Path] = {}

    def run(self, name: str, *options: str) -> Path:
        if name not in self._runs:
            folder = self.root / "runs" / name
            done = cli("train", *TINY, "--quiet", "--out", str(folder), *options)
            assert done.returncode == 0, done.stderr
            self._runs[name] = folder
        return self._runs[name]

    def copy_of(self, name: str, *options: str) -> Path:
        target = Path(tempfile.mkdtemp(dir=self.root)) / name
        shutil.copytree(self.run(name, *options), target)
        return target

    def sweep(self) -> Path:
        out = self.root / "sweep"
        if not out.exists():
            space = self.root / "space.yaml"
            space.write_text("lr: {low: 1e-3, high: 1e-1, log: true}\n")
            done = cli("sweep", "--study", "s", "--out", str(out), "--space", str(space), "--trials", "1",
                       "--model", "resnet20", *TINY, "--val-split", "100")
            assert done.returncode == 0, done.stderr
        return out


def case_1(ws: Workspace) -> str | None:
    run = ws.copy_of("r20", "--model", "resnet20")
    other = ws.run("lenet", "--model", "lenet5")
    shutil.copy(other / "last.pt", run / "last.pt")
    before = digest(run)
    problem = refused(cli("train", "--resume", str(run)), "another run's checkpoint")
    return problem or (None if digest(run) == before else "the run folder changed")


def case_2(ws: Workspace) -> str | None:
    run = ws.copy_of("r20", "--model", "resnet20")
    named = ws.root / "curves.png"
    shutil.copy(CAT, named)
    before = digest(run)
    for command in (["explain", str(run), str(named), "--out", str(run)],
                    ["predict", str(run), str(named), "--explain", str(run)]):
        problem = refused(cli(*command), "holds a run or model")
        if problem:
            return problem
    return None if digest(run) == before else "the run's files changed"


def image_folder(root: Path, count: int) -> Path:
    folder = root / f"images-{count}"
    folder.mkdir(exist_ok=True)
    for number in range(count):
        shutil.copy(CAT, folder / f"cat{number:05d}.png")
    return folder


def peak_mib(*args: str) -> float:
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, *args], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def case_3(ws: Workspace) -> str | None:
    few, many = (peak_mib("explain", "--pretrained", "resnet20", str(image_folder(ws.root, count)), "--out",
                          str(ws.root / f"explained-{count}")) for count in (100, 1000))
    return None if many <= 1.5 * few else f"peak {many:.0f} MiB at 1,000 images against {few:.0f} MiB at 100"


def _pt2(ws: Workspace) -> Path:
    path = ws.root / "model.pt2"
    if not path.exists():
        assert cli("export", "--pretrained", "resnet20", "--format", "pt2", "--out", str(path)).returncode == 0
    return path


def _rewritten_pt2(ws: Workspace, name: str, add: Callable[[zipfile.ZipFile, str], None]) -> Path:
    """A copy of the export with ``add(archive, top)`` writing extra entries, its sidecar's checksum made to fit."""
    source = _pt2(ws)
    target = ws.root / name
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as changed:
        top = original.infolist()[0].filename.partition("/")[0]
        for entry in original.infolist():
            changed.writestr(entry.filename, original.read(entry))
        add(changed, top)
    sidecar = json.loads(source.with_name(source.name + ".json").read_text())
    sidecar["archive_sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    target.with_name(target.name + ".json").write_text(json.dumps(sidecar))
    return target


def case_4(ws: Workspace) -> str | None:
    def bomb(archive: zipfile.ZipFile, top: str) -> None:
        info = zipfile.ZipInfo(f"{top}/data/weights/weight_bomb")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            for _ in range(96):
                member.write(bytes(1 << 24))  # 1.5 GiB of zeros, a few MB on disk

    path = _rewritten_pt2(ws, "bomb.pt2", bomb)
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, "predict", str(path), str(CAT)], capture_output=True,
                          text=True)
    peak = int(done.stdout.split()[-1]) / 1024
    problem = refused(done, "is no tensor of the program")
    return problem or (None if peak < 1024 else f"peak {peak:.0f} MiB")


def case_5(ws: Workspace) -> str | None:
    return refused(cli("eval", "--pretrained", "resnet20", "--dataset", "cifar10-sample", "--out",
                       str(ws.root / "eval"), "--corruptions", "gaussian_noise", "--severities", "1", "--seed", "-5"),
                   "--seed must be an integer from 0")


def case_6(ws: Workspace) -> str | None:
    journal = ws.sweep() / "optuna.journal"
    whole = journal.read_bytes()
    try:
        journal.write_bytes(whole + b'{"op_code": 4, "wor')
        torn = cli("sweep", "--report", "s", "--out", str(journal.parent))
        if torn.returncode != 0 or "cut off mid-write" not in torn.stderr:
            return f"a torn last record: exit {torn.returncode}, {torn.stderr.strip()[-200:]!r}"
        for damage, fragment in ((b"garbage\n", "line 2 is not a JSON record"),
                                 (b'{"op_code": 99}\n', "op_code 99, which Optuna does not know")):
            lines = whole.splitlines(keepends=True)
            journal.write_bytes(lines[0] + damage + b"".join(lines[1:]))
            problem = refused(cli("sweep", "--report", "s", "--out", str(journal.parent)), fragment)
            if problem:
                return problem
    finally:
        journal.write_bytes(whole)
    return None


def _explained(ws: Workspace, inputs: list[Path], *extra: str) -> list[dict]:
    out = Path(tempfile.mkdtemp(dir=ws.root))
    done = cli("explain", "--pretrained", "resnet20", *map(str, inputs), "--out", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "explain.json").read_text())["images"]


def case_7(ws: Workspace) -> str | None:
    for folder in ("a", "b"):
        (ws.root / folder).mkdir(exist_ok=True)
        shutil.copy(CAT, ws.root / folder / "cat.png")
    shutil.copy(EXAMPLES / "horse.png", ws.root / "a" / "cat-3.png")
    images = _explained(ws, [ws.root / "a/cat.png", ws.root / "a/cat-3.png", ws.root / "b/cat.png"])
    figures = [image["figure"] for image in images]
    return None if len(set(figures)) == 3 else f"figures {figures}"


def case_8(ws: Workspace) -> str | None:
    named = ws.root / "c" / "feature-maps.png"
    named.parent.mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "ship.png", named)
    (image,) = _explained(ws, [named], "--feature-maps")
    return None if Path(image["figure"]).name != "feature-maps.png" else "the figure is feature-maps.png"


def case_9(ws: Workspace) -> str | None:
    return refused(cli("explain", "--pretrained", "resnet20", str(CAT), "--layer", "", "--out",
                       str(ws.root / "empty-layer")), "no layer ''")


def case_10(ws: Workspace) -> str | None:
    out = ws.root / "stopped"
    process = subprocess.Popen([sys.executable, "-m", "resnet_cifar", "explain", "--pretrained", "resnet20",
                                str(image_folder(ws.root, 400)), "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "cat00000.png").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    index = json.loads((out / "explain.json").read_text()) if (out / "explain.json").exists() else {}
    if leftovers or "stopped" not in index or process.returncode != 143:
        return f"exit {process.returncode}, temporaries {leftovers}, index keys {sorted(index)}"
    return None


def _sweep_with(ws: Workspace, name: str, text: str) -> subprocess.CompletedProcess:
    space = ws.root / name
    space.write_text(text)
    return cli("sweep", "--study", "t", "--out", str(ws.root / f"sweep-{name}"), "--space", str(space), "--trials",
               "1", "--model", "resnet20", *TINY, "--val-split", "100")


def case_11(ws: Workspace) -> str | None:
    accepted = _sweep_with(ws, "exponent.yaml", "lr: {low: 1e-3, high: 1e-1}\n")
    if accepted.returncode != 0:
        return f"1e-3 refused: {accepted.stderr.strip()[-200:]}"
    return refused(_sweep_with(ws, "twice.yaml", "lr: {low: 0.01, high: 0.1}\nlr: {low: 0.1, high: 1}\n"),
                   "gives 'lr' twice")


def case_12(ws: Workspace) -> str | None:
    for number, (text, fragment) in enumerate((("optimizer: {choices: [sgd, bogus]}", "unknown optimizer"),
                                               ("model: {choices: [notamodel]}", "unknown model"),
                                               ("epochs: {low: 0, high: 2}", "--epochs must be a positive"),
                                               ("lr: {low: -1, high: 1}", "--lr must be a positive"),
                                               ("seed: {low: -2, high: 3}", "--seed must be an integer"))):
        problem = refused(_sweep_with(ws, f"bad{number}.yaml", text + "\n"), fragment)
        if problem:
            return problem
    return None


def case_13(ws: Workspace) -> str | None:
    space = ws.root / "space13.yaml"
    space.write_text("lr: {low: 0.01, high: 0.1}\n")
    for name in ("../../evil", "a/b"):
        problem = refused(cli("sweep", f"--study={name}", "--space", str(space), *TINY, "--val-split", "100"),
                          "a study name is letters, digits")
        if problem:
            return problem
    return None


def case_14(ws: Workspace) -> str | None:
    run = ws.copy_of("calibrated", "--model", "resnet20", "--val-split", "200", "--epochs", "2", "--lr", "0.05")
    described = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**described, "temperature": float("nan")}))
    done = cli("calibrate", str(run))
    if done.returncode != 0:
        return f"calibrate: exit {done.returncode}, {done.stderr.strip()[-200:]}"
    return None if cli("eval", str(run), "--out", str(run / "eval")).returncode == 0 else "eval refused it after"


def case_15(ws: Workspace) -> str | None:
    hidden = b"\x80\x04\x8c\x02os\x8c\x06system\x4b\x05\x30\x93\x8c\x04true\x85R."  # push, pop, STACK_GLOBAL
    source = _pt2(ws)
    target = ws.root / "hidden.pt2"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as changed:
        for entry in original.infolist():
            replaced = entry.filename.endswith("data/sample_inputs/model.pt")
            changed.writestr(entry.filename, hidden if replaced else original.read(entry))
    sidecar = json.loads(source.with_name(source.name + ".json").read_text())
    sidecar["archive_sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    target.with_name(target.name + ".json").write_text(json.dumps(sidecar))
    return refused(cli("predict", str(target), str(CAT)), "is a pickle that is not a torch.save file")


def case_16(ws: Workspace) -> str | None:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "resnet_cifar", "serve", "--pretrained", "resnet20", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        answer = httpx.post(url + "/explain", content=CAT.read_bytes(), params={"format": "json", "method":
                            "saliency", "target": "dog"}, timeout=30).json()
        if answer.get("method") != "saliency" or answer["top_k"][0]["label"] != "dog":
            return f"answered {str(answer)[:200]}"
        unknown = httpx.post(url + "/explain", content=CAT.read_bytes(), params={"colour": "red"}, timeout=30)
        return None if unknown.status_code == 400 else f"an unknown parameter got {unknown.status_code}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def case_17(ws: Workspace) -> str | None:
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = extras["all"][0].split("[")[1].rstrip("]").split(",")
    missing = sorted(set(extras) - {"all", "dev"} - set(named))
    return None if not missing else f"[all] lacks {missing}"


def case_18(ws: Workspace) -> str | None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(REPO / "tests/sweep/test_sweep.py"), "-k", "hopeless"], capture_output=True, text=True,
                          cwd=REPO, timeout=900)
    return None if done.returncode == 0 else done.stdout.strip().splitlines()[-1]


CASES = {number: globals()[f"case_{number}"] for number in range(1, 19)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=int, nargs="+", choices=sorted(CASES), help="run these cases only")
    args = parser.parse_args()
    chosen = args.only or sorted(CASES)
    held = 0
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Workspace(Path(scratch))
        for number in chosen:
            start = time.perf_counter()
            try:
                problem = CASES[number](workspace)
            except Exception as error:  # noqa: BLE001  a case that breaks is a case that did not hold
                problem = f"{type(error).__name__}: {error}"
            held += problem is None
            print(f"{number:>2}. {'held' if problem is None else 'FAILED: ' + problem}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"{held} passed, {len(chosen) - held} failed")
    return 0 if held == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
