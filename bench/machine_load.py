"""How busy the machine is, for benchmarks that must not publish numbers taken on shared cores.

Two measures:

* the load average before a run (``check_load``): runnable processes, averaged over a minute. Above
  ``MAX_LOAD_PER_CORE`` x cores, other work would set the numbers, so a benchmark refuses to start;
* the CPU that *other* processes (and the hypervisor, as steal time) used while the run went on
  (``CpuMeter``): all busy CPU time from ``/proc/stat`` minus this process's own. The load average
  cannot tell this, since the benchmark itself keeps every core busy.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from models.machine import usable_cores

MAX_LOAD_PER_CORE = 0.5
# Others' CPU during a run, in cores per core: a run pinned to all cores loses time roughly in
# proportion, so a quarter of the machine is enough to skew the comparison between cells.
MAX_OTHER_CPU_PER_CORE = 0.25


@dataclass
class LoadCheck:
    loadavg: tuple[float, float, float]
    cores: int
    limit: float

    @property
    def load_1m(self) -> float:
        return self.loadavg[0]

    @property
    def busy(self) -> bool:
        return self.load_1m > self.limit

    def refusal(self, prog: str, flag: str) -> str:
        """One line saying why the run does not start and how to run it anyway."""
        return (f"{prog}: refusing to run: 1-minute load average {self.load_1m:.2f} is above {self.limit:.2f} "
                f"({MAX_LOAD_PER_CORE} x {self.cores} cores); other processes would set the numbers. "
                f"Run it on an idle machine, or pass {flag} to run anyway (results are flagged busy).")

    def as_dict(self) -> dict:
        return {"loadavg": [round(x, 2) for x in self.loadavg], "cores": self.cores, "limit_1m": round(self.limit, 2),
                "busy": self.busy}


def check_load(cores: int | None = None, loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg,
               per_core: float = MAX_LOAD_PER_CORE) -> LoadCheck:
    """``loadavg`` is injectable so that tests can fake a busy or an idle machine."""
    n = cores or usable_cores()
    return LoadCheck(tuple(float(x) for x in loadavg()), n, per_core * n)


def _busy_seconds() -> float | None:
    """All CPUs' non-idle time since boot, steal included (another VM had our core), in seconds."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    v = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is already in user.
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process, all its threads, since it started; None once it is gone."""
    try:
        data = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; utime and stime are fields
    # 14 and 15, counted from the state (field 3) right after it.
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Command-line markers of the local stack's JVMs (scripts/stack.sh): Kafka and Elasticsearch.
STACK_MARKERS = (b"kafka.Kafka", b"org.elasticsearch.bootstrap.Elasticsearch")


def stack_pids(markers: tuple[bytes, ...] = STACK_MARKERS) -> list[int]:
    """Processes of the Kafka broker and the Elasticsearch nodes on this machine."""
    out = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if any(m in cmd for m in markers):
            out.append(int(entry))
    return sorted(out)


class OthersCpuMeter:
    """Like ``CpuMeter`` for a run spread over several processes (a pipeline, the broker, the search
    engine): cores' worth of CPU used by everything but this process and ``pids()`` between
    ``start()`` and ``stop()``. A process started in between counts from its start; call ``stop()``
    before the run's processes exit (the CPU of one already gone would count as someone else's)."""

    def __init__(self, pids: Callable[[], list[int]]):
        self.pids = pids
        self._t0 = self._busy0 = None
        self._cpu0: dict[int, float] = {}

    def _ours(self) -> dict[int, float]:
        out = {}
        for pid in {os.getpid(), *self.pids()}:
            cpu = process_cpu_seconds(pid)
            if cpu is not None:
                out[pid] = cpu
        return out

    def start(self) -> "OthersCpuMeter":
        self._t0, self._busy0, self._cpu0 = time.perf_counter(), _busy_seconds(), self._ours()
        return self

    def stop(self) -> float | None:
        wall = time.perf_counter() - self._t0
        busy = _busy_seconds()
        ours = sum(cpu - self._cpu0.get(pid, 0.0) for pid, cpu in self._ours().items())
        if busy is None or self._busy0 is None or wall <= 0:
            return None
        return max(0.0, (busy - self._busy0 - ours) / wall)


class CpuMeter(OthersCpuMeter):
    """Cores' worth of CPU used by everything but this process between ``start()`` and ``stop()``.

    ``stop()`` returns that average (0.5 = half a core on average), or None where /proc/stat is
    missing. Resolution is the kernel tick (10 ms), ample for intervals of a second or more."""

    def __init__(self) -> None:
        super().__init__(list)
