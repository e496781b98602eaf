from abicheck.app.cli import main

main()
