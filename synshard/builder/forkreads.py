"""Worker processes forked from the driver (Linux): a local build's whole read stage and its
assembly, with no Ray; or the read tasks that run while an embedded Ray starts.

A local build (pipeline.local_build: no cluster, `embedded_ray="auto"`) forks one worker per
local CPU once planning is done. `ForkedReaders.read_all` hands each its next read task as it
finishes one, until every task is done, and the workers wait; then the retry tasks, then
`assemble` hands them assembly's batches of synset jobs (pickled, as Ray would ship them), and
`close` stops them. A worker that dies hands its task to another (what it had counted is taken
back); a task that killed two workers, or the loss of every worker with tasks left, raises
`ReaderFailed` with one line (the journal keeps what was done: the same command resumes).
The rest of this docstring is the other use, beside a starting Ray.

Ray's start-up is about a core's work for a second or more (its import, `ray.init`'s Python, the
GCS, the raylet, its workers' imports). The driver used to read beside it in a thread: one
process, one GIL, so Ray's start and the driver's reads shared about one core and slowed each
other (bench/bench_build.py --timeline, 12,000 photos on 2 cores: 0.9-1.5 cores busy in the first
2 s, Ray up after 2.1-2.3 s against 1.1 s on an idle machine).

Here, just before Ray's thread begins, the driver forks one reader process per local CPU (at most
MAX_READERS). A fork inherits every module the driver imported and the build's plan, so a reader
pays no imports and is told task indices only. It runs the same `run_task` a Ray worker runs
(writing staging and the journal itself) and reports the inputs it settles; the driver's threads
only hand out tasks. One reader per CPU, not one fewer: Ray's start-up waits on its processes
part of the time, and a core left to it idled (one reader on 2 cores: 1.0 cores busy in the
second after the fork; two readers: 2.0, and Ray up after 1.7 s).

Once Ray is up, the rest of the queue goes to Ray; each reader finishes the task it has, in the
background (`ForkedReaders.finish` waits for them), and exits. A task that fails in a reader
raises in the driver (`check`, as the driver next hears from Ray), as it would have there. A reader that dies puts its task back in the queue
(Ray runs it again, as it would a lost worker's), and what it had counted is taken back. A
reader dies with the driver (parent-death signal), and exits when its pipe closes.

Only in a process that has not imported Ray (its gRPC threads do not survive a fork), only on
Linux, and only while Ray's thread has not begun: a build whose planning outlasts the thread's
delay (pipeline.PLAN_ALONE_S, 0.5 s; 1.6 s at 100,000 photos) has Ray starting already. In
those cases `fork_readers` is not called or returns none, and the driver reads in a thread as
before (synshard/builder/localreads.py). (A local build forks after planning, with no Ray
thread; if no reader can be forked there, it runs in the driver's process, and says so.)
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any, Callable

from synshard.builder.forkworker import ReaderFailed, serve
from synshard.builder.staging import Staging
from synshard.config import BuildConfig

POLL_S = 0.05  # how often the driver looks at Ray's state while readers run
# Readers are one per local CPU, up to this many: each holds a task's working set while Ray's
# workers start beside it (measured on 2 cores only; on many more, more readers would mostly
# add memory for the second or two until Ray is up).
MAX_READERS = 16


def can_fork() -> bool:
    """Readers may be forked: Linux, and Ray not imported in this process."""
    return sys.platform == "linux" and hasattr(os, "fork") and "ray" not in sys.modules


class _Reader:
    """One forked reader, seen from the driver: its pipe, its pid, the task it runs."""

    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid, self.conn = pid, conn
        self.task: int | None = None
        self.task_rows = 0  # settled so far by the task it runs
        self.stopped = False
        self.reaped = False  # waited for (under ForkedReaders._lock: its pid may be reused)
        self.status = 0  # its wait status, once reaped

    def give(self, queue: list[int], message: Callable[[int], Any], stop: bool = True) -> None:
        """The next task of `queue` (sent as `message(index)`); when there is none, stop, or
        (not `stop`) wait idle for more work."""
        if queue:
            self.task, self.task_rows = queue.pop(), 0
            self.conn.send(message(self.task))  # OSError: it died (ForkedReaders._give)
        elif stop:
            self.stop()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            try:
                self.conn.send(None)
            except OSError:  # it is gone already: its end-of-file says so
                pass


class ForkedReaders:
    """The readers of one build: `run` until Ray is up, then `finish` once Ray has the rest; or,
    with no Ray at all (a local build), `read_all` and then `assemble`, and `close`."""

    def __init__(self, readers: list[_Reader], forked_tasks: int = 0) -> None:
        self._readers = readers
        self._forked_tasks = forked_tasks  # the tasks the readers were forked with
        self._open = list(readers)
        self._rows = 0  # inputs settled by readers and not yet returned by run/finish
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._drain: threading.Thread | None = None
        self._queue: list[int] = []
        self._bar: Callable[[int], None] = lambda n: None
        self._unshown = 0  # rows counted by the drain thread, for the main thread's bar
        self.given_back = 0  # tasks of readers that died, back in the queue
        self._message: Callable[[int], Any] = _read_message
        # a local build's readers (no Ray): one with no task left waits for more, rather than
        # stopping, and a task that kills readers is not left to Ray's retries
        self._local = False
        self._results: dict[int, Any] = {}  # finished tasks' results (assembly's entries)
        self._deaths: dict[tuple[Any, int], int] = {}  # (kind of work, task) -> readers it killed

    def __bool__(self) -> bool:
        return bool(self._readers)

    def __len__(self) -> int:
        return len(self._readers)

    def run(self, queue: list[int], bar: Callable[[int], None], background: Any,
            feed: Any) -> int:
        """Hand out tasks of `queue` until Ray is ready (or the queue is done); then Ray's feed
        gets the rest at once, and the readers' last tasks finish in the background. Inputs
        settled by the readers so far."""
        self._queue, self._bar = queue, bar
        try:
            for reader in list(self._open):
                self._give(reader, stop=True)
            while self._open and not background.ready():
                self._receive(POLL_S, give=True)
                self._show()
        except BaseException:
            self.close()
            raise
        if background.up() and not feed.pending:
            feed.fill(queue)  # Ray's workers start on the queue now, not after the readers
        for reader in self._open:
            if reader.task is None:
                reader.stop()
        if self._open:
            self._drain = threading.Thread(target=self._drain_all, name="synshard-readers",
                                           daemon=True)
            self._drain.start()
        return self._take_rows()

    def read_all(self, queue: list[int], bar: Callable[[int], None],
                 tasks: list | None = None) -> int:
        """Run every read task of `queue` (popped from its end) in the readers, which then wait
        for more work (a local build's retry tasks, then its assembly). Inputs settled. Tasks
        past those the readers were forked with (retry tasks) are sent from `tasks`.

        A reader that dies gives its task back to the others; a task that killed two readers,
        or readers all gone with tasks left, raise `ReaderFailed` (a resumed build redoes only
        the unfinished tasks)."""
        known = self._forked_tasks
        self._queue, self._bar, self._local = queue, bar, True
        self._message = lambda i: ("read", i, tasks[i] if tasks is not None and i >= known
                                   else None)
        self._work(queue)
        return self._take_rows()

    def assemble(self, batches: list[list], args: tuple) -> list[list]:
        """Assembly's batches of synset jobs (`assembly.run_jobs(batch, *args)`) in the readers,
        the first batches first; the result of each, in batch order."""
        queue = list(reversed(range(len(batches))))
        self._queue, self._local = queue, True
        self._message = lambda i: ("assemble", i, (batches[i], args))
        self._results = {}
        self._work(queue)
        results, self._results = self._results, {}
        return [results[i] for i in range(len(batches))]

    def _work(self, queue: list[int]) -> None:
        """Hand out every task of `queue` until all are done (the readers then wait idle)."""
        try:
            while True:
                for reader in list(self._open):  # idle: at the start, or after one died
                    if reader.task is None:
                        self._give(reader, stop=False)
                if not any(r.task is not None for r in self._open):
                    break
                self._receive(None, give=True)
                self._show()
            if queue:  # every reader died: nobody is left to run them
                raise ReaderFailed(f"every worker process of this build died, {len(queue)} "
                                   "tasks not run (out of memory? see dmesg); finished tasks "
                                   "are kept: run the same command again, with a lower "
                                   "--num-cpus if memory ran out")
        except BaseException:
            self.close()
            raise

    def check(self) -> None:
        """From the driver's main thread while Ray runs the rest: the progress the readers made
        meanwhile, and a task of theirs that failed, raised now rather than at `finish`."""
        self._show()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def finish(self) -> int:
        """Wait for the readers' last tasks; inputs they settled since `run`. A dead reader's
        task is back in the queue given to `run`; a task that failed raises here."""
        if self._drain is not None:
            self._drain.join()
            self._drain = None
        self.close()
        self.check()
        return self._take_rows()

    def _show(self) -> None:
        """Hand the rows counted since to the progress bar (tqdm: from one thread only)."""
        with self._lock:
            rows, self._unshown = self._unshown, 0
        if rows:
            self._bar(rows)

    def _take_rows(self) -> int:
        with self._lock:
            rows, self._rows = self._rows, 0
        return rows

    def _drain_all(self) -> None:
        try:
            while self._open:
                self._receive(None, give=False)
        except BaseException as exc:  # raised by `check`/`finish`, in the driver's main thread
            self._error = exc
            for reader in self._open:
                self._kill(reader)

    def _receive(self, timeout: float | None, give: bool) -> None:
        """Handle what the readers sent within `timeout`; a reader that is done with a task
        gets the next one when `give`, else stops."""
        by_conn = {id(r.conn): r for r in self._open}
        for ready in wait([r.conn for r in self._open], timeout):
            reader = by_conn[id(ready)]
            try:
                kind, index, value = reader.conn.recv()
            except (EOFError, OSError):
                self._gone(reader)
                continue
            if kind == "rows":
                reader.task_rows += value
                with self._lock:
                    self._rows += value
                    self._unshown += value
            elif kind == "done":
                reader.task = None
                if value is not None:
                    self._results[index] = value
                if give:
                    self._give(reader, stop=not self._local)
                else:
                    reader.stop()
            else:  # "failed": the task's error, raised in the driver
                reader.task = None
                raise value if isinstance(value, BaseException) else ReaderFailed(str(value))

    def _give(self, reader: _Reader, stop: bool) -> None:
        """`reader.give` from the queue; a reader that died meanwhile (idle, say, while the
        driver decided) is gone, and its task back in the queue."""
        try:
            reader.give(self._queue, self._message, stop=stop)
        except OSError:
            self._gone(reader)

    def _gone(self, reader: _Reader) -> None:
        """A reader's pipe closed: it stopped, or it died (then its task goes back)."""
        self._open.remove(reader)
        reader.conn.close()
        with self._lock:
            self._reap(reader)
            task, reader.task = reader.task, None
            if task is not None:
                self._queue.append(task)  # popped next: Ray (or another reader) runs it
                self._rows -= reader.task_rows
                self._unshown -= reader.task_rows
                self.given_back += 1
        if task is not None and self._local:
            kind = self._message(task)[0]
            deaths = self._deaths[kind, task] = self._deaths.get((kind, task), 0) + 1
            if deaths >= 2:  # not the machine's bad luck: this task kills its process
                raise ReaderFailed(f"{kind} task {task} killed two worker processes (the last "
                                   f"{_ended(reader.status)}: out of memory? see dmesg); "
                                   "finished tasks are kept: run the same command again, "
                                   "with a lower --num-cpus if memory ran out")

    def close(self) -> None:
        """Stop every reader and wait for it (killed when it still runs a task)."""
        for reader in list(self._open):
            if reader.task is not None:
                self._kill(reader)
            else:
                reader.stop()
        if self._drain is not None:  # it reads their ends of file (and reaps them)
            self._drain.join()
            self._drain = None
        for reader in list(self._open):
            reader.conn.close()
            with self._lock:
                self._reap(reader)
        self._open = []

    def _kill(self, reader: _Reader) -> None:
        with self._lock:  # never a pid the drain thread has just reaped (it may be reused)
            if not reader.reaped:
                try:
                    os.kill(reader.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    @staticmethod
    def _reap(reader: _Reader) -> None:
        """Under the lock."""
        if not reader.reaped:
            try:
                reader.status = os.waitpid(reader.pid, 0)[1]
            except ChildProcessError:
                pass
            reader.reaped = True


def _ended(status: int) -> str:
    """How a reader ended, from its wait status."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _read_message(index: int) -> tuple[str, int, None]:
    return ("read", index, None)


NONE = ForkedReaders([])


def fork_readers(count: int, tasks: list, cfg: BuildConfig, staging: Staging) -> ForkedReaders:
    """`count` reader processes for read tasks of `tasks` (none where `can_fork` says no). Call
    it before any other thread may start Ray (BackgroundRay.before_start)."""
    if count < 1 or not can_fork():
        return NONE
    readers: list[_Reader] = []
    parent = os.getpid()
    # the driver's objects so far go to the collector's permanent generation, so a reader's
    # collections never write to (and so copy) the pages they share with the driver
    gc.freeze()
    try:
        for _ in range(count):
            here, there = Pipe()
            try:
                pid = os.fork()
            except OSError:  # no memory or processes left for one more: those made do
                here.close()
                there.close()
                break
            if pid == 0:  # the reader: never returns
                here.close()
                for other in readers:
                    other.conn.close()
                serve(there, tasks, cfg, staging, parent)
            there.close()
            readers.append(_Reader(pid, here))
    except BaseException:  # Ctrl-C between forks: none left behind
        ForkedReaders(readers).close()
        raise
    finally:
        if os.getpid() == parent:
            gc.unfreeze()  # (the readers keep theirs frozen)
    return ForkedReaders(readers, len(tasks)) if readers else NONE
