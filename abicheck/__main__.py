from abicheck.cli import main

main()
