from fluxqueue.cli import main

main()
