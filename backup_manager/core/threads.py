"""A background thread that lives exactly as long as a `with` block."""

import contextlib
import threading
from collections.abc import Callable


@contextlib.contextmanager
def thread_during_block(target: Callable[[threading.Event], None], *, name: str):
	"""Run `target(stop)` in a daemon thread while the block runs; then set `stop` and join it."""
	stop = threading.Event()
	thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
	thread.start()
	try:
		yield
	finally:
		stop.set()
		thread.join()
