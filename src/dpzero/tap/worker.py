"""What runs in an async job's own process: one query, its result file, a status file.

The job folder holds ``params.json`` and any uploaded VOTables (``upload-<name>.xml``);
the worker writes ``result.<ext>`` (atomically) and ``status.json``, which the job
runner reads when the process ends. The process can be killed at any time (ABORT,
EXECUTIONDURATION) without harm to the server.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

from dpzero.errors import DpzeroUserError

__all__ = ["STATUS_FILE", "run_job"]

STATUS_FILE = "status.json"


def _write_status(job_dir: Path, status: dict[str, object]) -> None:
    tmp = job_dir / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, job_dir / STATUS_FILE)


def _exit_with(server_pid: int) -> None:
    """End this process when the server that started it is gone (a crash or a SIGKILL):
    nobody would collect the result, and the query could run on for hours."""
    import threading
    import time

    def watch() -> None:
        while True:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                pass
            time.sleep(0.5)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()


def run_job(
    job_dir: str,
    store_path: str,
    default_maxrec: int,
    max_upload_rows: int,
    server_pid: int,
    attached: tuple[str, ...] = (),
) -> None:
    """Run the query of the job in ``job_dir`` against the store at ``store_path`` and
    the ``attached`` tables (`dpzero.tap.attached`)."""
    _exit_with(server_pid)
    folder = Path(job_dir)
    (folder / "worker.pid").write_text(str(os.getpid()))
    try:
        from dpzero.tap.engine import TapEngine
        from dpzero.tap.formats import parse_format, write_result
        from dpzero.tap.uploads import read_votable_upload

        params = json.loads((folder / "params.json").read_text())
        uploads = {
            name: read_votable_upload(
                name, (folder / f"upload-{name}.xml").read_bytes(), max_upload_rows
            )
            for name in params["uploads"]
        }
        fmt = parse_format(params["response_format"])
        maxrec = params["maxrec"] if params["maxrec"] is not None else default_maxrec
        engine = TapEngine.open(Path(store_path), [Path(p) for p in attached])
        outcome = engine.execute(params["query"], uploads, maxrec)
        target = folder / f"result.{fmt.extension}"
        tmp = folder / f"result.{fmt.extension}.tmp"
        try:
            # Rows go from the store to the file batch by batch: never whole in memory.
            with tmp.open("wb") as out:
                for chunk in write_result(
                    fmt,
                    outcome.batches(),
                    outcome.schema,
                    outcome.columns,
                    infos=[("QUERY", params["query"])],
                    overflow=lambda: outcome.overflow,
                ):
                    out.write(chunk)
            if outcome.error is not None:
                # The VOTable writer ended the document with an error INFO; the job
                # still failed.
                raise outcome.error
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, target)
        _write_status(
            folder,
            {
                "rows": outcome.rows,
                "overflow": outcome.overflow,
                "file": target.name,
                "media_type": fmt.media_type,
            },
        )
    except DpzeroUserError as exc:
        _write_status(folder, {"error": exc.message})
    except MemoryError:
        _write_status(folder, {"error": "the query needs more memory than the service has"})
    except Exception as exc:  # a bug: keep the trace for the operator, a sentence for the user
        (folder / "traceback.txt").write_text(traceback.format_exc())
        _write_status(
            folder, {"error": f"internal error while running the query ({type(exc).__name__})"}
        )
