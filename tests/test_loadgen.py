"""The load generator itself: what it reports must be the server's doing, not its own."""

import asyncio
import gc
import weakref

from aiohttp import web

from bench.loadgen import open_loop


def _is_request(obj) -> bool:
    """A task of the load generator's, sending one request (tasks other tests left behind do not count)."""
    return isinstance(obj, asyncio.Task) and getattr(obj.get_coro(), "__qualname__", "") == "_send"


def test_open_loop_keeps_only_the_requests_in_flight():
    """It used to keep every finished request's task until the end of a run: in a 10-minute soak its full garbage
    collections then walked 185k of them, stalls that grew through the run and read as the server's latency."""

    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)  # ~20 requests in flight at 1,000/s
        return web.json_response([])

    async def run():
        app = web.Application()
        app.router.add_post("/x", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        # Every task that has finished and whose done callbacks have run, held weakly: one the load generator
        # let go of drops out once the garbage collector has run (a finished task can sit in a reference cycle
        # until then). A task's done callbacks run together, in the order added: the factory's first, then the
        # load generator's, so a task in `finished` has been through both.
        finished: weakref.WeakSet = weakref.WeakSet()
        halfway, count = asyncio.Event(), 0

        def done(task: asyncio.Task) -> None:
            nonlocal count
            finished.add(task)
            count += 1
            if count == 500:
                halfway.set()

        def factory(loop, coro, **kwargs):
            task = asyncio.Task(coro, loop=loop, **kwargs)
            if _is_request(task):
                task.add_done_callback(done)
            return task

        asyncio.get_running_loop().set_task_factory(factory)
        kept = None

        async def watch() -> None:
            nonlocal kept
            await halfway.wait()  # 500 requests answered (however long that took), more in flight
            gc.collect()
            kept = sum(1 for _ in list(finished))

        watcher = asyncio.create_task(watch())
        try:
            result = await open_loop(f"http://127.0.0.1:{port}", "/x", [{}], 1000, 1.0, 1)
            await watcher  # woken at the 500th answer: it has looked by now
            return result, kept
        finally:
            watcher.cancel()
            await runner.cleanup()

    result, kept = asyncio.run(run())
    assert result.statuses[200] == 1000, result.statuses
    assert kept == 0, f"the load generator still held {kept} of the 500+ requests it had finished"
