"""``python -m mltrail.agent [IDLE_SECONDS]``: run the agent (normally started by
``mltrail`` itself or ``mltrail agent start``).

Guarded, because a command the agent runs may start ``multiprocessing`` workers, which
import the parent's ``__main__`` module again (as ``__mp_main__``).
"""

from mltrail.agent.server import main

if __name__ == "__main__":
    main()
