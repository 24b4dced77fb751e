"""Scale-out of a search: optuna storages shared by worker processes, on one machine or on several.

Every worker runs the same study loop against one storage: the project's journal file by default
(``hls_projects/<m>/search/study.journal``, optuna's file-locked journal), or ``--storage URL`` — a journal
file on a shared file system (``journal:///shared/study.journal``) or a database (``postgresql://…``,
``mysql://…``, ``sqlite:///…``). The trial budget is global: a trial whose number comes after ``budget``
unfailed trials is surplus and stops its worker without training (:func:`is_surplus`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from flow.errors import FlowError
from flow.linux import die_with_parent
from flow.scratch import alive

JOURNAL_FILE = "study.journal"
JOURNAL_PREFIX = "journal://"
WORKER_ATTR = "worker"  # host:pid of the process that runs a trial
HEARTBEAT_S = 60  # databases: a trial without a heartbeat for GRACE_S is failed by any worker
GRACE_S = 180


def default_url(search_dir: Path) -> str:
    """The project's own journal file."""
    return f"{JOURNAL_PREFIX}{Path(search_dir).resolve() / JOURNAL_FILE}"


def journal_path(url: str) -> Path | None:
    """The file of a journal URL (``journal:///abs/path``), else None."""
    return Path(url.removeprefix(JOURNAL_PREFIX)) if url.startswith(JOURNAL_PREFIX) else None


def open_storage(url: str):
    """An optuna storage for ``url``; one line naming the URL when it cannot be opened."""
    import optuna

    path = journal_path(url)
    if path is not None:
        if not path.is_absolute():
            raise FlowError(f"--storage {url}: a journal URL names an absolute path (journal:///dir/study.journal)")
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    if "://" not in url:
        raise FlowError(
            f"--storage {url}: not a storage URL; use journal:///path/study.journal or a database URL "
            "(postgresql://user@host/db, mysql://…, sqlite:///path.db)"
        )
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    except ImportError as exc:
        raise FlowError(f"--storage {url}: its database driver is not installed ({exc.name}); pip install it") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's many connection errors: one line, whatever the cause
        raise FlowError(f"--storage {url}: cannot open ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def worker_id() -> str:
    """This process, as recorded on the trials it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_dead_trials(study) -> int:
    """Mark failed the running trials of dead processes on this host (a killed search); returns how many.

    Trials of live processes and of other hosts are left alone: other nodes may be running them (a database
    storage fails those whose heartbeat stopped).
    """
    from optuna.trial import TrialState

    host, n = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = str(t.user_attrs.get(WORKER_ATTR, ""))
        w_host, _, pid = who.rpartition(":")
        if who and (w_host != host or (pid.isdigit() and alive(int(pid)))):
            continue
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        n += 1
    return n


def is_surplus(study, number: int, budget: int) -> bool:
    """Whether trial ``number`` comes after ``budget`` trials that did not fail (so the budget is spent)."""
    from optuna.trial import TrialState

    ahead = sum(1 for t in study.get_trials(deepcopy=False) if t.number < number and t.state != TrialState.FAIL)
    return ahead >= budget


def thread_env(workers: int) -> dict[str, str]:
    """TensorFlow thread counts that let ``workers`` processes share the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per = str(max(1, cores // max(1, workers)))
    return {"TF_NUM_INTRAOP_THREADS": per, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": per}


def spawn(argv: list[str], index: int, env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    """Start worker ``index`` (``flow search … --worker-index index``); it dies with this process."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"worker-{index}.log").open("w")
    cmd = [sys.executable, "-m", "flow", "-q", "search", *argv, "--worker-index", str(index)]
    try:
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, preexec_fn=die_with_parent()
        )
    finally:
        log.close()
