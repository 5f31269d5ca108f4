"""``python -m fluxqueue.cli.worker``: the process ``fluxqueue start`` hands itself over to.

See :mod:`fluxqueue.cli.serve`. The arguments after the module name are the original
command line, shown by ``ps``; the configuration itself comes by environment.
"""

from fluxqueue.cli.serve import main

if __name__ == "__main__":
    main()
