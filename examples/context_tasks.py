"""Inside a running task: `current_task()`, and `task_with_context` as in FluxQueue's Rust worker,
with a `Context` (metadata and per-thread storage).

Run it: python examples/context_tasks.py
"""

from fluxqueue import Context, FluxQueue, current_task

fq = FluxQueue("memory://")


@fq.task(queue="reports", max_retries=2)
def whoami() -> dict[str, object]:
    task = current_task()
    return {
        "id": task.id,
        "name": task.name,
        "queue": task.queue,
        "attempt": task.attempt,
        "max_retries": task.max_retries,
        "last attempt": task.is_last_attempt,
    }


class AppContext(Context):
    """Subclass Context to add helpers; the worker builds one per class, per worker."""

    def client(self) -> list[str]:
        # thread_storage lives as long as the worker thread: reuse clients across tasks.
        return self.thread_storage.setdefault("client", [])


@fq.task_with_context()
def resize(ctx: AppContext, image_id: int, width: int) -> str:
    # The caller passes only (image_id, width); the worker passes ctx first.
    ctx.client().append(f"resize {image_id}")
    meta = ctx.metadata
    return f"{image_id}@{width}px (task {meta.task_id[:8]}, retries {meta.retries})"


def main() -> None:
    info = whoami()
    resized = resize(42, width=640)
    fq.run_worker(burst=True)
    print("whoami ->", sorted(info.result().items()))
    print("resize ->", resized.result())


if __name__ == "__main__":
    main()
