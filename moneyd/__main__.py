from moneyd.cli import main

main()
